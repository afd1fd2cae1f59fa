"""Run a suite: generate every prompt with one model (or render its ground truth), judge the clip.

Every clip goes through the MP4 encoder and is read back from the file, as a user would get it, so
that the scores include what H.264 and yuv420p do to small colored objects. One JSON row per prompt
(claims with verdicts and evidence, consistency, how much of the frame objects cover, timings) is
what the report aggregates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mutoscope.data.world_stream import from_model, to_model
from mutoscope.eval.scene_match import scene_match
from mutoscope.eval.suites import SuitePrompt
from mutoscope.post.mp4 import write_mp4
from mutoscope.world.judge import judge
from mutoscope.world.judge.perception import FramePerception
from mutoscope.world.render import render


def object_cover(perception: list[FramePerception]) -> np.ndarray:
    """(T,) the share of each frame's pixels in any object color's blob (the judge's object mask)."""
    return np.array([p.object_mask.mean() for p in perception], dtype=np.float64)


def painted(perception: list[FramePerception]) -> dict[str, float]:
    """How much object the clip shows, frame-averaged: the share of pixels in any object color's blob
    and the number of blobs. Set beside the truth's, it tells a model that paints objects where there
    are none from one that draws too few."""
    return {
        "object_cover": round(float(object_cover(perception).mean()), 4),
        "blobs": round(float(np.mean([len(p.detections) for p in perception])), 3),
    }


def judged_row(p: SuitePrompt, source: str, video: Path, seconds: float) -> dict:
    """The report's row of one prompt: its clip judged against its claims, with what the clip paints."""
    report = judge(video, list(p.claims))
    return {
        "source": source,
        "index": p.index,
        "prompt": p.text,
        "novelty": list(p.novelty),
        "seed": p.seed,
        "video": str(video),
        "verdicts": [v.to_dict() for v in report.verdicts],
        "consistency": report.consistency.to_dict(),
        "scene": painted(report.reading.perception),
        "objects": scene_match(report.reading, p.spec),
        "seconds": round(seconds, 3),
    }


def run_ground_truth(prompts: list[SuitePrompt], out: Path, width: int, height: int, fps: float,
                     on_row: Callable[[dict], None]) -> None:  # fmt: skip
    """The ceiling: each prompt's own scene, rendered by the world and judged like a generation."""
    out.mkdir(parents=True, exist_ok=True)
    for p in prompts:
        start = time.perf_counter()
        path = out / f"{p.index:04d}.mp4"
        write_mp4(path, render(p.spec, width, height, fps), fps, record={"prompt": p.text, "source": "truth"})
        on_row(judged_row(p, "ground truth", path, time.perf_counter() - start))


def vae_roundtrip(vae, frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) frames encoded to the posterior mean and decoded, in the VAE's dtype."""
    weight = next(vae.parameters())
    x = to_model(torch.from_numpy(frames))[None].to(weight.device, weight.dtype)
    with torch.inference_mode():
        video = vae.decode(vae.encode(x.contiguous(memory_format=torch.channels_last_3d))[0])[0]
    return from_model(video.float().clamp(-1, 1)).cpu().numpy()


def run_vae(prompts: list[SuitePrompt], vae, size: tuple[int, int], fps: float, out: Path,
            on_row: Callable[[dict], None]) -> None:  # fmt: skip
    """The ceiling of any DiT on this VAE: each prompt's ground truth (`size` = (width, height))
    through the VAE and back."""
    out.mkdir(parents=True, exist_ok=True)
    for p in prompts:
        start = time.perf_counter()
        path = out / f"{p.index:04d}.mp4"
        frames = vae_roundtrip(vae, render(p.spec, *size, fps))
        write_mp4(path, frames, fps, record={"prompt": p.text, "source": "vae"})
        on_row(judged_row(p, "ground truth through the VAE", path, time.perf_counter() - start))


def run_model(prompts: list[SuitePrompt], pipe, source: str, out: Path, steps: int | None,
              cfg: float | None, on_row: Callable[[dict], None], first_frame: bool = False,
              continue_cfg: float | None = None, image_first: bool | None = None,
              image_cfg: float | None = None, known_start: float | None = None) -> None:  # fmt: skip
    """A model: each prompt through generate(), THE inference path, with the suite's seed; with
    `first_frame`, image-to-video from the first frame of the prompt's ground-truth render, guided by
    `continue_cfg` (None: the model's); `image_first`, `image_cfg` and `known_start` as generate() (None:
    the model's)."""
    from mutoscope.generate import GenerationRequest, generate

    out.mkdir(parents=True, exist_ok=True)
    mc = pipe.config
    for p in prompts:
        start = time.perf_counter()
        first = render(p.spec, mc.width, mc.height, mc.fps)[0] if first_frame else None
        req = GenerationRequest(
            prompt=p.text,
            seed=p.seed,
            steps=steps,
            cfg=cfg,
            first_frame=first,
            continue_cfg=continue_cfg,
            image_first=image_first,
            image_cfg=image_cfg,
            known_start=known_start,
        )
        result = generate(pipe, req, out / f"{p.index:04d}.mp4")
        on_row(judged_row(p, source, Path(result.video), time.perf_counter() - start))
