"""Run a suite: generate every prompt with one model (or render its ground truth), judge the clip.

Every clip goes through the MP4 encoder and is read back from the file, as a user would get it, so
that the scores include what H.264 and yuv420p do to small colored objects. One JSON row per prompt
(claims with verdicts and evidence, consistency, timings) is what the report aggregates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mutoscope.eval.suites import SuitePrompt
from mutoscope.post.mp4 import write_mp4
from mutoscope.world.judge import judge
from mutoscope.world.render import render


def _row(p: SuitePrompt, source: str, video: Path, seconds: float) -> dict:
    report = judge(video, list(p.claims))
    return {
        "source": source,
        "index": p.index,
        "prompt": p.text,
        "seed": p.seed,
        "video": str(video),
        "verdicts": [v.to_dict() for v in report.verdicts],
        "consistency": report.consistency.to_dict(),
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
        on_row(_row(p, "ground truth", path, time.perf_counter() - start))


def run_model(prompts: list[SuitePrompt], pipe, source: str, out: Path, steps: int | None,
              cfg: float | None, on_row: Callable[[dict], None]) -> None:  # fmt: skip
    """A model: each prompt through generate(), THE inference path, with the suite's seed."""
    from mutoscope.generate import GenerationRequest, generate

    out.mkdir(parents=True, exist_ok=True)
    for p in prompts:
        start = time.perf_counter()
        req = GenerationRequest(prompt=p.text, seed=p.seed, steps=steps, cfg=cfg)
        result = generate(pipe, req, out / f"{p.index:04d}.mp4")
        on_row(_row(p, source, Path(result.video), time.perf_counter() - start))
