"""MP4 in and out through PyAV: H.264 / yuv420p / faststart, with the generation record inside.

Every file we write carries its JSON generation record twice: in the container's `comment` tag
(`format.tags.comment` in `ffprobe -show_format`, what `read_record` reads back) and in a sidecar
`<stem>.json` beside it. Writes are atomic: everything goes to hidden temporary files in the target
directory and is moved into place with `os.replace` only once complete, so a failed write leaves
nothing behind, not even a partial file.

yuv420p stores chroma at half resolution, so H.264 needs even width and height. Odd sizes are
padded by repeating the last column / row (no input pixel is lost, the padding is invisible at the
border). The record's `video` block states both the encoded size (`width`, `height`: what ffprobe
reports) and the size of the content (`content_width`, `content_height`); `read_frames` crops the
padding back off, so a 63x37 clip round-trips as 63x37.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

RECORD_TAG = "comment"  # container tag holding the JSON record
CODEC = "libx264"
PIX_FMT = "yuv420p"
# BT.709, limited range, tagged in the stream so that players convert back the way we converted.
_BT709 = 1  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC value for BT.709
_MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited (16-235) range
# Exact rounding into YUV; decoding back with it on is measurably worse (mean error 2.1 vs 1.1 on
# the palette), so reading uses swscale's default.
_SWS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
# The same frames make the same file, on every machine and in every run:
# - x264's output depends on its thread count; PyAV asks for slice threads, as many as the CPUs the
#   process may use at that moment, which changed between two encodes in one process. Frame threads
#   of a fixed count instead.
# - At widths that are not a multiple of 128 px (our 64 px base, 1080 px vertical and square), x264's
#   macroblock-tree rate control reads memory it never wrote: the same frames came out up to 23 levels
#   apart depending on what the process had freed before (MALLOC_PERTURB_ changes them; widths of
#   128, 256, 384, 1280 and 1920 px stay put). There it is turned off; elsewhere it stays, as it
#   halves a 1080p file at the same crf.
X264_THREADS = 4
DETERMINISTIC_MBTREE_WIDTH = 128


def _x264_options(crf: int, preset: str, width: int) -> dict[str, str]:
    """libx264's options for a stream `width` px wide (encoded: even)."""
    options = {"crf": str(crf), "preset": preset}
    if width % DETERMINISTIC_MBTREE_WIDTH:
        options["x264-params"] = "mbtree=0"
    return options


def frame_rate(fps: float | Fraction) -> Fraction:
    """fps as an exact Fraction: 29.97 -> 30000/1001 (and 23.976, 59.94 alike), 8 -> 8/1."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        ntsc = round(fps * 1.001)  # NTSC rates are n * 1000/1001; their decimals are rounded
        if abs(fps - ntsc * 1000 / 1001) < 0.006 and abs(fps - ntsc) > 0.01:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {rate}")
    return rate


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the JSON record of `path` lies: clip_000.mp4 -> clip_000.json."""
    return Path(path).with_suffix(".json")


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float | Fraction,
    record: dict | None = None,
    *,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode frames (T, H, W, 3) uint8 RGB to an H.264 MP4 at `path`, atomically; returns the path.

    `record` (any JSON-serialisable dict) is embedded and written to the sidecar `<stem>.json`, with
    a `video` block added that describes the file. Without a record only the `video` block is
    embedded and no sidecar is written. Bad input raises ValueError before anything is written.
    """
    frames = _check_frames(frames)
    t, h, w, _ = frames.shape
    return write_mp4_stream(path, [frames], fps, (t, h, w), record, crf=crf, preset=preset)


def write_mp4_stream(
    path: str | os.PathLike,
    chunks: Iterable[np.ndarray],
    fps: float | Fraction,
    shape: tuple[int, int, int],
    record: dict | None = None,
    *,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """write_mp4 for a video that does not fit in memory: `chunks` of (n, H, W, 3) uint8 frames, in
    order, `shape` = (T, H, W) of the whole (the record, embedded up front, states it). Memory is one
    chunk whatever the length. A chunk of another size, a count other than T, or an exception from
    the chunks' producer leaves nothing behind."""
    path = Path(path)
    rate = frame_rate(fps)
    t, h, w = shape
    enc_w, enc_h = w + w % 2, h + h % 2
    video = {"codec": "h264", "pix_fmt": PIX_FMT, "width": enc_w, "height": enc_h,
             "content_width": w, "content_height": h, "frames": t,
             "fps": float(rate), "rate": f"{rate.numerator}/{rate.denominator}"}  # fmt: skip
    full = {**(record or {}), "video": video}
    try:
        embedded = json.dumps(full, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the record is not JSON-serialisable: {e}") from e

    sidecar = sidecar_path(path)
    tmp, tmp_json = _temp_beside(path), _temp_beside(sidecar)
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out.metadata[RECORD_TAG] = embedded
            stream = out.add_stream(CODEC, rate=rate)
            stream.width, stream.height, stream.pix_fmt = enc_w, enc_h, PIX_FMT
            stream.options = _x264_options(crf, preset, enc_w)
            ctx = stream.codec_context
            ctx.thread_type, ctx.thread_count = "FRAME", X264_THREADS
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT709
            ctx.color_range = _MPEG_RANGE
            written = 0
            for chunk in chunks:
                chunk = _check_frames(chunk)
                if chunk.shape[1:3] != (h, w):
                    raise ValueError(
                        f"a chunk of {chunk.shape[2]}x{chunk.shape[1]} frames in a {w}x{h} video"
                    )
                for rgb in chunk:
                    if (enc_w, enc_h) != (w, h):  # replicate the last column / row
                        rgb = np.pad(rgb, ((0, enc_h - h), (0, enc_w - w), (0, 0)), mode="edge")
                    frame = reformat(
                        av.VideoFrame.from_ndarray(rgb, format="rgb24"),
                        format=PIX_FMT,
                        dst_colorspace=Colorspace.ITU709,
                        dst_color_range=ColorRange.MPEG,
                        interpolation=_SWS,
                    )
                    out.mux(stream.encode(frame))
                written += len(chunk)
            if written != t:
                raise ValueError(f"{written} frames written, the record says {t}")
            out.mux(stream.encode(None))  # flush the encoder's delayed frames
        if record is not None:
            tmp_json.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        if record is not None:
            try:
                os.replace(tmp_json, sidecar)
            except OSError:
                path.unlink(missing_ok=True)  # never an MP4 without its sidecar
                raise
    finally:
        tmp.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
    return path


def reformat(frame: av.VideoFrame, **kwargs) -> av.VideoFrame:
    """frame.reformat(**kwargs) on one thread. swscale's slice threads (PyAV's default, one a core)
    make a process unsafe to fork: a child that frees a context another thread left behind (in a
    thread-local, say) waits forever for slice threads it does not have. That hung a DataLoader
    worker forked beside the test server's threads (2026-12-07); the frames are small enough that
    the threads bought nothing."""
    return frame.reformat(threads=1, **kwargs)


def write_poster(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Save one frame (H, W, 3) uint8 RGB as a PNG at `path`, atomically."""
    from PIL import Image

    path = Path(path)
    frame = _check_frames(np.asarray(frame)[None])[0]
    tmp = _temp_beside(path)
    try:
        Image.fromarray(frame).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_frames(path: str | os.PathLike, *, unpad: bool = True) -> np.ndarray:
    """Decode all frames as (T, H, W, 3) uint8 RGB; `unpad` crops our even-size padding back off."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rgb = [
            reformat(
                f,
                format="rgb24",
                src_colorspace=f.colorspace if f.colorspace in (1, 5, 9) else Colorspace.ITU709,
                src_color_range=f.color_range or ColorRange.MPEG,
            ).to_ndarray()
            for f in container.decode(stream)
        ]
        record = _parse_record(container.metadata.get(RECORD_TAG))
    if not rgb:
        raise ValueError(f"{path}: no video frames")
    frames = np.stack(rgb)
    video = (record or {}).get("video") or {}
    if unpad and "content_width" in video:
        frames = frames[:, : video["content_height"], : video["content_width"]]
    return frames


def read_record(path: str | os.PathLike) -> dict | None:
    """The JSON record embedded in the container's metadata, or None if there is none."""
    with av.open(str(path)) as container:
        return _parse_record(container.metadata.get(RECORD_TAG))


def probe(path: str | os.PathLike) -> dict:
    """codec, pix_fmt, width, height, frames, fps, duration of the first video stream.

    Read by ffprobe when it is on PATH (an independent reader), else by PyAV; `tool` says which.
    """
    if shutil.which("ffprobe"):
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams",
             "-show_format", "-of", "json", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise ValueError(f"ffprobe cannot read {path}: {out.stderr.strip()}")
        info = json.loads(out.stdout)
        s, fmt = info["streams"][0], info["format"]
        rate = Fraction(s["avg_frame_rate"])
        return {
            "codec": s["codec_name"],
            "pix_fmt": s["pix_fmt"],
            "width": int(s["width"]),
            "height": int(s["height"]),
            "frames": int(s["nb_frames"]),
            "fps": float(rate),
            "rate": f"{rate.numerator}/{rate.denominator}",
            "duration": float(s.get("duration") or fmt["duration"]),
            "tool": "ffprobe",
        }
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        rate = s.average_rate
        frames = s.frames or sum(1 for packet in container.demux(s) if packet.size)
        return {
            "codec": s.codec_context.name,
            "pix_fmt": s.codec_context.format.name,
            "width": s.codec_context.width,
            "height": s.codec_context.height,
            "frames": frames,
            "fps": float(rate),
            "rate": f"{rate.numerator}/{rate.denominator}",
            "duration": float(s.duration * s.time_base) if s.duration else frames / float(rate),
            "tool": "pyav",
        }


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape) == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T, H, W >= 1, got {frames.shape}")
    return np.ascontiguousarray(frames)


def _parse_record(text: str | None) -> dict | None:
    try:
        record = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None  # a foreign file's free-text comment
    return record if isinstance(record, dict) else None


def _temp_beside(path: Path) -> Path:
    """A hidden temporary name in the target's directory, so that os.replace stays atomic."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"no such directory: {path.parent}")
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
