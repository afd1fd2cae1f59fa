"""Reliability basics: a worker killed mid-job, and a burst of submissions that outruns the balance.

Both run on SQLite and on PostgreSQL. The killed worker is a real `mutoscope worker` process
(SIGKILL: no clean-up, no goodbye); a second worker process must finish the job once the lease
expires, and the job must be completed and charged exactly once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import Server, postgres_database, settings_for, submit, wait_for

from mutoscope.post.mp4 import probe
from mutoscope.serve import accounts

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue_only_server(request, tmp_path):
    """A server without an in-process worker (remote workers only), with short leases."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgres" else None
        yield stack.enter_context(Server(settings_for(tmp_path, url, lease_s=2.0)))


def _worker(server: Server, token: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mutoscope.cli", "worker", "--server", server.url, "--token", token,
           "--engine", "harness:slow_engine", "--poll-s", "0.1"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkilled_worker_job_completes_once_and_is_charged_once(queue_only_server, tmp_path):
    server = queue_only_server
    with server.ctx.db.write() as s:
        token = accounts.create_worker_token(s, name="test")
    client = server.user(credits=5, rate=100_000)  # the test polls often
    a = _worker(server, token, tmp_path / "a.log")
    b = None
    try:
        deadline = time.monotonic() + 90
        while not server.anonymous().get("/v1/models").json()["data"]:  # A has loaded its model
            assert a.poll() is None and time.monotonic() < deadline, (tmp_path / "a.log").read_text()
            time.sleep(0.1)
        gen_id = submit(client, "a pink star zigzags", steps=8).json()["id"]
        while True:  # A is mid-job: claimed, and reporting denoising progress
            gen = client.get(f"/v1/generations/{gen_id}").json()
            if gen["status"] == "running" and gen["stage"] == "denoise":
                break
            assert gen["status"] in ("queued", "running") and time.monotonic() < deadline, gen
            time.sleep(0.02)
        a.send_signal(signal.SIGKILL)
        a.wait()
        assert client.get(f"/v1/generations/{gen_id}").json()["status"] == "running"  # nobody knows yet

        b = _worker(server, token, tmp_path / "b.log")
        done = wait_for(client, gen_id, "succeeded", "failed", timeout=120)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and done["credits_charged"] == 1
    ledger = [(r["kind"], r["delta"]) for r in client.get("/v1/credits/ledger").json()["data"]]
    assert ledger == [("charge", -1), ("release", 1), ("reserve", -1), ("grant", 5)]  # charged exactly once
    attempts = list((server.ctx.storage.outputs / client.user_id / gen_id).iterdir())
    assert len(attempts) == 1  # only the surviving attempt's files exist
    video = tmp_path / "v.mp4"
    video.write_bytes(client.get(done["outputs"]["video"]["url"]).content)
    assert probe(video)["codec"] == "h264"
    events = server.anonymous().get(done["events_url"]).text
    assert '"requeued":"lease_expired"' in events


def test_fifty_concurrent_submissions_against_a_balance_of_ten(server):
    client = server.user(credits=10, concurrent=100, rate=10_000)
    prompt = f"hold a burst {secrets.token_hex(3)}"  # the first accepted job holds the worker
    lowest, stop = [10], threading.Event()

    def watch():  # the balance, read while the burst is in flight
        while not stop.is_set():
            lowest[0] = min(lowest[0], client.get("/v1/credits").json()["balance"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda i: submit(client, prompt, key=f"burst-{i}"), range(50)))
    finally:
        stop.set()
        watcher.join()
    codes = sorted(r.status_code for r in answers)
    assert codes.count(201) == 10 and codes.count(402) == 40, codes
    assert all(r.json()["code"] == "credits.insufficient" for r in answers if r.status_code == 402)
    assert lowest[0] >= 0
    credits = client.get("/v1/credits").json()
    assert (credits["balance"], credits["reserved"]) == (0, 10)

    accepted = [r.json()["id"] for r in answers if r.status_code == 201]
    for gen_id in accepted:
        client.post(f"/v1/generations/{gen_id}/cancel")
    for gen_id in accepted:
        assert wait_for(client, gen_id, "canceled")["credits_charged"] == 0
    server.engine.release(prompt)
    credits = client.get("/v1/credits").json()
    assert (credits["balance"], credits["reserved"]) == (10, 0)
