"""`mutoscope serve` as a user runs it: a fresh data dir, a real process, a video at the end."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mutoscope.cli import main as cli
from mutoscope.post.mp4 import probe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_on_a_fresh_data_dir(tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "mutoscope.cli", "serve", "--preset", "test", "--port", str(port),
           "--data-dir", str(tmp_path / "data"), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # up, and the in-process worker has loaded the model
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/v1/models").json()["data"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        key = re.search(r"\b(mk_[A-Za-z0-9_-]{20,})", log.read_text()).group(1)  # the first admin's key
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert client.get("/v1/me").json()["is_admin"] is True
        r = client.post("/v1/generations", json={"prompt": "a red circle", "steps": 2, "seconds": 1},
                        headers={"Idempotency-Key": "first"})  # fmt: skip
        assert r.status_code == 201, r.text
        while (gen := client.get(f"/v1/generations/{r.json()['id']}").json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert gen["status"] == "succeeded", gen
        (tmp_path / "v.mp4").write_bytes(client.get(gen["outputs"]["video"]["url"]).content)
        assert probe(tmp_path / "v.mp4")["frames"] == 8
        home = httpx.get(f"{url}/")
        assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # The files are where the docs say, and the admin CLI reads the same database.
    assert (tmp_path / "data" / "mutoscope.db").is_file()
    assert list((tmp_path / "data" / "outputs").rglob("video.mp4"))
    assert cli(["admin", "--data-dir", str(tmp_path / "data"), "users", "list"]) == 0


def test_cli_help_and_bad_input(capsys):
    for command in (["serve", "--help"], ["worker", "--help"], ["admin", "waitlist", "approve", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli(command)
        assert e.value.code == 0
    assert cli(["worker", "--server", "http://127.0.0.1:9", "--token", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--token" in err  # one readable line, no traceback
