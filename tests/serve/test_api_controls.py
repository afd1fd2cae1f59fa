"""Controls through the API: keyframes, camera, motion brush, extend; their inputs reaching the
in-process worker and a remote `mutoscope worker`; and the checks that run before credits move.

The `test` preset takes control inputs (cond_channels > 0), so the shipped harness engine has every
control; the tiers that need the post stages' weights are exercised on a model registered with
them (`fake_model`) and on the engine's capabilities with a folder of stand-in weights.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from harness import Server, fake_model, real_engine, settings_for, submit, upload_image, wait_for

from mutoscope.post.mp4 import probe
from mutoscope.serve import accounts
from mutoscope.serve.capabilities import output_size
from mutoscope.serve.engine import GenerateEngine, brush_path
from mutoscope.serve.sources import LEASE_HEADER
from mutoscope.serve.tables import Upload

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(0)


def picture(h: int = 40, w: int = 48) -> np.ndarray:
    return RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)


def mask(h: int = 32, w: int = 32) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : h // 2, w // 4 : w // 2] = 255
    return m


def done_record(client: httpx.Client, gen_id: str) -> dict:
    gen = wait_for(client, gen_id, "succeeded", "failed")
    assert gen["status"] == "succeeded", gen["error"]
    return gen["outputs"]["record"]


def test_keyframes_and_camera(server):
    client = server.user()
    first = upload_image(client, picture())
    a = submit(client, "a red ball rolls", keyframes={"first": first}, continue_guidance=1.5, known_start=0.5)
    a = a.json()["id"]
    b = submit(client, "a red ball rolls", keyframes={"loop": True}, camera={"preset": "pan_left"}).json()[
        "id"
    ]
    axes = {"pan": 3, "zoom": -2}
    c = submit(client, "a red ball rolls", camera={"axes": axes}, image_first=True).json()["id"]
    d = submit(client, "a red ball", image_first=True, image_guidance=3.5).json()["id"]
    record = done_record(client, a)
    assert record["controls"] == {"first_frame": first}  # named by its upload id
    assert record["continue_cfg"] == 1.5  # the guidance from the known frame
    assert record["known_start"] == 0.5  # sampled from the frame repeated, noised to t = 0.5
    looped = done_record(client, b)["controls"]
    assert looped == {"loop": True, "camera": {"pan": -5.0}}  # the preset as its axes
    record = done_record(client, c)
    assert record["controls"] == {"camera": {"pan": 3.0, "zoom": -2.0}} and record["image_first"] is True
    assert done_record(client, a)["image_first"] is False  # the model's default
    assert record["image_cfg"] is None  # the camera move has no image stage: no image guidance
    drawn = done_record(client, d)
    assert drawn["image_first"] is True and drawn["image_cfg"] == 3.5


def test_motion_brush(server):
    client = server.user()
    m1, m2, still = (upload_image(client, x) for x in (mask(), mask(64, 48), 255 - mask()))
    brush = {
        "regions": [
            {"mask": m1, "trajectory": [[0.2, 0.5], [0.5, 0.4], [0.8, 0.5]]},  # spread over the 1 s
            {"mask": m2, "trajectory": [[0.5, 0.2], [0.5, 0.8]], "times": [0.25, 0.5]},
        ],
        "static_mask": still,
    }
    gen = submit(client, "a green star drifts", motion_brush=brush).json()
    assert gen["params"]["motion_brush"] == brush  # reusable as a request body, as it was given
    used = done_record(client, gen["id"])["controls"]
    assert used["brush"] == [
        {"mask": m1, "path": [[0.0, 0.2, 0.5], [0.5, 0.5, 0.4], [1.0, 0.8, 0.5]]},
        {"mask": m2, "path": [[0.25, 0.5, 0.2], [0.5, 0.5, 0.8]]},
    ]
    assert used["static_mask"] == still


def test_extend_and_long_videos(server, tmp_path):
    client = server.user()
    source = submit(client, "a blue square slides").json()["id"]
    wait_for(client, source, "succeeded")
    r = submit(client, "a blue square slides on", seconds=2, extend={"generation_id": source})
    assert r.status_code == 201 and r.json()["cost"] == 2, r.text
    gen = wait_for(client, r.json()["id"], "succeeded", "failed")
    assert gen["status"] == "succeeded", gen["error"]
    record = gen["outputs"]["record"]
    assert record["controls"] == {"extend": source} and record["segments"] == 4  # 4 new frames each
    path = tmp_path / "ext.mp4"
    path.write_bytes(client.get(gen["outputs"]["video"]["url"]).content)
    assert probe(path)["frames"] == 16  # 2 s at 8 fps: the continuation, without its source
    # Past one clip without a source video: extension segment by segment (the model has controls).
    long = done_record(client, submit(client, "a pink ring orbits", seconds=3).json()["id"])
    assert long["frames"] == 24 and long["segments"] == 5


def test_storyboard_and_camera_path(server):
    client = server.user(credits=20)
    board = [{"prompt": "a red ball bounces", "seconds": 1}, {"prompt": "a blue star spins", "seconds": 0.5}]
    path = [{"t": 1, "x": 0.2, "zoom": 1.5}]
    gen = submit(client, "two shots", storyboard=board, camera={"path": path}).json()
    assert gen["params"]["seconds"] == 1.5 and gen["cost"] == 2  # the shots' total, started seconds
    record = done_record(client, gen["id"])
    assert record["controls"]["storyboard"] == board and record["frames"] == 12
    assert record["controls"]["camera"] == [[0, 0, 0, 1, 0], [1, 0.2, 0, 1.5, 0]]  # t, x, y, zoom, roll
    # Every shot is moderated, not only the video's name; and a storyboard past 600 s is refused.
    blocked = submit(client, "two shots", storyboard=[*board, {"prompt": "a FORBIDDENWORD", "seconds": 1}])
    assert blocked.status_code == 422 and blocked.json()["code"] == "moderation.input.text"
    long = submit(client, "x", storyboard=[{"prompt": "a ball", "seconds": 400}] * 2)
    assert long.status_code == 422 and long.json()["code"] == "request.field.invalid"
    both = submit(client, "x", camera={"preset": "pan_left", "path": path})
    assert both.status_code == 422 and both.json()["errors"][0]["loc"] == ["body", "camera"]


def test_bad_inputs_are_422_before_any_credits(server):
    client, other = server.user(credits=5), server.user()
    theirs = upload_image(other, picture())
    black = upload_image(client, np.zeros((16, 16), np.uint8))
    mine = upload_image(client, mask())
    with server.ctx.db.write() as s:  # an upload of a kind other than an image (none exists yet)
        row = s.get(Upload, mine)
        clip = Upload(id="upl_" + "V" * 26, user_id=client.user_id, content_type="video/mp4", bytes=1,
                      width=1, height=1, sha256="0" * 64, path=row.path)  # fmt: skip
        s.add(clip)
    their_gen = wait_for(other, submit(other).json()["id"], "succeeded")["id"]
    deleted = wait_for(client, submit(client).json()["id"], "succeeded")["id"]
    client.delete(f"/v1/generations/{deleted}")
    region = {"mask": mine, "trajectory": [[0, 0], [1, 1]]}
    prompt = f"hold a running source {secrets.token_hex(3)}"
    running = submit(client, prompt).json()["id"]
    try:
        cases = [
            ({"keyframes": {"first": theirs}}, "generation.upload.not_found", "keyframes.first"),
            ({"keyframes": {"last": clip.id}}, "generation.upload.not_image", "keyframes.last"),
            ({"motion_brush": {"regions": [{**region, "mask": black}]}}, "generation.upload.mask_empty",
             "motion_brush.regions.0.mask"),
            ({"motion_brush": {"regions": [region], "static_mask": black}}, "generation.upload.mask_empty",
             "motion_brush.static_mask"),
            ({"extend": {"generation_id": their_gen}}, "generation.extend.not_found", "extend"),
            ({"extend": {"generation_id": deleted}}, "generation.extend.not_found", "extend"),
            ({"extend": {"generation_id": running}}, "generation.extend.not_ready", "extend"),
            ({"extend": {"generation_id": deleted}, "keyframes": {"first": mine}},
             "generation.extend.conflict", "extend"),
        ]  # fmt: skip
        for fields, code, field in cases:
            r = submit(client, **fields)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert (r.json()["code"], r.json()["field"]) == (code, field), fields
        for fields, loc in [
            ({"motion_brush": {"regions": [region] * 6}}, ["body", "motion_brush", "regions"]),
            (
                {"motion_brush": {"regions": [{**region, "times": [0]}]}},
                ["body", "motion_brush", "regions", 0],
            ),
            ({"keyframes": {"loop": True, "last": mine}}, ["body", "keyframes"]),
            ({"camera": {"preset": "pan_left", "axes": {"pan": 1}}}, ["body", "camera"]),
            ({"camera": {"axes": {"pan": 11}}}, ["body", "camera", "axes", "pan"]),
            ({"continue_guidance": -1}, ["body", "continue_guidance"]),
            ({"image_first": "yes"}, ["body", "image_first"]),
            ({"image_guidance": 31}, ["body", "image_guidance"]),
            ({"known_start": 0}, ["body", "known_start"]),
        ]:
            r = submit(client, **fields)
            assert r.status_code == 422 and r.json()["code"] == "request.field.invalid", r.text
            assert r.json()["errors"][0]["loc"] == loc
        # Tiers that need the post stages' weights, which the test engine has not got.
        for fields, code in [
            ({"fps": 30}, "generation.fps.unsupported"),
            ({"resolution": "1080p"}, "generation.resolution.unsupported"),
            ({"aspect": "16:9"}, "generation.aspect.unsupported"),
        ]:
            assert submit(client, **fields).json()["code"] == code
        held = client.get("/v1/credits").json()  # a charge (the deleted one) and a hold (the running one)
        assert (held["balance"], held["reserved"]) == (3, 1)
    finally:
        client.post(f"/v1/generations/{running}/cancel")
        server.engine.release(prompt)


def test_upscaled_tiers_are_priced_and_reach_the_job(server):
    client = server.user(credits=100)
    tiers = {
        "resolutions": ["base", "720p", "1080p"],
        "aspects": ["1:1", "16:9", "9:16"],
        "fps_options": [30.0],
    }
    with fake_model(server, "upscaling-test", **tiers) as model:
        r = submit(client, model=model, seconds=2, resolution="1080p", aspect="9:16", fps=30)
        assert r.status_code == 201, r.text
        gen = r.json()
        assert gen["cost"] == 2 * 8 * 2  # 2 s at the 1080p rate, twice for 30 fps (credits.py)
        assert {k: gen["params"][k] for k in ("resolution", "aspect", "fps")} == {
            "resolution": "1080p", "aspect": "9:16", "fps": 30.0}  # fmt: skip
        assert client.get("/v1/credits").json()["reserved"] == 32
        r = submit(client, model=model, aspect="16:9")  # other aspects are for the upscaled tiers
        assert r.json()["code"] == "generation.aspect.unsupported"
        client.post(f"/v1/generations/{gen['id']}/cancel")
    assert client.get("/v1/credits").json()["balance"] == 100


def test_engine_capabilities_follow_the_post_weights(tmp_path):
    pipe = real_engine().pipe
    assert GenerateEngine(pipe, post_weights=tmp_path).capabilities().fps_options == ()
    (tmp_path / "config.json").write_text(json.dumps({"interp": {}, "upscale": {}}))
    for name in ("interp", "upscale"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    caps = GenerateEngine(pipe, post_weights=tmp_path).capabilities()
    assert caps.fps_options == (30.0,) and caps.resolutions == ("base", "720p", "1080p")
    assert caps.aspects == ("1:1", "16:9", "9:16") and caps.controls["extend"] and caps.max_seconds == 600


def test_sizes_and_trajectory_times():
    assert output_size("1080p", "16:9", 64, 64) == (1920, 1080)
    assert output_size("1080p", "9:16", 64, 64) == (1080, 1920)
    assert output_size("1080p", None, 64, 64) == (1080, 1080)  # the model's aspect
    assert output_size("720p", "16:9", 64, 64) == (1280, 720)
    assert output_size("base", "1:1", 64, 64) is None
    assert brush_path({"trajectory": [[0, 0], [1, 1], [0, 1]]}, 3.0)[1] == [1.5, 1.0, 1.0]


# A server without an in-process worker: jobs go to `mutoscope worker --server` (SQLite is enough).


@pytest.fixture
def queue_only(tmp_path):
    (tmp_path / "server").mkdir()
    with Server(settings_for(tmp_path / "server", None)) as server:
        with server.ctx.db.write() as s:
            server.worker_token = accounts.create_worker_token(s, name="test")
        yield server


def test_remote_worker_downloads_the_inputs(queue_only, tmp_path):
    server, scratch = queue_only, tmp_path / "scratch"
    cmd = [sys.executable, "-m", "mutoscope.cli", "worker", "--server", server.url, "--token",
           server.worker_token, "--preset", "test", "--poll-s", "0.1", "--scratch", str(scratch)]  # fmt: skip
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ)
    try:
        client = server.user(rate=100_000)
        deadline = time.monotonic() + 120
        while not server.anonymous().get("/v1/models").json()["data"]:
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        source = submit(client, "a red circle moves right").json()["id"]
        last, region, still = (
            upload_image(client, picture()),
            upload_image(client, mask()),
            upload_image(client, 255 - mask()),
        )
        wait_for(client, source, "succeeded", timeout=120)
        gen = submit(
            client,
            "a red circle keeps moving",
            keyframes={"last": last},
            motion_brush={
                "regions": [{"mask": region, "trajectory": [[0.3, 0.5], [0.7, 0.5]]}],
                "static_mask": still,
            },
            extend={"generation_id": source},
        ).json()
        done = wait_for(client, gen["id"], "succeeded", "failed", timeout=120)
        assert done["status"] == "succeeded", (done["error"], log.read_text())
        used = done["outputs"]["record"]["controls"]
        assert (used["last_frame"], used["static_mask"], used["extend"]) == (last, still, source)
        assert used["brush"][0]["mask"] == region
        while any(scratch.iterdir()):  # the job's folder, downloads included, goes after the report
            assert time.monotonic() < deadline, list(scratch.rglob("*"))
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()


def test_worker_inputs_route_serves_only_the_leased_jobs_inputs(queue_only):
    server = queue_only
    engine = real_engine()
    worker = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.worker_token}"}, timeout=30
    )
    assert (
        worker.post("/v1/worker/models", json={"id": engine.model_id, "info": engine.info()}).status_code
        == 204
    )
    client = server.user()
    image = picture()
    first, unrelated = upload_image(client, image), upload_image(client, picture())
    gen_id = submit(client, keyframes={"first": first}).json()["id"]
    job = worker.post("/v1/worker/lease", json={"worker_id": "w", "models": [engine.model_id]}).json()
    assert job["generation_id"] == gen_id
    url, token = f"/v1/worker/jobs/{job['job_id']}/inputs", {LEASE_HEADER: job["token"]}

    r = worker.get(f"{url}/{first}", headers=token)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    stored = server.ctx.storage.uploads / client.user_id
    assert r.content == next(stored.glob(f"{first}.*")).read_bytes()
    r = worker.get(f"{url}/{unrelated}", headers=token)  # the user's, but not this job's
    assert r.status_code == 404 and r.json()["code"] == "job.input.not_found"
    r = worker.get(f"{url}/{first}", headers={LEASE_HEADER: "0" * 32})
    assert r.status_code == 409 and r.json()["code"] == "lease.lost"
    assert server.anonymous().get(f"{url}/{first}", headers=token).status_code == 401
    assert client.get(f"{url}/{first}", headers=token).status_code == 401  # an API key is not a worker's
    next(stored.glob(f"{first}.*")).unlink()
    r = worker.get(f"{url}/{first}", headers=token)
    assert r.status_code == 404 and r.json()["code"] == "job.input.unavailable"
    body = {"token": job["token"], "code": "job.input.unavailable", "message": "gone"}
    assert worker.post(f"/v1/worker/jobs/{job['job_id']}/fail", json=body).status_code == 204
    assert wait_for(client, gen_id, "failed")["credits_charged"] == 0
