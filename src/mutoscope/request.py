"""What a generation asks for (GenerationRequest, every control optional) and the request checked
against the model into a Plan: segments and their prompts, sizes, keyframes, camera, brush. Bad input
stops here with a UserError and its dotted code, before any work is done.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mutoscope.config import ModelConfig
from mutoscope.control_inputs import CameraControl, load_frame, load_mask, parse_brush, parse_camera
from mutoscope.diffusion.sampling import SAMPLERS
from mutoscope.errors import UserError
from mutoscope.model.controls import Region
from mutoscope.pipeline import Pipeline

MAX_STEPS = 1000


@dataclass(frozen=True)
class GenerationRequest:
    """One video. Controls (control_inputs.py says what each accepts) are all optional:

    first_frame / last_frame: keyframes (an image path or an (H, W, 3) uint8 array); loop: the video
    ends on its first frame; camera: a preset name, Kling-style axes or a path; brush: up to 5
    motion-brush regions; static_mask: what must not move; extend: an MP4 (or frames) to continue
    from its last frames; storyboard: shots [{"prompt", "seconds"}, ...] that replace prompt and
    seconds; fps: output frame rate (above the model's: learned interpolation); size: "WxH" output
    size (above the model's: learned super-resolution, then resampling).
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None  # None: the model's SampleConfig
    cfg: float | None = None
    continue_cfg: float | None = None  # guidance of segments that start from known frames (keyframe, tail)
    image_first: bool | None = None  # text-to-image, then image-to-video (SampleConfig); None: the model's
    image_cfg: float | None = None  # guidance of that image stage; None: the model's (its cfg if unset)
    known_start: float | None = None  # time a segment from a first keyframe starts at; None: the model's
    seconds: float = 2.0
    sampler: str | None = None
    watermark: bool = True  # the invisible mark (post/watermark.py) in every frame and the poster
    first_frame: Any = None
    last_frame: Any = None
    loop: bool = False
    camera: Any = None
    brush: Any = ()
    static_mask: Any = None
    extend: Any = None
    storyboard: Any = ()
    fps: float | None = None
    size: str | None = None
    anchor: bool = True  # keyframes and segment seams exact in pixels (segments.anchor); off to measure
    hold: bool = True  # brushed and static regions held by the sampler (segments.held_regions); off: measure
    context: int | None = None  # latent frames a continuation is given; None: the model's sample.json


MAX_SECONDS = 600.0  # ten minutes: memory is flat in length, time is linear
MAX_FPS = 60.0
MAX_IMAGE_CANDIDATES = 16  # one batch of first latent frames, asked at 6 times each: 192 in a forward


@dataclass
class Plan:
    """A checked request: what generate() will do, every value valid."""

    seed: int
    steps: int
    cfg: float
    sampler: str
    frames: int  # base-rate frames of the output
    segments: list[str]  # the prompt of each segment
    fps: float  # output frame rate
    size: tuple[int, int]  # output (width, height)
    first: np.ndarray | None = None  # (H, W, 3) uint8 keyframes at the model's size
    last: np.ndarray | None = None
    loop: bool = False
    camera: CameraControl | None = None
    brush: list[Region] = field(default_factory=list)
    static: np.ndarray | None = None  # (H, W) mask
    tail: np.ndarray | None = None  # (overlap, H, W, 3) frames an extension continues from
    overlap: int = 4  # frames a continuing segment repeats of the one before: context latent frames
    continue_cfg: float | None = None  # the guidance of a segment from known frames; None: cfg
    image_first: bool = False  # a segment from the prompt alone samples its first latent frame first
    image_cfg: float | None = None  # the guidance of that image stage; None: cfg
    image_candidates: int = 1  # first latent frames the image stage draws to keep the best of
    known_start: float = 1.0  # a segment from a first keyframe starts there, from it repeated (segments.py)
    extends: str | None = None
    negative: str = ""
    notes: list[str] = field(default_factory=list)
    anchor: bool = True
    hold: bool = True

    @property
    def end(self) -> np.ndarray | None:
        """The frame the video must end on: the last keyframe, or the first one for a loop."""
        return self.last if self.last is not None else (self.first if self.loop else None)

    def guidance(self, from_known: bool) -> float:
        """The guidance scale of a segment: continue_cfg for one that starts from known frames (a
        first keyframe, or the tail of the segment before), cfg for one drawn from the prompt alone."""
        return self.continue_cfg if from_known and self.continue_cfg is not None else self.cfg

    @property
    def image_guidance(self) -> float:
        """The guidance scale of the image stage: image_cfg, or cfg."""
        return self.cfg if self.image_cfg is None else self.image_cfg

    @property
    def image_stage(self) -> bool:
        """Whether the video, one segment long, is drawn as text-to-image, then image-to-video
        (image_first): it starts from no known frame; no motion control asks for the strong guidance
        that pushes towards the requested move (at continue_cfg 2 the camera followed in 47-87% of
        clips against 70-97% at cfg 8); and no later segment continues it (the image stage's extra
        objects carried into every later one: 26 of 144 boundaries kept against 40). Both measured
        in docs/BENCHMARKS.md, "Text-to-image first"."""
        motion = self.camera is not None or bool(self.brush) or self.static is not None
        alone = self.first is None and self.tail is None and len(self.segments) == 1
        return self.image_first and alone and not motion

    @property
    def controlled(self) -> bool:
        return any(
            v is not None for v in (self.first, self.last, self.camera, self.static, self.tail)
        ) or bool(self.brush or self.loop)


def _number(
    value: Any, code: str, what: str, lo: float, hi: float = math.inf, *, lo_open: bool = True
) -> float:
    """A finite number in (lo, hi], or [lo, hi] with lo_open=False. A bool is refused, though Python
    counts it as an int, so that `cfg=True` is an error and not a scale of 1."""
    number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not number or not (lo < value if lo_open else lo <= value) or value > hi:
        low = f"{'(' if lo_open else '['}{lo:g}"
        span = f"in {low}, {hi:g}]" if math.isfinite(hi) else f"{'>' if lo_open else '>='} {lo:g}"
        raise UserError(code, f"{what} must be a finite number {span}, got {value!r}")
    return float(value)


def _guidance(value: Any, what: str) -> float:
    """A guidance scale: a finite number >= 0."""
    return _number(value, f"input.{what}.invalid", what, 0, lo_open=False)


def _storyboard(req: GenerationRequest) -> list[tuple[str, float]]:
    """[(prompt, seconds)] of the shots: the storyboard, or the one prompt for `seconds`."""
    if not req.storyboard:
        if not isinstance(req.prompt, str) or not req.prompt.strip():
            raise UserError("input.prompt.empty", "the prompt is empty")
        return [(req.prompt, _number(req.seconds, "input.seconds.invalid", "seconds", 0, MAX_SECONDS))]
    shots = []
    for i, shot in enumerate(req.storyboard):
        if (
            not isinstance(shot, dict)
            or not isinstance(shot.get("prompt"), str)
            or not shot["prompt"].strip()
        ):
            raise UserError("input.storyboard.shot", f"shot {i}: needs a non-empty prompt")
        shots.append(
            (
                shot["prompt"],
                _number(shot.get("seconds"), "input.storyboard.seconds", f"shot {i} seconds", 0, MAX_SECONDS),
            )
        )
    if sum(sec for _, sec in shots) > MAX_SECONDS:
        raise UserError("input.seconds.invalid", f"a storyboard of at most {MAX_SECONDS:g} s")
    return shots


def _size(value: str | None, cfg: ModelConfig) -> tuple[int, int]:
    if value is None or value == "base":
        return cfg.width, cfg.height
    size = SIZES.get(value, value)
    try:
        w, h = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise UserError(
            "input.size.invalid", f"size is 'WxH' or one of {', '.join(SIZES)}, got {value!r}"
        ) from None
    if not (cfg.width <= w <= MAX_SIDE and cfg.height <= h <= MAX_SIDE) or w % 2 or h % 2:
        raise UserError(
            "input.size.invalid",
            f"size {w}x{h}: even sides from the model's {cfg.width}x{cfg.height} to {MAX_SIDE}",
        )
    return w, h


SIZES = {"1080p": "1920x1080", "1080p-vertical": "1080x1920", "1080p-square": "1080x1080", "720p": "1280x720"}
MAX_SIDE = 1920


def check_request(pipe: Pipeline, req: GenerationRequest, out: Path) -> Plan:
    """The request checked against the model: a Plan, or UserError with a dotted code."""
    cfg = pipe.config
    if out.suffix.lower() != ".mp4":
        raise UserError("output.suffix", f"the output must be an .mp4 file, got {out.name!r}")
    if not out.parent.is_dir():
        raise UserError("output.dir.missing", f"no such directory: {out.parent}")
    shots = _storyboard(req)
    steps = pipe.sample.steps if req.steps is None else req.steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= MAX_STEPS:
        raise UserError("input.steps.invalid", f"steps must be an integer in 1..{MAX_STEPS}, got {steps!r}")
    scale = _guidance(pipe.sample.cfg if req.cfg is None else req.cfg, "cfg")
    sampler = pipe.sample.sampler if req.sampler is None else req.sampler
    if sampler not in SAMPLERS:
        choices = ", ".join(SAMPLERS)
        raise UserError("input.sampler.unknown", f"unknown sampler {sampler!r}; choose from {choices}")
    seed = secrets.randbelow(2**31) if req.seed is None else req.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UserError("input.seed.invalid", f"seed must be an integer in 0..2**63-1, got {seed!r}")
    fps = cfg.fps if req.fps is None else _number(req.fps, "input.fps.invalid", "fps", 0, MAX_FPS)
    if fps < cfg.fps:
        raise UserError("input.fps.invalid", f"fps must be at least the model's {cfg.fps:g}")
    W, H = cfg.width, cfg.height
    plan = Plan(seed, steps, scale, sampler, 0, [], fps, _size(req.size, cfg), loop=bool(req.loop))
    plan.anchor = bool(req.anchor)
    again = pipe.sample.continue_cfg if req.continue_cfg is None else req.continue_cfg
    plan.continue_cfg = scale if again is None else _guidance(again, "continue_cfg")
    image_first = pipe.sample.image_first if req.image_first is None else req.image_first
    if not isinstance(image_first, bool):
        raise UserError("input.image_first.invalid", f"image_first is true or false, got {image_first!r}")
    plan.image_first = image_first
    image_cfg = pipe.sample.image_cfg if req.image_cfg is None else req.image_cfg
    plan.image_cfg = scale if image_cfg is None else _guidance(image_cfg, "image_cfg")
    n = pipe.sample.image_candidates
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_IMAGE_CANDIDATES:
        limit = f"1..{MAX_IMAGE_CANDIDATES}"
        raise UserError(
            "model.sample.invalid", f"sample.json: image_candidates must be in {limit}, got {n!r}"
        )
    plan.image_candidates = n
    t0 = pipe.sample.known_start if req.known_start is None else req.known_start
    plan.known_start = _number(t0, "input.known_start.invalid", "known_start", 0, 1)
    td, base = cfg.vae.temporal_down, cfg.frames
    context = pipe.sample.context if req.context is None else req.context
    latent_frames = pipe.vae.latent_shape(base, cfg.height, cfg.width)[1]
    if isinstance(context, bool) or not isinstance(context, int) or not 0 < context < latent_frames:
        raise UserError(
            "input.context.invalid", f"context must be an integer in 1..{latent_frames - 1}, got {context!r}"
        )
    plan.overlap = context * td
    plan.hold = bool(req.hold)
    if not isinstance(req.negative_prompt, str):
        raise UserError("input.negative_prompt.invalid", "the negative prompt must be text")
    plan.negative = req.negative_prompt
    if req.first_frame is not None:
        plan.first = load_frame(req.first_frame, W, H, "input.first_frame")
    if req.last_frame is not None:
        plan.last = load_frame(req.last_frame, W, H, "input.last_frame")
    if plan.loop and plan.last is not None:
        raise UserError(
            "input.loop.conflict", "a loop ends on its first frame: give loop or last_frame, not both"
        )
    plan.camera = parse_camera(req.camera)
    plan.brush = parse_brush(list(req.brush or ()), W, H)
    if req.static_mask is not None:
        plan.static = load_mask(req.static_mask, W, H, "input.static_mask")
    if req.extend is not None:
        plan.tail, plan.extends = (
            _tail(req.extend, cfg, plan.overlap),
            str(req.extend) if not isinstance(req.extend, np.ndarray) else "frames",
        )
    if plan.controlled and not pipe.config.dit.cond_channels:
        raise UserError(
            "model.controls.unsupported", f"model {pipe.model_id} takes no control inputs (text only)"
        )

    # Segments: the first makes a base clip; each next one continues the last `overlap` frames of the
    # one before (its first `context` latent frames given) and adds the rest. An extension starts there.
    total = max(1, round(sum(sec for _, sec in shots) * cfg.fps))
    step = base - plan.overlap  # the new frames of a continuing segment
    first_new = base if plan.tail is None else step
    n_seg = 1 + max(0, math.ceil((total - first_new) / step))
    if plan.last is not None or plan.loop:  # the last frame must be the last of a whole segment
        whole = first_new + (n_seg - 1) * step
        if whole != total:
            plan.notes.append(
                f"length rounded to {whole / cfg.fps:g} s so that the video ends on its keyframe"
            )
        total = whole
    plan.frames = total
    bounds = np.cumsum([0.0] + [sec for _, sec in shots])
    for k in range(n_seg):
        start = 0 if k == 0 else first_new + (k - 1) * step  # the segment's first new frame
        shot = int(np.searchsorted(bounds, start / cfg.fps, side="right")) - 1
        plan.segments.append(shots[min(shot, len(shots) - 1)][0])
    if plan.image_stage and not pipe.config.dit.cond_channels:  # the drawn frame goes in as a keyframe
        raise UserError(
            "model.controls.unsupported", f"model {pipe.model_id} takes no keyframes, so no image_first"
        )
    return plan


def _tail(source: Any, cfg: ModelConfig, overlap: int) -> np.ndarray:
    """The last `overlap` frames of the video an extension continues, at the model's size."""
    from mutoscope.post.mp4 import read_frames

    if isinstance(source, np.ndarray):
        frames = source
    else:
        try:
            frames = read_frames(source)
        except FileNotFoundError:
            raise UserError("input.extend.not_found", f"no such video: {source}") from None
        except Exception as e:  # PyAV raises its own errors for a file that is not a video
            raise UserError("input.extend.unreadable", f"cannot read {source} as a video: {e}") from None
    if frames.ndim != 4 or len(frames) < overlap:
        raise UserError("input.extend.short", f"a video to extend needs at least {overlap} frames")
    return np.stack([load_frame(f, cfg.width, cfg.height, "input.extend") for f in frames[-overlap:]])


def describe_controls(req: GenerationRequest, plan: Plan) -> dict[str, Any]:
    """The controls used, for the record (images by name, not pixels)."""

    def name(image: Any) -> str:  # the file name only: a server's paths stay out of the shared record
        return "array" if isinstance(image, np.ndarray) else Path(str(image)).name

    out: dict[str, Any] = {}
    if req.first_frame is not None:
        out["first_frame"] = name(req.first_frame)
    if req.last_frame is not None:
        out["last_frame"] = name(req.last_frame)
    if plan.loop:
        out["loop"] = True
    if plan.camera is not None:
        out["camera"] = plan.camera.describe()
    if plan.brush:
        out["brush"] = [{"path": r.path.tolist()} for r in plan.brush]
    if req.static_mask is not None:
        out["static_mask"] = name(req.static_mask)
    if plan.static is not None or plan.brush:
        out["held_in_sampler"] = plan.hold and (plan.first is not None or plan.tail is not None)
    if plan.extends is not None:
        out["extend"] = name(req.extend)
    if req.storyboard:
        out["storyboard"] = [{"prompt": p["prompt"], "seconds": p["seconds"]} for p in req.storyboard]
    return out
