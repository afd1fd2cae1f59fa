"""What a worker runs: the `Engine` protocol, and `GenerateEngine`, the real one over `generate()`.

The worker holds one engine for its whole life (the model is loaded once, never per job) and
calls `run(params, out_dir, callback)` per job. `params` is the generation's normalised request
(see `capabilities.job_params`); `callback(stage, done, total)` may raise `GenerationCanceled`
between steps. Tests inject other engines (a gate around the real one) through the same protocol.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Any, Protocol

from mutoscope.post.watermark import METHOD
from mutoscope.serve import hooks
from mutoscope.serve.capabilities import CONTROLS, Capabilities

log = logging.getLogger("mutoscope.serve")

Callback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EngineOutput:
    video: Path
    poster: Path
    record: dict[str, Any]


class Engine(Protocol):
    model_id: str

    def info(self) -> dict[str, Any]:
        """What the worker registers: {"capabilities": Capabilities.to_dict(), ...}."""
        ...

    def run(self, params: dict[str, Any], out_dir: Path, callback: Callback) -> EngineOutput: ...


# API field -> GenerationRequest field, where the names differ.
_RENAMED = {"guidance": "cfg"}


class GenerateEngine:
    """A loaded `mutoscope.generate.Pipeline`: the single inference path, as a worker engine."""

    def __init__(self, pipe, *, note: str = ""):
        from mutoscope.generate import GenerationRequest

        self.pipe = pipe
        self.model_id: str = pipe.model_id
        self.note = note
        self._request_fields = {f.name for f in dataclasses.fields(GenerationRequest)}

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, preset: str | None = None, device: str = "cpu"
    ) -> GenerateEngine:
        from mutoscope.generate import load_model

        pipe = load_model(path, preset=preset, device=device)
        log.info("loaded model %s in %.1f s", pipe.model_id, pipe.load_s)
        note = f"random weights of the {preset!r} preset (untrained)" if preset else ""
        return cls(pipe, note=note)

    def capabilities(self) -> Capabilities:
        from mutoscope.diffusion.sampling import SAMPLERS
        from mutoscope.generate import MAX_STEPS

        cfg, sample = self.pipe.config, self.pipe.sample
        w, h = cfg.width, cfg.height
        return Capabilities(
            width=w,
            height=h,
            fps=cfg.fps,
            frames=cfg.frames,
            # generate() makes one base clip; longer requests need extension (a control, issue 4).
            max_seconds=float(Fraction(cfg.frames) / Fraction(cfg.fps).limit_denominator(1001)),
            samplers=tuple(SAMPLERS),
            max_steps=min(MAX_STEPS, 500),
            default_steps=sample.steps,
            default_guidance=sample.cfg,
            negative_prompt="negative_prompt" in self._request_fields,
            aspects=(f"{w // gcd(w, h)}:{h // gcd(w, h)}",),
            # A control is on when generate() accepts it: the request dataclass is the contract.
            controls={name: name in self._request_fields for name in CONTROLS},
        )

    def info(self) -> dict[str, Any]:
        cfg = self.pipe.config
        return {
            "name": cfg.name,
            "capabilities": self.capabilities().to_dict(),
            "watermark": METHOD,
            **({"note": self.note} if self.note else {}),
        }

    def run(self, params: dict[str, Any], out_dir: Path, callback: Callback) -> EngineOutput:
        from mutoscope.generate import GenerationRequest, generate

        values = {_RENAMED.get(k, k): v for k, v in params.items()}
        request = GenerationRequest(**{k: v for k, v in values.items() if k in self._request_fields})
        result = generate(self.pipe, request, out_dir / "video.mp4", callback=callback)
        record = hooks.watermark_video(result.video, result.poster, result.record)
        return EngineOutput(result.video, result.poster, record)
