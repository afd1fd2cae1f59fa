"""Webhooks from the API: a generation with a webhook_url notifies a real receiver, signed with the
owner's secret, once it ends (the signing and retry machinery itself is tested in test_webhooks.py)."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import submit, wait_for

from mutoscope.serve.webhooks import verify_signature


class Receiver:
    def __init__(self):
        self.got: queue.Queue = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.put((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhook_on_success_and_on_cancel(server):
    client = server.user()
    secret = client.get("/v1/webhook-secret").json()["secret"]
    assert secret.startswith("whsec_") and client.get("/v1/webhook-secret").json()["secret"] == secret
    receiver = Receiver()
    try:
        gen = submit(client, "a yellow ring grows", webhook_url=receiver.url).json()
        wait_for(client, gen["id"], "succeeded")
        headers, body = receiver.got.get(timeout=30)
        event = verify_signature(secret, headers, body)
        assert event["type"] == "generation.succeeded" and event["data"]["id"] == gen["id"]
        assert event["data"]["outputs"]["video"]["url"].startswith(f"/v1/generations/{gen['id']}/content")
        assert headers["webhook-id"] == f"msg_{gen['id']}"

        canceled = submit(client, "hold a ring", webhook_url=receiver.url).json()
        client.post(f"/v1/generations/{canceled['id']}/cancel")
        server.engine.release("hold a ring")
        headers, body = receiver.got.get(timeout=30)
        assert verify_signature(secret, headers, body)["type"] == "generation.canceled"
    finally:
        receiver.close()
    assert receiver.got.empty()  # one delivery per generation

    bad = submit(client, webhook_url="ftp://example.com/hook")
    assert bad.status_code == 422 and bad.json()["code"] == "webhook.url.invalid"
    rotated = client.post("/v1/webhook-secret/rotate").json()["secret"]
    assert rotated != secret and json.dumps(rotated).startswith('"whsec_')
