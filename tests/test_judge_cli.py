"""`mutoscope judge`: a real MP4 on disk, a prompt or a claims file, PASS/FAIL lines, exit codes."""

from __future__ import annotations

import json

import pytest
from tests.test_judge import FPS, clip, obj

from mutoscope.cli import main
from mutoscope.post.mp4 import write_mp4
from mutoscope.world.claims import Claim, ClaimType, ObjectRef, claims_to_json
from mutoscope.world.vocab import Shape


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge") / "clip.mp4"
    write_mp4(path, clip([obj("circle", "red", "large", 0.5, 0.5)]), FPS)
    return path


def test_prompt_passes_and_fails(video, capsys):
    assert main(["judge", str(video), "--prompt", "a large red ball"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out
    assert "consistency:" in out
    assert main(["judge", str(video), "--prompt", "a small blue star"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_claims_file_and_json(video, tmp_path, capsys):
    claims = [
        Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.CIRCLE), value="red"),
        Claim(ClaimType.SHAPE, subject=ObjectRef(color="red"), value="square"),
    ]
    path = tmp_path / "claims.json"
    path.write_text(claims_to_json(claims))
    assert main(["judge", str(video), "--claims", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [v["passed"] for v in report["verdicts"]] == [True, False]
    assert report["frames"] == 16 and report["fps"] == FPS
    assert 0 <= report["consistency"]["score"] <= 100


@pytest.mark.parametrize(
    "args",
    [
        ["judge", "no/such/clip.mp4", "--prompt", "a red ball"],
        ["judge", "{video}", "--claims", "no/such/claims.json"],
        ["judge", "{video}", "--prompt", "zzz qqq"],
        ["judge", "{video}", "--claims", "{bad}"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, video, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    args = [a.format(video=video, bad=bad) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mutoscope: error:") and "\n" not in err
