"""`mutoscope world sample | render`: real MP4s on disk, the JSONL, the contact sheet, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mutoscope.cli import main
from mutoscope.data.world_stream import WorldStream
from mutoscope.post.mp4 import probe, read_frames, read_record, sidecar_path
from mutoscope.world.claims import claims_from_json, holds
from mutoscope.world.spec import SceneSpec

BIN = Path(sys.executable).with_name("mutoscope")  # the console script of the venv running pytest


def mutoscope(*args: str) -> subprocess.CompletedProcess:
    assert BIN.exists(), f"{BIN} missing: install the package (`make setup`)"
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> Path:
    """Three clips at 48x32 through the installed console script."""
    out = tmp_path_factory.mktemp("world") / "clips"
    done = mutoscope("world", "sample", "--n", "3", "--out", str(out), "--seed", "4",
                     "--size", "48x32")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return out


def test_sample_writes_clips_jsonl_and_sheet(sampled):
    names = sorted(p.name for p in sampled.iterdir())
    clips = [f"clip_{i:03d}.{ext}" for i in range(3) for ext in ("json", "mp4")]
    assert names == ["captions.jsonl", *clips, "contact_sheet.png"]
    info = probe(sampled / "clip_001.mp4")
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (48, 32, 16, 8.0)

    lines = (sampled / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    stream = WorldStream(seed=4, width=48, height=32, as_tensor=False)
    for i, line in enumerate(lines):
        entry = json.loads(line)
        assert set(entry) == {"file", "caption", "claims", "spec"}
        assert entry["file"] == f"clip_{i:03d}.mp4"
        # The files show exactly sample i of the training stream.
        item = stream.sample(i)
        assert entry["caption"] == item["caption"]
        assert entry["spec"] == json.loads(item["spec"])
        spec = SceneSpec.from_dict(entry["spec"])
        claims = claims_from_json(json.dumps(entry["claims"]))
        assert claims and all(holds(spec, c) for c in claims)
        # The record: embedded and in the sidecar, the same caption, claims and spec.
        record = read_record(sampled / entry["file"])
        assert record == json.loads(sidecar_path(sampled / entry["file"]).read_text())
        assert {k: record[k] for k in ("caption", "claims", "spec")} == {
            k: entry[k] for k in ("caption", "claims", "spec")
        }
        assert (record["seed"], record["index"]) == (4, i)
        decoded = read_frames(sampled / entry["file"])
        assert decoded.shape == item["video"].shape
        err = np.abs(decoded.astype(int) - item["video"]).mean()
        # yuv420p halves chroma: textured backgrounds at 48x32 lose ~4 levels on average.
        assert err < 6, err

    with Image.open(sampled / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG"
        # Three rows of 48x32 frames enlarged 4x (128 px) plus caption lines; six frames a row.
        assert sheet.height > 3 * 128 and sheet.width >= 6 * 192
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels.std() > 10  # not a blank canvas


def test_same_seed_same_clips_via_main(sampled, tmp_path, capsys):
    assert main(["world", "sample", "--n", "3", "--out", str(tmp_path), "--seed", "4",
                 "--width", "48", "--height", "32"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "clip_002.mp4" in out
    assert (tmp_path / "captions.jsonl").read_text() == (sampled / "captions.jsonl").read_text()
    assert np.array_equal(read_frames(tmp_path / "clip_000.mp4"),
                          read_frames(sampled / "clip_000.mp4"))  # fmt: skip


def test_kind_and_seconds_and_fps(tmp_path):
    from mutoscope.world.sample import KINDS

    kind = KINDS[-1]
    code = main(["world", "sample", "--n", "2", "--out", str(tmp_path), "--kind", kind,
                 "--seconds", "1", "--fps", "12", "--size", "32x32"])  # fmt: skip
    assert code == 0
    for line in (tmp_path / "captions.jsonl").read_text().splitlines():
        assert json.loads(line)["spec"]["extras"]["kind"] == kind
    info = probe(tmp_path / "clip_000.mp4")
    assert (info["frames"], info["fps"]) == (12, 12.0)


def test_render_a_sidecar_spec_at_another_size(sampled, tmp_path):
    out = tmp_path / "big.mp4"
    done = mutoscope("world", "render", str(sampled / "clip_000.json"), "--out", str(out),
                     "--size", "96x64", "--fps", "16")  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (96, 64, 32, 16.0)
    record = read_record(out)
    assert record["spec"] == read_record(sampled / "clip_000.mp4")["spec"]
    assert record["caption"] and record["claims"]
    # A bare spec renders too, and at the sampled size and rate it draws the same frames.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(record["spec"]))
    same = tmp_path / "same.mp4"
    assert main(["world", "render", str(spec), "--out", str(same), "--size", "48x32"]) == 0
    a, b = read_frames(same), read_frames(sampled / "clip_000.mp4")
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["world", "sample", "--n", "0", "--out", "{tmp}/o"], "--n"),
        (["world", "sample", "--n", "-3", "--out", "{tmp}/o"], "--n"),
        (["world", "sample", "--out", "{tmp}/o", "--size", "64by64"], "--size"),
        (["world", "sample", "--out", "{tmp}/o", "--size", "0x64"], "width and height"),
        (["world", "sample", "--out", "{tmp}/o", "--size", "64x64", "--width", "8"], "not both"),
        (["world", "sample", "--out", "{tmp}/o", "--fps", "0"], "--fps"),
        (["world", "sample", "--out", "{tmp}/o", "--kind", "nonsense"], "--kind"),
        (["world", "sample", "--out", "{tmp}/file/o"], "cannot create"),
        (["world", "sample", "--out", "{tmp}/file"], "not a directory"),
        (["world", "sample", "--n", "many", "--out", "{tmp}/o"], "invalid int"),
        (["world", "render", "{tmp}/bad.json", "--out", "{tmp}/o/x.mp4"], "not a valid scene"),
        (["world", "render", "{tmp}/wrong.json", "--out", "{tmp}/o/x.mp4"], "not a valid scene"),
        (["world", "render", "{tmp}/missing.json", "--out", "{tmp}/o/x.mp4"], "no such spec"),
        (["world", "render", "{tmp}/good.json", "--out", "{tmp}/o/x.avi"], ".mp4"),
        (["world", "render", "{tmp}/good.json", "--out", "{tmp}/file/x.mp4"], "not a directory"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, needle, sampled, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a directory")
    (tmp_path / "bad.json").write_text("{not json")
    good = json.loads((sampled / "clip_000.json").read_text())["spec"]
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "wrong.json").write_text(json.dumps({**good, "background": "lava"}))
    before = sorted(tmp_path.iterdir())
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mutoscope: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert sorted(tmp_path.iterdir()) == before  # no output directory, no half-written file


def test_bad_input_through_the_console_script(tmp_path):
    done = mutoscope("world", "sample", "--n", "0", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "mutoscope: error: --n must be at least 1, got 0\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["world"], ["world", "sample"], ["world", "render"]])
def test_help_on_every_command(args):
    done = mutoscope(*args, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mutoscope world")
    assert "--help" in done.stdout


def test_world_without_subcommand_prints_help_and_exits_2(capsys):
    assert main(["world"]) == 2
    assert "sample" in capsys.readouterr().out
