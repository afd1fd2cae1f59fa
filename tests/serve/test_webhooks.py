"""Standard Webhooks signing and delivery, against a real HTTP receiver on a thread."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mutoscope.errors import UserError
from mutoscope.serve.webhooks import (
    WebhookSender,
    WebhookVerificationError,
    check_url,
    generate_secret,
    sign,
    verify_signature,
)


class Receiver:
    """An http.server that verifies each delivery and fails the first `fail_first` requests."""

    def __init__(self, secret: str, fail_first: int = 0, fail_status: int = 503):
        self.secret, self.fail_first, self.fail_status = secret, fail_first, fail_status
        self.requests: list[dict] = []
        self.verified: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                if len(receiver.requests) <= receiver.fail_first:
                    self.send_response(receiver.fail_status)
                    self.send_header("retry-after", "0")
                    self.end_headers()
                    return
                try:
                    receiver.verified.append(verify_signature(receiver.secret, self.headers, body))
                    self.send_response(204)
                except WebhookVerificationError:
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/mutoscope"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_signature_matches_the_standard_webhooks_construction():
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"generation.succeeded"}'
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign(secret, "msg_1", 1700000000, body) == "v1," + expected
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": "1700000000",
        "Webhook-Signature": "v1," + expected,
    }
    assert verify_signature(secret, headers, body, now=1700000100) == {"type": "generation.succeeded"}


def test_verify_rejects_tampering_replays_and_other_secrets():
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    body, now = b'{"a":1}', int(time.time())
    good = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "msg_x", now, body),
    }
    assert verify_signature(secret, good, body) == {"a": 1}
    # several signatures (key rotation): any v1 match passes
    rotated = {**good, "webhook-signature": "v1,bm90LWl0 " + good["webhook-signature"]}
    assert verify_signature(secret, rotated, body) == {"a": 1}
    cases = [
        (secret, good, b'{"a":2}'),  # body changed
        (generate_secret(), good, body),  # another secret
        (secret, {**good, "webhook-id": "msg_y"}, body),  # id changed
        (secret, {**good, "webhook-timestamp": str(now - 3600)}, body),  # replayed later
        (secret, {k: v for k, v in good.items() if k != "webhook-signature"}, body),
        (secret, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, body),
    ]
    for s, headers, b in cases:
        with pytest.raises(WebhookVerificationError):
            verify_signature(s, headers, b)


def test_a_real_receiver_gets_and_verifies_the_event():
    secret = generate_secret()
    with Receiver(secret) as rx:
        sender = WebhookSender(secret)
        data = {
            "id": "gen_123",
            "status": "succeeded",
            "outputs": {"video": "/v1/generations/gen_123/content"},
        }
        delivery = sender.send(rx.url, "generation.succeeded", data)
    assert delivery.delivered and len(delivery.attempts) == 1 and delivery.attempts[0].status == 204
    assert len(rx.verified) == 1
    event = rx.verified[0]
    assert (
        event["type"] == "generation.succeeded" and event["data"] == data and event["timestamp"].endswith("Z")
    )
    headers = {k.lower(): v for k, v in rx.requests[0]["headers"].items()}
    assert headers["webhook-id"] == delivery.msg_id and headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")


def test_a_failing_receiver_is_retried_with_backoff_then_succeeds():
    secret = generate_secret()
    waits: list[float] = []
    with Receiver(secret, fail_first=2) as rx:
        sender = WebhookSender(
            secret, base_delay_s=0.01, max_delay_s=1.0, sleep=lambda s: waits.append(s) or time.sleep(s)
        )
        delivery = sender.send(rx.url, "generation.failed", {"id": "gen_9"})
    assert delivery.delivered
    assert [a.status for a in delivery.attempts] == [503, 503, 204]
    assert [a.error for a in delivery.attempts] == ["HTTP 503", "HTTP 503", None]
    assert len(waits) == 2 and waits[1] > waits[0]  # exponential: 0.01 then 0.02 (+-20% jitter)
    # the same message id on every attempt (receivers de-duplicate on it); each attempt freshly signed
    ids = {r["headers"]["webhook-id"] for r in rx.requests}
    assert ids == {delivery.msg_id} and len(rx.verified) == 1
    assert json.loads(rx.requests[0]["body"]) == json.loads(rx.requests[2]["body"])


def test_gives_up_after_max_attempts_and_stops_at_410():
    secret = generate_secret()
    with Receiver(secret, fail_first=10) as rx:
        delivery = WebhookSender(secret, max_attempts=3, base_delay_s=0.001).send(rx.url, "x", {})
    assert not delivery.delivered and [a.status for a in delivery.attempts] == [503, 503, 503]
    assert delivery.attempts[-1].next_delay_s is None and len(rx.requests) == 3
    with Receiver(secret, fail_first=10, fail_status=410) as rx:
        delivery = WebhookSender(secret, max_attempts=5, base_delay_s=0.001).send(rx.url, "x", {})
    assert not delivery.delivered and len(delivery.attempts) == 1 and len(rx.requests) == 1
    # nobody listening: connection errors are logged and retried
    delivery = WebhookSender(secret, max_attempts=2, base_delay_s=0.001).send(rx.url, "x", {})
    assert not delivery.delivered and all(a.status is None and a.error for a in delivery.attempts)


def test_background_delivery_reports_its_log():
    secret = generate_secret()
    done: list = []
    with Receiver(secret) as rx:
        thread = WebhookSender(secret).send_in_background(
            rx.url, "generation.succeeded", {"id": "g"}, on_done=done.append
        )
        thread.join(timeout=10)
    assert done and done[0].delivered and rx.verified[0]["data"] == {"id": "g"}


def test_check_url():
    assert check_url("https://example.com/hook", allow_private=True)
    for bad in ("ftp://example.com/x", "not a url", "http:///nohost"):
        with pytest.raises(UserError):
            check_url(bad)
    with pytest.raises(UserError, match="not public"):
        check_url("http://127.0.0.1:9/hook")
