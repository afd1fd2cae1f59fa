"""THE inference path: prompt -> MP4 + poster + record. The CLI, the benchmark and the worker call it.

`load_model()` once (pipeline.py: text encoder, DiT, VAE), then `generate(pipe, request, out)` per
video, in the numbered steps of a diffusers pipeline: check inputs (request.py), encode text, draw
noise, sample, decode (segments.py), post-process, mark, write.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mutoscope import __version__
from mutoscope.pipeline import DEFAULT_MODEL, Pipeline, bf16_default, load_model, save_model, weights_hash
from mutoscope.request import MAX_STEPS, GenerationRequest, Plan, check_request, describe_controls
from mutoscope.segments import Callback, base_frames

__all__ = [
    "DEFAULT_MODEL", "MAX_STEPS", "GenerationCanceled", "GenerationRequest", "GenerationResult", "Pipeline",
    "Plan", "bf16_default", "generate", "load_model", "output_frames", "save_model", "weights_hash",
]  # fmt: skip


class GenerationCanceled(Exception):
    """Raised by a callback to stop a generation between steps; no output file is left behind."""


@dataclass(frozen=True)
class GenerationResult:
    video: Path
    poster: Path
    record: dict
    seed: int
    timings: dict[str, float]


def output_frames(frames: int, src_fps: float, dst_fps: float) -> int:
    """Frames at dst_fps covering a clip of `frames` at src_fps: every time k / dst_fps before the
    clip's end, frames / src_fps (post/interpolate.py; 16 frames at 8 fps -> 60 at 30 fps)."""
    from mutoscope.post.mp4 import frame_rate

    if dst_fps == src_fps:
        return frames
    return math.ceil(frames * frame_rate(dst_fps) / frame_rate(src_fps))


def generate(pipe: Pipeline, req: GenerationRequest, out: str | Path,
             callback: Callback | None = None) -> GenerationResult:  # fmt: skip
    """Generate one video to `out` (.mp4), its poster (.png) and record (.json); see the module doc.

    Memory stays flat in the video's length: segments are made, post-processed, marked and encoded
    as a stream of chunks; only the poster frame is kept."""
    from mutoscope.post.mp4 import sidecar_path, write_mp4_stream, write_poster

    cfg, timings = pipe.config, {}
    start = time.perf_counter()
    out = Path(out)
    callback = callback or (lambda stage, done, total: None)

    # 1. Check inputs (controls included) into a plan: segments, sizes, keyframes, camera, brush.
    plan = check_request(pipe, req, out)
    if plan.loop and plan.first is None:
        # A loop ends where it starts: make the first segment with the same seed, loop on its frame 0.
        # (Not done to give the brush a first frame: the model seldom puts an object under a region
        # drawn on nothing, so the hold would carry ground; docs/BENCHMARKS.md.)
        first_only = dataclasses.replace(plan, segments=plan.segments[:1], loop=False, frames=cfg.frames)
        plan.first = next(base_frames(pipe, first_only, {}, lambda *a: None))[0]

    # 2-5. Text, noise, sampling and decoding per segment (segments.base_frames), then the post stages; each
    #      stage is a generator of chunks, timed inclusive of the stages it pulls from.
    inclusive: dict[str, float] = {}
    chunks = _timed(base_frames(pipe, plan, timings, callback), "generate", inclusive)
    count = plan.frames
    if plan.fps != cfg.fps:
        from mutoscope.post.interpolate import interpolate_stream, load_interpolator

        interp = interpolate_stream(chunks, cfg.fps, plan.fps, load_interpolator())
        chunks = _timed(interp, "interpolate", inclusive)
        count = output_frames(count, cfg.fps, plan.fps)
    if plan.size != (cfg.width, cfg.height):
        from mutoscope.post.upscale import load_upscaler, upscale_stream

        chunks = _timed(upscale_stream(chunks, plan.size, load_upscaler()), "upscale", inclusive)

    # 6. Mark (before the one and only encode: a re-encode would weaken the mark), keep the poster
    #    frame, encode the MP4 with its record (atomic), then the poster.
    # fmt: off
    record = {
        "prompt": req.prompt, "negative_prompt": plan.negative, "seed": plan.seed, "steps": plan.steps,
        "cfg": plan.cfg, "sampler": plan.sampler, "shift": pipe.sample.shift,
        "seconds_requested": req.seconds, "seconds": count / plan.fps, "width": plan.size[0],
        "height": plan.size[1], "frames": count, "fps": plan.fps, "model": pipe.model_id,
        "generator": f"mutoscope {__version__}", "notes": plan.notes, "segments": len(plan.segments),
        "context": plan.overlap // cfg.vae.temporal_down, "continue_cfg": plan.continue_cfg,
        "image_first": plan.image_first, "image_cfg": plan.image_guidance if plan.image_stage else None,
        "image_candidates": plan.image_candidates if plan.image_stage else None,
        "known_start": plan.known_start,
        "base": {"width": cfg.width, "height": cfg.height, "fps": cfg.fps, "frames": plan.frames},
        "controls": describe_controls(req, plan),
    }
    # fmt: on
    if req.watermark:
        from mutoscope.post import watermark

        record["watermark"] = watermark.record_entry()
    poster_at, poster = count // 2, []

    def marked() -> Iterator[np.ndarray]:
        done = 0
        for chunk in chunks:
            t0 = time.perf_counter()
            if req.watermark:  # in place: the chunk is ours (every stage makes new arrays)
                chunk = watermark.embed_into(chunk, start=done)
            if done <= poster_at < done + len(chunk):
                poster.append(chunk[poster_at - done].copy())
            done += len(chunk)
            timings["mark_s"] = timings.get("mark_s", 0.0) + time.perf_counter() - t0
            yield chunk

    t0 = time.perf_counter()
    shape = (count, plan.size[1], plan.size[0])
    x264 = "medium" if max(plan.size) <= 256 else "veryfast"  # 1080p: ~40 frames/s on 2 cores
    write_mp4_stream(out, marked(), plan.fps, shape, record, preset=x264)
    # Exclusive times: each stage's inclusive time less the stage it pulls from; the rest is encoding.
    previous = 0.0
    for name, spent in inclusive.items():
        if name != "generate":
            timings[f"{name}_s"] = spent - previous
        previous = spent
    timings["encode_s"] = time.perf_counter() - t0 - previous - timings.get("mark_s", 0.0)
    write_poster(out.with_suffix(".png"), poster[0])
    timings["total_s"] = time.perf_counter() - start
    timings["step_s"] = timings.get("denoise_s", 0.0) / (plan.steps * len(plan.segments))
    full_record = json.loads(sidecar_path(out).read_text())  # the record as written, with its video block
    return GenerationResult(out, out.with_suffix(".png"), full_record, plan.seed, timings)


def _timed(chunks: Iterator[np.ndarray], name: str, spent: dict[str, float]) -> Iterator[np.ndarray]:
    """Pass chunks through, adding the time spent getting each to spent[name] (entered now, so that
    `spent` lists the stages in the order they were chained, however lazily they start)."""
    spent[name] = 0.0

    def timed() -> Iterator[np.ndarray]:
        it = iter(chunks)
        while True:
            t0 = time.perf_counter()
            chunk = next(it, None)
            spent[name] += time.perf_counter() - t0
            if chunk is None:
                return
            yield chunk

    return timed()
