"""What a worker runs: the `Engine` protocol, and `GenerateEngine`, the real one over `generate()`.

The worker holds one engine for its whole life (the model is loaded once, never per job) and
calls `run(params, out_dir, callback, inputs)` per job. `params` is the generation's normalised
request (see `capabilities.job_params`), in the API's terms; `inputs` maps the uploads and the
source video it names (`upl_...`, `gen_...`, see `serve/inputs.py`) to local files; `to_request`
translates the two into generate()'s terms. `callback(stage, done, total)` may raise
`GenerationCanceled` between steps. Tests inject other engines (a gate around the real one)
through the same protocol.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mutoscope.post.watermark import METHOD
from mutoscope.serve import hooks
from mutoscope.serve.capabilities import CONTROLS, TIER_ASPECTS, TIERS, Capabilities, aspect_of, output_size
from mutoscope.serve.inputs import InputUnavailable

if TYPE_CHECKING:  # generate imports torch: only when a worker loads a model
    from mutoscope.generate import GenerationRequest

log = logging.getLogger("mutoscope.serve")

Callback = Callable[[str, int, int], None]
Inputs = Mapping[str, Path]  # a job's references (upl_..., gen_...) -> local files

# The post stages' shipped weights (post/interpolate.py, post/upscale.py load them from here). The
# capabilities test for the files rather than import the stages: no torch work at registration.
POST_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "post"
INTERP_FPS = 30.0  # the frame rate interpolation offers


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

    def run(
        self, params: dict[str, Any], out_dir: Path, callback: Callback, inputs: Inputs | None = None
    ) -> EngineOutput: ...


def post_stages(folder: Path | None = POST_WEIGHTS) -> dict[str, bool]:
    """Which post stages have weights in `folder` (None: no post stages): {"interp", "upscale"}."""
    try:
        config = json.loads((folder / "config.json").read_text()) if folder is not None else {}
    except (OSError, ValueError):
        config = {}
    return {
        name: name in config and (folder / f"{name}.safetensors").is_file() for name in ("interp", "upscale")
    }


class GenerateEngine:
    """A loaded `mutoscope.generate.Pipeline`: the single inference path, as a worker engine."""

    def __init__(self, pipe, *, note: str = "", post_weights: Path | None = POST_WEIGHTS):
        self.pipe = pipe
        self.model_id: str = pipe.model_id
        self.note = note
        self.post_weights = post_weights

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, preset: str | None = None, device: str = "cpu"
    ) -> GenerateEngine:
        from mutoscope.generate import load_model

        pipe = load_model(path, preset=preset, device=device)
        log.info("loaded model %s in %.1f s", pipe.model_id, pipe.load_s)
        note = f"random weights of the {preset!r} preset (untrained)" if preset else ""
        # The post stages are trained for the shipped model's frames; a random preset goes without.
        return cls(pipe, note=note, post_weights=None if preset else POST_WEIGHTS)

    def capabilities(self) -> Capabilities:
        """What this model can do, truthfully: controls (and extension) when its DiT takes control
        inputs, 30 fps and the upscaled tiers when the post stages' weights are there."""
        from mutoscope.diffusion.sampling import SAMPLERS
        from mutoscope.request import MAX_SECONDS, MAX_STEPS

        cfg, sample = self.pipe.config, self.pipe.sample
        controls = cfg.dit.cond_channels > 0
        clip_s = float(Fraction(cfg.frames) / Fraction(cfg.fps).limit_denominator(1001))
        post = post_stages(self.post_weights)
        native = aspect_of(cfg.width, cfg.height)
        return Capabilities(
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            frames=cfg.frames,
            # Longer than one clip is extension, segment by segment: a control (keyframe of the tail).
            max_seconds=MAX_SECONDS if controls else clip_s,
            samplers=tuple(SAMPLERS),
            max_steps=min(MAX_STEPS, 500),
            default_steps=sample.steps,
            default_guidance=sample.cfg,
            default_continue_guidance=sample.continue_cfg,
            default_image_first=sample.image_first,
            default_image_guidance=sample.image_cfg,
            negative_prompt=True,
            resolutions=("base", *TIERS) if post["upscale"] else ("base",),
            aspects=tuple(dict.fromkeys((native, *TIER_ASPECTS))) if post["upscale"] else (native,),
            fps_options=(INTERP_FPS,) if post["interp"] and cfg.fps < INTERP_FPS else (),
            controls=dict.fromkeys(CONTROLS, controls),
        )

    def info(self) -> dict[str, Any]:
        cfg = self.pipe.config
        return {
            "name": cfg.name,
            "capabilities": self.capabilities().to_dict(),
            "watermark": METHOD,
            **({"note": self.note} if self.note else {}),
        }

    def run(
        self, params: dict[str, Any], out_dir: Path, callback: Callback, inputs: Inputs | None = None
    ) -> EngineOutput:
        from mutoscope.generate import generate

        inputs = inputs or {}
        request = to_request(params, inputs, self.pipe.config.width, self.pipe.config.height)
        result = generate(self.pipe, request, out_dir / "video.mp4", callback=callback)
        record = name_inputs(result.record, params, inputs)
        record = hooks.watermark_video(result.video, result.poster, record)
        return EngineOutput(result.video, result.poster, record)


def to_request(params: dict[str, Any], inputs: Inputs, width: int, height: int) -> GenerationRequest:
    """A job's params (an API request) as generate()'s GenerationRequest, its references as files.

    keyframes.first / last / loop -> first_frame / last_frame / loop; camera.preset -> the preset's
    name, camera.axes -> the dict of axes; motion_brush.regions -> brush [{mask, path: [[seconds, x,
    y], ...]}] (the trajectory at its `times`, or spread evenly over the requested seconds);
    motion_brush.static_mask -> static_mask; extend.generation_id -> the source's MP4;
    resolution + aspect -> size "WxH" (capabilities.output_size); guidance -> cfg; continue_guidance
    -> continue_cfg; image_first and known_start as they are; image_guidance -> image_cfg; camera.path
    and storyboard pass through as lists of dicts.
    """
    from mutoscope.generate import GenerationRequest

    def file(ref: str | None) -> Path | None:
        if ref is None:
            return None
        if ref not in inputs:
            raise InputUnavailable("job.input.unavailable", f"the worker did not receive {ref}")
        return inputs[ref]

    seconds = float(params.get("seconds", 2.0))
    keyframes = params.get("keyframes") or {}
    camera = params.get("camera")
    if camera is not None:
        if camera.get("path") is not None:
            camera = [dict(point) for point in camera["path"]]
        else:
            camera = camera.get("preset") or {k: float(v) for k, v in camera["axes"].items() if v}
    brush = params.get("motion_brush") or {}
    size = output_size(params.get("resolution", "base"), params.get("aspect"), width, height)
    return GenerationRequest(
        prompt=params["prompt"],
        negative_prompt=params.get("negative_prompt", ""),
        seed=params.get("seed"),
        steps=params.get("steps"),
        cfg=params.get("guidance"),
        continue_cfg=params.get("continue_guidance"),
        image_first=params.get("image_first"),
        image_cfg=params.get("image_guidance"),
        known_start=params.get("known_start"),
        sampler=params.get("sampler"),
        seconds=seconds,
        first_frame=file(keyframes.get("first")),
        last_frame=file(keyframes.get("last")),
        loop=bool(keyframes.get("loop", False)),
        camera=camera,
        brush=[{"mask": file(r["mask"]), "path": brush_path(r, seconds)} for r in brush.get("regions", [])],
        static_mask=file(brush.get("static_mask")),
        extend=file((params.get("extend") or {}).get("generation_id")),
        fps=params.get("fps"),
        size=None if size is None else f"{size[0]}x{size[1]}",
        storyboard=[dict(shot) for shot in params.get("storyboard") or ()],
    )


def brush_path(region: dict[str, Any], seconds: float) -> list[list[float]]:
    """[[seconds, x, y], ...]: the trajectory at its `times`, or evenly from 0 to `seconds`."""
    points = region["trajectory"]
    times = region.get("times") or [seconds * i / (len(points) - 1) for i in range(len(points))]
    return [[float(t), float(x), float(y)] for t, (x, y) in zip(times, points, strict=True)]


def name_inputs(record: dict[str, Any], params: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    """The record with the API's names of the inputs (upl_..., gen_...) where generate() wrote this
    machine's paths, and each brush region's mask."""
    names = {Path(path).name: ref for ref, path in inputs.items()}  # generate() records file names
    controls = dict(record.get("controls") or {})
    for key in ("first_frame", "last_frame", "static_mask", "extend"):
        if key in controls:
            controls[key] = names.get(controls[key], controls[key])
    regions = (params.get("motion_brush") or {}).get("regions", [])
    if "brush" in controls:
        controls["brush"] = [
            {**used, "mask": region["mask"]} for used, region in zip(controls["brush"], regions, strict=False)
        ]
    return {**record, "controls": controls}
