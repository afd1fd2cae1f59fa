"""The worker's post-processing hook: the invisible watermark in every frame and the poster."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mutoscope.post import watermark
from mutoscope.post.mp4 import read_frames, read_record, write_mp4, write_poster
from mutoscope.serve.hooks import watermark_video


def _clip(t: int = 16, size: int = 64) -> np.ndarray:
    """Smooth moving colour fields: something like a generated clip, not flat."""
    y, x = np.mgrid[0:size, 0:size] / size
    frames = [
        np.stack([120 + 80 * np.sin(6 * x + k / 3), 110 + 70 * np.cos(5 * y - k / 4), 100 + 60 * x * y], -1)
        for k in range(t)
    ]
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_watermark_video_marks_every_frame_and_the_poster(tmp_path):
    frames = _clip()
    video, poster = tmp_path / "video.mp4", tmp_path / "video.png"
    record = {"prompt": "a red ball", "seed": 3, "fps": 8.0}
    write_mp4(video, frames, 8.0, record)
    write_poster(poster, frames[8])
    assert watermark.detect(read_frames(video)) is None  # unmarked before

    out = watermark_video(video, poster, read_record(video))
    marked = read_frames(video)
    assert marked.shape == frames.shape
    assert watermark.detect(marked) == watermark.PAYLOAD
    # Most frames carry it on their own too (the clip was encoded twice: once by generate(), once here).
    assert watermark.inspect(marked).frames_marked >= len(frames) // 2
    assert watermark.detect(np.asarray(Image.open(poster).convert("RGB"))[None]) == watermark.PAYLOAD
    assert out["prompt"] == "a red ball" and out["watermark"]["method"] == watermark.METHOD
    assert read_record(video)["watermark"] == out["watermark"] and out["video"]["frames"] == 16
    # Marked once: a record that says so is not marked again.
    assert watermark_video(video, poster, out) == out
    assert np.array_equal(read_frames(video), marked)
