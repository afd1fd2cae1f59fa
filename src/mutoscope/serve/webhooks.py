"""Webhooks signed the Standard Webhooks way (https://www.standardwebhooks.com), retried with backoff.

Every delivery is a POST of a JSON body `{"type", "timestamp", "data"}` with three headers:
`webhook-id` (the message id, the same on every retry, so receivers can de-duplicate),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256
of "{id}.{timestamp}.{body}">`, keyed by the secret `whsec_<base64 key>`. Receivers verify with
`verify_signature` (or any Standard Webhooks library), rejecting stale timestamps against replays.

A delivery that fails (connection error, timeout, non-2xx) is retried with exponential backoff and
jitter, honouring `Retry-After`, up to `max_attempts`; 410 Gone stops it at once. Every attempt is
logged in the returned Delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from mutoscope.errors import UserError

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60  # the Standard Webhooks default: older (or future) timestamps are replays
USER_AGENT = "mutoscope-webhooks/1"


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh delivery signed with this secret."""


def generate_secret() -> str:
    """A new signing secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as e:
        raise ValueError("a webhook secret is `whsec_` followed by base64") from e


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), content, hashlib.sha256).digest()).decode()


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> dict:  # fmt: skip
    """Check a delivery's headers and raw body; returns the parsed JSON payload.

    Raises WebhookVerificationError when a header is missing, the timestamp is outside the tolerance,
    or no `v1` signature in the (space-separated) list matches.
    """
    h = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, ts, signatures = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
    except KeyError as e:
        raise WebhookVerificationError(f"missing header {e.args[0]}") from None
    try:
        timestamp = int(ts)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)
    raise WebhookVerificationError("no matching signature")


def check_url(url: str, *, allow_private: bool = False) -> str:
    """An http(s) URL whose host does not resolve to a loopback, private or link-local address
    (unless `allow_private`: tests and self-hosted set-ups); UserError `webhook.url.invalid` if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError("webhook.url.invalid", f"a webhook URL must be http(s)://host/..., got {url!r}")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        raise UserError("webhook.url.invalid", f"cannot resolve the webhook host {parts.hostname}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            raise UserError("webhook.url.invalid", f"the webhook host {parts.hostname} is not public")
    return url


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based
    at: float  # Unix time the request was sent
    status: int | None  # HTTP status, None when no response came back
    error: str | None  # why it failed; None on success
    duration_s: float
    next_delay_s: float | None  # the wait before the next attempt; None when none follows


@dataclass
class Delivery:
    """One event to one URL: its message id, payload and the log of every attempt."""

    msg_id: str
    url: str
    event_type: str
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)
    delivered: bool = False

    def to_dict(self) -> dict:
        return {"id": self.msg_id, "url": self.url, "type": self.event_type, "delivered": self.delivered,
                "attempts": [a.__dict__ for a in self.attempts]}  # fmt: skip


class WebhookSender:
    """Signs and POSTs events; `send` blocks through the retries, `send_in_background` does not."""

    def __init__(
        self, secret: str, *, max_attempts: int = 6, base_delay_s: float = 1.0, max_delay_s: float = 300.0,
        timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):  # fmt: skip
        _key(secret)  # fail now on a malformed secret, not at the first delivery
        self.secret = secret
        self.max_attempts = max_attempts
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.transport = transport

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait after failed attempt n: base * 2^(n-1), +-20% jitter, capped; Retry-After if longer."""
        d = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        return min(self.max_delay_s, max(d, retry_after or 0.0))

    def payload(self, event_type: str, data: dict) -> bytes:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps(
            {"type": event_type, "timestamp": stamp, "data": data}, separators=(",", ":")
        ).encode()

    def send(self, url: str, event_type: str, data: dict, *, msg_id: str | None = None) -> Delivery:
        """Deliver one event, retrying until a 2xx, a 410, or `max_attempts`; returns the log."""
        delivery = Delivery(
            msg_id or "msg_" + secrets.token_hex(12), url, event_type, self.payload(event_type, data)
        )
        with httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=False) as client:
            for n in range(1, self.max_attempts + 1):
                status, error, retry_after = None, None, None
                ts = int(time.time())
                headers = {
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "webhook-id": delivery.msg_id,
                    "webhook-timestamp": str(ts),
                    "webhook-signature": sign(self.secret, delivery.msg_id, ts, delivery.body),
                }
                start = time.monotonic()
                try:
                    r = client.post(url, content=delivery.body, headers=headers)
                    status = r.status_code
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                        retry_after = _retry_after(r.headers.get("retry-after"))
                except httpx.HTTPError as e:
                    error = f"{type(e).__name__}: {e}"
                final = error is None or status == 410 or n == self.max_attempts
                wait = None if final else self.delay(n, retry_after)
                delivery.attempts.append(
                    Attempt(n, time.time(), status, error, time.monotonic() - start, wait)
                )
                if error is None:
                    delivery.delivered = True
                    return delivery
                log.info("webhook %s to %s: attempt %d failed (%s)", delivery.msg_id, url, n, error)
                if final:
                    break
                self.sleep(wait)
        log.warning(
            "webhook %s to %s: gave up after %d attempts", delivery.msg_id, url, len(delivery.attempts)
        )
        return delivery

    def send_in_background(
        self, url: str, event_type: str, data: dict, *, msg_id: str | None = None,
        on_done: Callable[[Delivery], None] | None = None,
    ) -> threading.Thread:  # fmt: skip
        """`send` on a daemon thread (a worker must not wait for a slow receiver); `on_done` gets the log."""

        def run() -> None:
            delivery = self.send(url, event_type, data, msg_id=msg_id)
            if on_done is not None:
                on_done(delivery)

        thread = threading.Thread(target=run, name=f"webhook-{event_type}", daemon=True)
        thread.start()
        return thread


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (only the delta-seconds form; an HTTP date is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
