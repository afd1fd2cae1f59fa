"""/v1/generations through real HTTP, on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import secrets

import httpx
from harness import STEPS, fake_model, submit, wait_for, wait_running

from mutoscope.post.mp4 import probe
from mutoscope.serve.tables import IdempotencyKey


def test_generate_end_to_end_real_mp4(server, tmp_path):
    client = server.user(credits=10)
    r = submit(client, "a blue square bounces")
    assert r.status_code == 201, r.text
    gen = r.json()
    assert r.headers["location"] == f"/v1/generations/{gen['id']}"
    assert gen["status"] in ("queued", "running") and gen["cost"] == 1 and gen["credits_reserved"] == 1
    assert gen["params"]["steps"] == STEPS and isinstance(
        gen["params"]["seed"], int
    )  # the seed is fixed up front

    done = wait_for(client, gen["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == 1.0 and done["credits_charged"] == 1 and done["credits_reserved"] == 0
    assert done["outputs"]["record"]["prompt"] == "a blue square bounces"
    assert done["outputs"]["record"]["seed"] == gen["params"]["seed"]
    # Marked by the worker (the 32x32 test clips are too small to read the mark back: see test_hooks.py).
    assert done["outputs"]["record"]["watermark"]["method"] == "dwt-dct-qim/v1"

    video = client.get(done["outputs"]["video"]["url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(video.content)
    info = probe(path)
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", 8)
    poster = client.get(f"/v1/generations/{gen['id']}/content", params={"variant": "poster"})
    assert poster.headers["content-type"] == "image/png" and poster.content.startswith(b"\x89PNG")
    assert client.get("/v1/credits").json()["balance"] == 9


def test_range_requests(server):
    client = server.user()
    gen = wait_for(client, submit(client).json()["id"], "succeeded")
    url = f"/v1/generations/{gen['id']}/content?variant=video"
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole)}"
    assert part.content == whole[10:110]
    tail = client.get(url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == whole[-16:]
    past = client.get(url, headers={"Range": f"bytes={len(whole) + 5}-"})
    assert past.status_code == 416 and past.json()["code"] == "request.range.unsatisfiable"
    assert past.headers["content-range"] == f"bytes */{len(whole)}"
    assert client.get(url, headers={"Range": "bytes=9-3"}).json()["code"] == "request.range.invalid"


def test_signed_links_work_without_a_key_and_only_for_their_target(server):
    client = server.user()
    gen = wait_for(client, submit(client).json()["id"], "succeeded")
    anon = server.anonymous()
    assert anon.get(gen["outputs"]["video"]["url"]).status_code == 200
    assert anon.get(f"/v1/generations/{gen['id']}/content?variant=video").status_code == 401
    forged = gen["outputs"]["video"]["url"].replace(
        "variant=video", "variant=poster"
    )  # signature of another variant
    assert anon.get(forged).status_code == 401


def test_idempotency_same_key(server):
    client = server.user(credits=10)
    key = secrets.token_hex(8)
    first = submit(client, "a green star spins", key=key)
    again = submit(client, "a green star spins", key=key)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    # The body is compared after defaults are filled in: spelling out a default is the same request.
    explicit = submit(client, "a green star spins", key=key, negative_prompt="")
    assert explicit.json()["id"] == first.json()["id"]
    other = submit(client, "a pink ring orbits", key=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency.key.reused"
    wait_for(client, first.json()["id"], "succeeded")
    assert client.get("/v1/credits").json()["balance"] == 9  # charged once
    assert len(client.get("/v1/generations").json()["data"]) == 1


def test_idempotency_in_flight_is_409(server):
    client = server.user()
    key = secrets.token_hex(8)
    body = {"prompt": "a cyan ring", "seconds": 1, "steps": STEPS}
    from mutoscope.serve.schemas import GenerationCreate
    from mutoscope.serve.submit import request_hash

    # Another replica has claimed this key and is still working on the request.
    with server.ctx.db.write() as s:
        s.add(
            IdempotencyKey(
                user_id=client.user_id, key=key, request_hash=request_hash(GenerationCreate(**body))
            )
        )
    r = client.post("/v1/generations", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 409 and r.json()["code"] == "idempotency.key.in_flight"
    assert r.headers["content-type"] == "application/problem+json"


def test_idempotency_key_is_required_and_released_after_a_failed_request(server):
    client = server.user(credits=0)
    r = client.post("/v1/generations", json={"prompt": "x"})
    assert r.status_code == 400 and r.json()["code"] == "idempotency.key.missing"
    key = secrets.token_hex(8)
    assert submit(client, key=key).status_code == 402
    with server.ctx.db.write() as s:  # a top-up; the same key now goes through
        from mutoscope.serve import credits

        credits.grant(s, client.user_id, 5)
    assert submit(client, key=key).status_code == 201


def test_list_pagination_and_status_filter(server):
    client = server.user(credits=50, concurrent=10)
    ids = [submit(client, f"a red circle number {i}").json()["id"] for i in range(5)]
    for gen_id in ids:
        wait_for(client, gen_id, "succeeded")
    canceled = submit(client, "hold a yellow triangle")
    held = canceled.json()["id"]
    client.post(f"/v1/generations/{held}/cancel")
    wait_for(client, held, "canceled")
    server.engine.release("hold a yellow triangle")

    seen, cursor = [], None
    while True:
        page = client.get(
            "/v1/generations", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [g["id"] for g in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [held, *reversed(ids)]  # newest first, each once
    ok = client.get("/v1/generations", params={"status": "succeeded"}).json()["data"]
    assert {g["id"] for g in ok} == set(ids)
    assert [g["id"] for g in client.get("/v1/generations?status=canceled").json()["data"]] == [held]
    bad = client.get("/v1/generations", params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["code"] == "request.field.invalid"
    assert (
        client.get("/v1/generations", params={"cursor": "nonsense"}).json()["code"]
        == "request.cursor.invalid"
    )


def test_events_stream_and_resume(server):
    client = server.user()
    gen_id = submit(client, "a white star falls").json()["id"]
    events = _read_events(client, f"/v1/generations/{gen_id}/events")
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "status" and events[0][2]["status"] == "queued"
    assert "progress" in kinds and "output" in kinds
    assert events[-1][1] == "status" and events[-1][2]["status"] == "succeeded"
    ids = [i for i, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    progress = [d["progress"] for _, k, d in events if k == "progress"]
    assert progress == sorted(progress) and progress[0] > 0 and progress[-1] <= 1
    # Resume after the third event: exactly the rest, with the same ids and data.
    rest = _read_events(client, f"/v1/generations/{gen_id}/events", headers={"Last-Event-ID": "3"})
    assert rest == events[3:]
    # The signed events_url works without a key (EventSource cannot send headers).
    signed = client.get(f"/v1/generations/{gen_id}").json()["events_url"]
    assert _read_events(server.anonymous(), signed) == events


def _read_events(client: httpx.Client, url: str, headers: dict | None = None):
    import json

    events, current = [], {}
    with client.stream("GET", url, headers=headers, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "event" in current:
                if "id" in current:  # events without an id are live hints (queue position)
                    events.append((current["id"], current["event"], current["data"]))
                current = {}
    return events


def test_cancel_running_between_steps_releases_credits(server):
    client = server.user(credits=5)
    prompt = f"hold a purple ring {secrets.token_hex(3)}"
    gen_id = submit(client, prompt).json()["id"]
    try:
        running = wait_running(client, gen_id)
        held = client.get("/v1/credits").json()
        assert running["progress"] > 0 and (held["balance"], held["reserved"]) == (4, 1)
        r = client.post(f"/v1/generations/{gen_id}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        done = wait_for(client, gen_id, "canceled", "succeeded", "failed")
        assert done["status"] == "canceled" and done["outputs"] is None
        again = client.post(f"/v1/generations/{gen_id}/cancel")  # idempotent
        assert again.status_code == 200 and again.json()["status"] == "canceled"
    finally:
        server.engine.release(prompt)
    credits = client.get("/v1/credits").json()
    assert (credits["balance"], credits["reserved"]) == (5, 0)
    kinds = [row["kind"] for row in client.get("/v1/credits/ledger").json()["data"]]
    assert kinds == ["release", "reserve", "grant"]


def test_cancel_queued_and_finished(server):
    client = server.user(credits=5)
    wait_for(client, submit(client).json()["id"], "succeeded")  # the model's pace, for queued etas
    prompt = f"hold a red square {secrets.token_hex(3)}"
    first = submit(client, prompt).json()["id"]
    try:
        wait_running(client, first)
        queued = submit(client, "a green circle").json()
        behind = submit(client, "a green square").json()
        assert queued["status"] == "queued" and behind["queue_position"] == queued["queue_position"] + 1
        assert behind["eta_s"] > 0
        r = client.post(f"/v1/generations/{queued['id']}/cancel")
        assert r.json()["status"] == "canceled" and r.json()["credits_reserved"] == 0
        moved = client.get(f"/v1/generations/{behind['id']}").json()["queue_position"]
        assert moved == queued["queue_position"]
    finally:
        server.engine.release(prompt)
    wait_for(client, first, "succeeded")
    finished = client.post(f"/v1/generations/{first}/cancel")
    assert finished.status_code == 409 and finished.json()["code"] == "generation.finished"


def test_delete_removes_outputs(server):
    client = server.user()
    gen = wait_for(client, submit(client).json()["id"], "succeeded")
    folder = server.ctx.storage.outputs / client.user_id / gen["id"]
    assert any(folder.rglob("video.mp4"))
    assert client.delete(f"/v1/generations/{gen['id']}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/v1/generations/{gen['id']}").status_code == 404
    assert server.anonymous().get(gen["outputs"]["video"]["url"]).status_code == 404
    assert client.delete(f"/v1/generations/{gen['id']}").status_code == 404
    assert client.get("/v1/credits").json()["balance"] == 99  # the charge stands


def test_other_users_objects_are_404(server):
    alice, bob = server.user(), server.user()
    gen = wait_for(alice, submit(alice).json()["id"], "succeeded")
    for method, path in [
        ("GET", f"/v1/generations/{gen['id']}"),
        ("GET", f"/v1/generations/{gen['id']}/content"),
        ("GET", f"/v1/generations/{gen['id']}/events"),
        ("POST", f"/v1/generations/{gen['id']}/cancel"),
        ("DELETE", f"/v1/generations/{gen['id']}"),
    ]:
        r = bob.request(method, path)
        assert r.status_code == 404 and r.json()["code"] == "generation.not_found", (method, path)
    r = bob.post(f"/v1/generations/{gen['id']}/feedback", json={"thumb": "up"})
    assert r.status_code == 404
    assert bob.get("/v1/generations/gen_nope").status_code == 404


def test_unknown_fields_and_unsupported_controls_are_422(server):
    client = server.user()
    r = submit(client, colour="red")
    body = r.json()
    assert r.status_code == 422 and body["code"] == "request.field.unknown"
    assert r.headers["content-type"] == "application/problem+json"
    assert body["type"] == "urn:mutoscope:problem:request.field.unknown" and body["status"] == 422
    assert body["errors"][0]["loc"] == ["body", "colour"]
    r = submit(client, camera={"preset": "pan_left", "speed": 2})
    assert r.json()["code"] == "request.field.unknown"
    # Well-formed controls that a text-only model does not have: a clear code per control.
    no_controls = dict.fromkeys(("keyframes", "camera", "motion_brush", "extend"), False)
    with fake_model(server, "text-only-test", controls=no_controls, max_seconds=1.0) as text_only:
        for field, value in [
            ("camera", {"preset": "pan_left"}),
            ("keyframes", {"loop": True}),
            ("motion_brush", {"regions": [{"mask": "upl_" + "0" * 26, "trajectory": [[0, 0], [1, 1]]}]}),
            ("extend", {"generation_id": "gen_" + "0" * 26}),
        ]:
            r = submit(client, model=text_only, **{field: value})
            assert r.status_code == 422 and r.json()["code"] == f"generation.{field}.unsupported", r.text
        r = submit(client, model=text_only, seconds=30)
        assert r.json()["code"] == "generation.seconds.out_of_range" and r.json()["max"] == 1.0
    assert submit(client, seconds=601).json()["code"] == "request.field.invalid"  # 600 s at most
    assert submit(client, resolution="1080p").json()["code"] == "generation.resolution.unsupported"
    assert submit(client, sampler="dpm").json()["code"] == "generation.sampler.unsupported"
    assert submit(client, model="nope").json()["code"] == "model.not_found"
    assert client.get("/v1/credits").json()["balance"] == 100  # nothing was reserved


def test_moderation_blocks_without_charge_and_flags(server):
    client = server.user(credits=3)
    r = submit(client, "a FORBIDDENWORD circle")
    assert r.status_code == 422 and r.json()["code"] == "moderation.input.text"
    assert r.json()["category"] == "forbidden_test_category"
    assert client.get("/v1/credits").json()["balance"] == 3
    assert client.get("/v1/generations").json()["data"] == []
    flagged = submit(client, "a flagword square").json()
    assert flagged["moderation"]["category"] == "flagged_test_category"
    wait_for(client, flagged["id"], "succeeded")


def test_feedback_and_preferences(server):
    client = server.user()
    a = submit(client, "two red circles", seed=1).json()["id"]
    b = submit(client, "two  Red circles", seed=2).json()["id"]  # the same prompt, spaced differently
    c = submit(client, "a blue star").json()["id"]  # three at once: within the default limit of 4
    for gen_id in (a, b, c):
        wait_for(client, gen_id, "succeeded")
    r = client.post(f"/v1/generations/{a}/feedback", json={"thumb": "up", "rating": 5, "tags": ["sharp"]})
    assert r.status_code == 201 and r.json()["rating"] == 5 and r.json()["tags"] == ["sharp"]
    assert client.post(f"/v1/generations/{a}/feedback", json={"rating": 6}).status_code == 422
    assert client.post(f"/v1/generations/{a}/feedback", json={"comment": "meh"}).status_code == 422
    r = client.post("/v1/preferences", json={"chosen": a, "rejected": b, "reason": "smoother"})
    assert r.status_code == 201 and r.json()["prompt"] == "two red circles"
    r = client.post("/v1/preferences", json={"chosen": a, "rejected": c})
    assert r.status_code == 422 and r.json()["code"] == "preference.prompt_mismatch"
    assert client.post("/v1/preferences", json={"chosen": a, "rejected": a}).status_code == 422
