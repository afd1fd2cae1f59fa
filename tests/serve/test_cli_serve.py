"""`mutoscope serve` as a user runs it: a fresh data dir, a real process, a video at the end."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from tests.serve.harness import serve_process

from mutoscope.cli import main as cli
from mutoscope.post.mp4 import probe


@pytest.mark.slow
def test_serve_on_a_fresh_data_dir(tmp_path):
    log = tmp_path / "serve.log"
    deadline = time.monotonic() + 120
    with serve_process(tmp_path / "data", log) as url:
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
