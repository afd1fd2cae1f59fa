"""Test harness for the API: a real server (uvicorn on a free port, in a thread) on a real database.

`server` is parametrised over SQLite (a file in a temp dir) and PostgreSQL (a database created for
this test session on 127.0.0.1:5432 and dropped afterwards). The postgres instance is marked
`postgres`; if the server cannot be reached, those tests FAIL with a message saying so.

The in-process worker runs the real engine, `generate()` over the random `test` preset, behind a
gate: a prompt that starts with "hold" stops at its first denoising step (still heartbeating)
until the test releases it, which makes "running", "cancel mid-run" and "queue behind a job"
deterministic without timing guesses.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from mutoscope.serve import accounts
from mutoscope.serve.app import create_app
from mutoscope.serve.settings import ServeSettings

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SQLALCHEMY = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
STEPS = 2  # denoising steps for test generations: the point is the plumbing, not the picture


class GatedEngine:
    """The real engine, with prompts starting "hold" held at their first step until released."""

    def __init__(self, inner):
        self.inner, self.model_id = inner, inner.model_id
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def gate(self, prompt: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(prompt, threading.Event())

    def release(self, prompt: str) -> None:
        self.gate(prompt).set()

    def info(self) -> dict:
        return self.inner.info()

    def run(self, params, out_dir, callback, inputs=None):
        if not params["prompt"].startswith("hold"):
            return self.inner.run(params, out_dir, callback, inputs)
        gate = self.gate(params["prompt"])

        def held(stage, done, total):
            callback(stage, done, total)
            while not gate.wait(0.05):
                callback(stage, done, total)  # heartbeats go on; a cancel raises here

        return self.inner.run(params, out_dir, held, inputs)


_ENGINE = None


def real_engine():
    """generate() over the `test` preset, loaded once per test session."""
    global _ENGINE
    if _ENGINE is None:
        from mutoscope.serve.engine import GenerateEngine

        _ENGINE = GenerateEngine.load(preset="test")
    return _ENGINE


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this session; dropped afterwards."""
    import psycopg

    name = f"mutoscope_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_ADMIN_URL} ({e}). The `postgres` tests need it: start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or deselect them "
            "with -m 'not postgres'.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_SQLALCHEMY.format(db=name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Server:
    """A running API: base URL, its context (database, storage) and its engine."""

    def __init__(self, settings: ServeSettings, engine=None):
        self.settings, self.engine = settings, engine
        factory = (lambda: engine) if engine is not None else None
        self.app = create_app(settings, engine_factory=factory)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.uvicorn.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        if self.engine is not None:  # wait for the in-process worker to register its model
            with httpx.Client(base_url=self.url) as c:
                while not c.get("/v1/models").json()["data"]:
                    assert time.monotonic() < deadline, "the worker never registered its model"
                    time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    @property
    def ctx(self):
        return self.app.state.ctx

    def user(
        self, credits: int = 100, *, rate: int | None = None, concurrent: int | None = None
    ) -> httpx.Client:
        """A new user with its own API key: an httpx client authenticated as it."""
        with self.ctx.db.write() as s:
            user = accounts.create_user(s, email=f"{secrets.token_hex(4)}@example.com", credits_=credits)
            user.rate_per_minute, user.max_concurrent_jobs = rate, concurrent
            _, key = accounts.create_api_key(s, user.id)
            user_id = user.id
        client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        client.user_id, client.api_key = user_id, key
        return client

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def settings_for(tmp: Path, database_url: str | None, **overrides) -> ServeSettings:
    policy = tmp / "policy.yaml"
    policy.write_text(
        "name: test\nsemantic: false\ncategories:\n"
        "  forbidden_test_category:\n    action: block\n    keywords: {en: [forbiddenword]}\n"
        "  flagged_test_category:\n    action: flag\n    keywords: {en: [flagword]}\n"
    )
    values = dict(
        data_dir=tmp,
        database_url=database_url,
        lease_s=5.0,
        reaper_interval_s=0.2,
        sse_poll_s=0.05,
        moderation_policy=str(policy),
        webhook_allow_private=True,  # the test receivers listen on 127.0.0.1
    )
    return ServeSettings(**{**values, **overrides})


def wait_for(client: httpx.Client, gen_id: str, *statuses: str, timeout: float = 60.0) -> dict:
    """Poll a generation until it reaches one of `statuses` (a generous bound, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        gen = client.get(f"/v1/generations/{gen_id}").json()
        if gen["status"] in statuses:
            return gen
        assert time.monotonic() < deadline, f"{gen_id} stayed {gen['status']} (wanted {statuses})"
        time.sleep(0.05)


def wait_running(client: httpx.Client, gen_id: str) -> dict:
    """Until the worker has started denoising (progress reported)."""
    deadline = time.monotonic() + 60
    while True:
        gen = client.get(f"/v1/generations/{gen_id}").json()
        if gen["status"] == "running" and gen["stage"] == "denoise":
            return gen
        assert gen["status"] in ("queued", "running"), gen
        assert time.monotonic() < deadline, f"{gen_id} never started: {gen}"
        time.sleep(0.05)


def submit(client: httpx.Client, prompt: str = "a red circle moves right", key: str | None = None, **fields):
    body = {"prompt": prompt, "seconds": 1, "steps": STEPS, **fields}
    return client.post("/v1/generations", json=body, headers={"Idempotency-Key": key or secrets.token_hex(8)})


def upload_image(client: httpx.Client, image) -> str:
    """POST an (H, W, 3) or (H, W) uint8 array as a PNG to /v1/uploads; returns the upload id."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    r = client.post("/v1/uploads", files={"file": ("image.png", buf.getvalue(), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@contextlib.contextmanager
def fake_model(server: Server, model_id: str, **capabilities) -> Iterator[str]:
    """A model registered as if a worker had loaded it (none has: its jobs only queue), seen long
    ago so that it never becomes the default model; removed afterwards. `capabilities` override
    the test engine's."""
    import datetime as dt

    from mutoscope.serve import registry
    from mutoscope.serve.tables import ModelEntry, utcnow

    info = server.engine.info() if server.engine is not None else real_engine().info()
    info = {**info, "capabilities": {**info["capabilities"], **capabilities}}
    with server.ctx.db.write() as s:
        registry.register(s, model_id, info)
        s.flush()
        s.get(ModelEntry, model_id).last_seen_at = utcnow() - dt.timedelta(days=1)
    try:
        yield model_id
    finally:
        with server.ctx.db.write() as s:
            s.delete(s.get(ModelEntry, model_id))


class SlowEngine:
    """The real engine with a pause after every step: a job that lasts long enough to be killed."""

    def __init__(self, inner, step_s: float):
        self.inner, self.model_id, self.step_s = inner, inner.model_id, step_s

    def info(self) -> dict:
        return self.inner.info()

    def run(self, params, out_dir, callback, inputs=None):
        def slow(stage, done, total):
            callback(stage, done, total)
            if stage == "denoise":
                time.sleep(self.step_s)

        return self.inner.run(params, out_dir, slow, inputs)


def slow_engine(args) -> SlowEngine:
    """`mutoscope worker --engine harness:slow_engine`: the `test` preset, 0.3 s per denoising step."""
    from mutoscope.serve.engine import GenerateEngine

    return SlowEngine(GenerateEngine.load(preset="test"), step_s=0.3)


@contextlib.contextmanager
def serve_process(data_dir: Path, log: Path) -> Iterator[str]:
    """`mutoscope serve --preset test` as a user runs it, in its own process on a free port; yields
    its URL once the in-process worker has registered its model, and stops it (SIGINT) afterwards."""
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "mutoscope.cli", "serve", "--preset", "test", "--port", str(port),
           "--data-dir", str(data_dir), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/models").json()["data"]:
                    break
            assert time.monotonic() < deadline, f"server did not come up:\n{log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(2)  # SIGINT: the way a user stops it, graceful shutdown included
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
