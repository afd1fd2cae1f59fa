"""The invisible watermark through real H.264 MP4 files, and `mutoscope verify`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mutoscope.cli import main
from mutoscope.data.world_stream import WorldStream
from mutoscope.post.mp4 import read_frames, write_mp4
from mutoscope.post.watermark import PAYLOAD, detect, embed, inspect, matches_claim, record_entry


def world_clip(seed: int = 0, size: int = 64) -> np.ndarray:
    return WorldStream(seed=seed, width=size, height=size, fps=8, seconds=2.0, as_tensor=False).sample(0)[
        "video"
    ]


def smooth_noise(t: int = 16, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Blurry colour noise, like an untrained model's output."""
    import cv2

    z = np.random.default_rng(seed).normal(size=(t, h // 8, w // 8, 3))
    up = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in z])
    return np.clip(up * 50 + 128, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2)))


def roundtrip(tmp_path, frames, name="clip.mp4", record=None, crf=18):
    path = tmp_path / name
    write_mp4(path, frames, 8, record, crf=crf)
    return path, read_frames(path)


@pytest.mark.parametrize(
    "clip", [world_clip(1), world_clip(2), smooth_noise()], ids=["world1", "world2", "noise"]
)
def test_survives_h264_at_the_base_size_and_is_invisible(tmp_path, clip):
    marked = embed(clip)
    assert marked.shape == clip.shape and marked.dtype == np.uint8
    assert psnr(clip, marked) > 40 and np.abs(marked.astype(int) - clip).max() <= 8
    assert detect(marked) == PAYLOAD  # before encoding: exact
    _, back = roundtrip(tmp_path, marked)
    found = inspect(back)
    assert found.present and found.payload == PAYLOAD and found.confidence > 0.5
    assert found.frames_marked >= 8  # most frames agree on every bit; the vote needs none alone


def test_small_frames(tmp_path):
    # 32x32 (the `test` preset) uses the small-frame scheme: 3 coefficients a block, 48 slots a frame
    clip = np.ascontiguousarray(world_clip(5, size=32)[:8])
    _, back = roundtrip(tmp_path, embed(clip))
    assert detect(back) == PAYLOAD and detect(embed(clip)[:1]) == PAYLOAD
    # 24x24 has 27 slots for the 48 message bits: the frames take turns, together they carry it
    small = np.ascontiguousarray(smooth_noise(8, 24, 24))
    _, back = roundtrip(tmp_path, embed(small), "small.mp4")
    assert detect(back) == PAYLOAD
    assert detect(embed(small)[:1]) is None  # one such frame cannot hold the whole message
    assert inspect(clip).frames_marked == 0


def test_survives_a_lower_quality_encode(tmp_path):
    _, back = roundtrip(tmp_path, embed(world_clip(3, size=128)), crf=23)
    assert detect(back) == PAYLOAD


@pytest.mark.parametrize("clip", [world_clip(1), smooth_noise(seed=5), np.full((8, 64, 64, 3), 90, np.uint8)])
def test_unmarked_videos_have_no_watermark(tmp_path, clip):
    _, back = roundtrip(tmp_path, clip)
    found = inspect(back)
    assert not found.present and found.payload is None and found.frames_marked == 0
    assert detect(clip) is None


def test_custom_payload_odd_size_and_tiny_frames(tmp_path):
    clip = smooth_noise(12, 40, 72)[:, :37, :63]  # odd: the writer pads, the reader crops
    _, back = roundtrip(tmp_path, embed(clip, b"\x00\xffid"))
    assert back.shape == clip.shape and detect(back) == b"\x00\xffid"
    tiny = smooth_noise(4, 8, 8)[:, :6, :6]  # under one 8x8 block: nothing to carry a mark
    assert np.array_equal(embed(tiny), tiny) and detect(tiny) is None
    with pytest.raises(ValueError):
        embed(clip, b"too long")
    with pytest.raises(ValueError):
        embed(clip.astype(np.float32))


def test_verify_cli(tmp_path, capsys):
    record = {"prompt": "a red ball bounces", "seed": 7, "model": "tiny",
              "watermark": record_entry()}  # fmt: skip
    marked, _ = roundtrip(tmp_path, embed(world_clip(4)), "marked.mp4", record)
    assert main(["verify", str(marked)]) == 0
    out = capsys.readouterr().out
    assert "watermark: present, payload 'muto'" in out and '"prompt": "a red ball bounces"' in out
    assert "verified" in out.splitlines()[-1]

    assert main(["verify", str(marked), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] and doc["watermark"]["payload_text"] == "muto" and doc["record"]["seed"] == 7

    plain, _ = roundtrip(tmp_path, world_clip(4), "plain.mp4", {"prompt": "x"})
    assert main(["verify", str(plain)]) == 1
    assert "NOT verified" in capsys.readouterr().out

    # a mark that contradicts the record's claim is not verified
    other, _ = roundtrip(tmp_path, embed(world_clip(4), b"abcd"), "other.mp4", record)
    assert main(["verify", str(other)]) == 1
    assert "does not match" in capsys.readouterr().out

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert main(["verify", str(junk)]) == 2
    assert main(["verify", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "no such file" in err


def test_record_claims():
    assert record_entry() == {"method": "dwt-dct-qim/v1", "payload": "6d75746f", "payload_text": "muto"}
    assert matches_claim(PAYLOAD, "muto") and matches_claim(PAYLOAD, "6d75746f") and matches_claim(None, None)
    assert not matches_claim(PAYLOAD, "abcd") and not matches_claim(None, "muto")
