"""Accounts, keys, credits, limits, uploads and the waitlist, through real HTTP on both databases."""

from __future__ import annotations

import io
import json
import secrets
import struct
import zlib

from harness import submit, wait_for, wait_running
from PIL import Image

from mutoscope.cli import main as cli
from mutoscope.serve.ids import token_hash
from mutoscope.serve.tables import ApiKey


def admin(server, capsys, *args) -> dict | list:
    """Run `mutoscope admin --json ...` on the server's database; its parsed output."""
    capsys.readouterr()
    assert cli(["admin", "--database-url", server.settings.url, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_auth_required_and_problem_json(server):
    anon = server.anonymous()
    r = anon.get("/v1/me")
    assert (
        r.status_code == 401
        and r.json()["code"] == "auth.missing"
        and r.headers["www-authenticate"] == "Bearer"
    )
    r = anon.get("/v1/me", headers={"Authorization": "Bearer mk_not-a-key"})
    assert r.status_code == 401 and r.json()["code"] == "auth.invalid"
    r = anon.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "http.not_found"
    assert r.headers["content-type"] == "application/problem+json"
    assert anon.get("/openapi.json").json()["paths"]["/v1/generations"]["post"]


def test_me_credits_and_ledger(server):
    client = server.user(credits=7)
    me = client.get("/v1/me").json()
    assert me["id"] == client.user_id and me["credits"] == {"balance": 7, "reserved": 0}
    gen = wait_for(client, submit(client).json()["id"], "succeeded")
    credits = client.get("/v1/credits").json()
    assert (credits["balance"], credits["reserved"]) == (6, 0)
    assert credits["costs"]["rate_per_second"]["base"] == 1
    rows = client.get("/v1/credits/ledger").json()["data"]
    assert [(r["kind"], r["delta"]) for r in rows] == [
        ("charge", -1),
        ("release", 1),
        ("reserve", -1),
        ("grant", 7),
    ]
    assert {r["generation_id"] for r in rows[:3]} == {gen["id"]}
    page = client.get("/v1/credits/ledger", params={"limit": 2}).json()
    assert len(page["data"]) == 2
    rest = client.get("/v1/credits/ledger", params={"cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in page["data"] + rest["data"]] == [r["id"] for r in rows]


def test_insufficient_credits_is_402(server):
    client = server.user(credits=1)
    first = submit(client)
    assert first.status_code == 201  # holds the only credit
    r = submit(client)
    assert r.status_code == 402 and r.json()["code"] == "credits.insufficient"
    assert (r.json()["required"], r.json()["balance"]) == (1, 0)
    wait_for(client, first.json()["id"], "succeeded")
    assert client.get("/v1/credits").json()["balance"] == 0
    assert submit(client).status_code == 402


def test_api_keys_shown_once_stored_hashed(server):
    client = server.user()
    r = client.post("/v1/api-keys", json={"name": "laptop"})
    assert r.status_code == 201
    new = r.json()
    assert new["key"].startswith("mk_") and new["prefix"] == new["key"][:10]
    with server.ctx.db.read() as s:
        row = s.get(ApiKey, new["id"])
        assert row.token_hash == token_hash(new["key"]) and new["key"] not in (row.token_hash, row.prefix)
    listed = client.get("/v1/api-keys").json()["data"]
    assert {k["id"] for k in listed} >= {new["id"]} and all("key" not in k for k in listed)
    other = server.anonymous()
    other.headers["Authorization"] = f"Bearer {new['key']}"
    assert other.get("/v1/me").json()["id"] == client.user_id
    assert client.delete(f"/v1/api-keys/{new['id']}").status_code == 204
    assert other.get("/v1/me").status_code == 401
    assert client.post("/v1/api-keys", json={"name": "x", "scopes": ["all"]}).status_code == 422


def test_rate_limit_is_429_with_retry_after(server):
    client = server.user(rate=3)
    assert [client.get("/v1/me").status_code for _ in range(3)] == [200, 200, 200]
    r = client.get("/v1/me")
    assert r.status_code == 429 and r.json()["code"] == "rate_limit.requests"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert server.user().get("/v1/me").status_code == 200  # per user


def test_concurrent_jobs_limit_is_429(server):
    client = server.user(concurrent=1)
    prompt = f"hold a star {secrets.token_hex(3)}"
    first = submit(client, prompt).json()["id"]
    try:
        wait_running(client, first)
        r = submit(client)
        assert r.status_code == 429 and r.json()["code"] == "rate_limit.concurrent_jobs"
        assert int(r.headers["retry-after"]) > 0
        assert client.get("/v1/credits").json()["balance"] == 99  # only the first is held
    finally:
        server.engine.release(prompt)
    wait_for(client, first, "succeeded")
    assert submit(client).status_code == 201


def test_waitlist_approve_invite_account(server, capsys):
    anon = server.anonymous()
    email = f"ann-{secrets.token_hex(3)}@example.com"
    r = anon.post("/v1/waitlist", json={"email": email, "name": "Ann", "note": "I make music videos"})
    assert r.status_code == 202
    assert anon.post("/v1/waitlist", json={"email": email.upper()}).status_code == 202  # the same entry
    assert anon.post("/v1/waitlist", json={"email": "not-an-email"}).status_code == 422
    assert (
        anon.post("/v1/waitlist", json={"email": email, "twitter": "@ann"}).json()["code"]
        == "request.field.unknown"
    )

    pending = admin(server, capsys, "waitlist", "list", "--status", "pending")
    assert [e["email"] for e in pending if e["email"] == email] == [email]
    approved = admin(server, capsys, "waitlist", "approve", email, "--credits", "25")
    code = approved["invite_code"]
    assert approved["status"] == "approved" and code.startswith("inv-")

    r = anon.post("/v1/accounts", json={"invite_code": code.lower(), "name": "Ann"})
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["user"]["email"] == email and account["credits"]["balance"] == 25
    ann = server.anonymous()
    ann.headers["Authorization"] = f"Bearer {account['api_key']}"
    assert ann.get("/v1/me").json()["credits"]["balance"] == 25
    again = anon.post("/v1/accounts", json={"invite_code": code})
    assert again.status_code == 404 and again.json()["code"] == "invite.invalid"  # one use

    shown = admin(server, capsys, "credits", "show", email)
    assert shown["balance"] == 25 and shown["ledger"][0]["kind"] == "grant"
    admin(server, capsys, "credits", "grant", email, "10")
    assert ann.get("/v1/credits").json()["balance"] == 35
    assert cli(["admin", "--database-url", server.settings.url, "waitlist", "approve", email]) == 2  # already


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_uploads_sniffed_and_capped(server):
    client = server.user()
    r = client.post("/v1/uploads", files={"file": ("frame.jpg", _png(48, 32), "image/jpeg")})
    assert r.status_code == 201, r.text
    up = r.json()
    assert (up["content_type"], up["width"], up["height"]) == ("image/png", 48, 32)  # the bytes, not the name
    fake = client.post("/v1/uploads", files={"file": ("x.png", b"GIF89a" + b"\0" * 64, "image/png")})
    assert fake.status_code == 415 and fake.json()["code"] == "upload.type.unsupported"
    truncated = client.post("/v1/uploads", files={"file": ("t.png", _png(64, 64)[:60], "image/png")})
    assert truncated.status_code == 422 and truncated.json()["code"] == "upload.image.invalid"
    # A PNG that declares 5000x5000 pixels (the data would not fill it): refused before any decode.
    ihdr = struct.pack(">IIBBBBB", 5000, 5000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
    r = client.post("/v1/uploads", files={"file": ("b.png", bomb, "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "upload.image.too_many_pixels"
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * server.settings.upload_max_bytes
    r = client.post("/v1/uploads", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and r.json()["code"] == "upload.too_large"
    stored = server.ctx.storage.uploads / client.user_id
    assert len(list(stored.iterdir())) == 1


def test_models_lists_capabilities(server):
    data = server.anonymous().get("/v1/models").json()["data"]
    assert len(data) == 1
    model = data[0]
    assert model["id"] == server.engine.model_id and model["online"] is True
    caps = model["capabilities"]
    assert (caps["width"], caps["height"], caps["frames"], caps["fps"]) == (32, 32, 8, 8.0)
    # The test preset's DiT takes control inputs: every control, and extension to 600 s.
    assert caps["controls"] == dict.fromkeys(
        ("keyframes", "camera", "motion_brush", "extend", "storyboard"), True
    )
    assert caps["max_seconds"] == 600.0
    assert "euler" in caps["samplers"]
