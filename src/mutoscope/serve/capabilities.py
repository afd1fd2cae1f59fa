"""What a loaded model can do, and the check of a generation request against it.

A worker describes its model once, when it registers (`Capabilities.to_dict()` travels in the
registration); the API validates every request against the capabilities of the model it asks
for, so that a control the model lacks answers 422 with a code naming it instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from math import gcd
from typing import Any

from mutoscope.serve.credits import RATE_PER_SECOND
from mutoscope.serve.problems import ApiError
from mutoscope.serve.schemas import GenerationCreate

CONTROLS = ("keyframes", "camera", "motion_brush", "extend", "storyboard")
# Resolution tiers beyond "base" (credits.RATE_PER_SECOND prices them): the short side in pixels.
TIERS = {"720p": 720, "1080p": 1080}
TIER_ASPECTS = ("16:9", "9:16", "1:1")  # the aspects the tiers come in (the upscaler center-crops)


def aspect_of(width: int, height: int) -> str:
    g = gcd(width, height)
    return f"{width // g}:{height // g}"


def output_size(resolution: str, aspect: str | None, width: int, height: int) -> tuple[int, int] | None:
    """(width, height) of a tier in an aspect (default: the model's), e.g. 1080p 9:16 -> 1080x1920;
    None for "base", the model's own size."""
    if resolution == "base":
        return None
    a, b = (int(v) for v in (aspect or aspect_of(width, height)).split(":"))
    short = TIERS[resolution]
    long = 2 * round(short * max(a, b) / min(a, b) / 2)  # H.264 wants even sides
    return (long, short) if a >= b else (short, long)


@dataclass(frozen=True)
class Capabilities:
    width: int
    height: int
    fps: float
    frames: int  # the base clip
    max_seconds: float
    samplers: tuple[str, ...] = ("euler",)
    max_steps: int = 200
    default_steps: int = 20
    default_guidance: float = 5.0
    default_continue_guidance: float | None = None  # from known frames; None: default_guidance
    default_image_first: bool = False
    default_image_guidance: float | None = None  # of the image stage; None: default_guidance
    negative_prompt: bool = True
    resolutions: tuple[str, ...] = ("base",)
    aspects: tuple[str, ...] = ("1:1",)
    fps_options: tuple[float, ...] = ()  # frame rates other than the native one
    controls: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(CONTROLS, False))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Capabilities:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls(**kwargs)


def _unsupported(code: str, detail: str, **extra) -> ApiError:
    return ApiError(422, code, detail, title="Not supported by this model", **extra)


def validate(body: GenerationCreate, caps: Capabilities, model_id: str) -> None:
    """Raise 422 with a dotted code for the first thing in `body` that the model cannot do."""
    for name in CONTROLS:
        if getattr(body, name) is not None and not caps.controls.get(name, False):
            raise _unsupported(
                f"generation.{name}.unsupported",
                f"model {model_id!r} does not support {name} (see GET /v1/models)",
                field=name,
            )
    if body.seconds > caps.max_seconds + 1e-9:
        raise ApiError(
            422,
            "generation.seconds.out_of_range",
            f"model {model_id!r} generates at most {caps.max_seconds:g} s",
            field="seconds",
            max=caps.max_seconds,
        )
    if body.resolution not in caps.resolutions or body.resolution not in RATE_PER_SECOND:
        raise _unsupported(
            "generation.resolution.unsupported",
            f"resolution {body.resolution!r} is not one of {list(caps.resolutions)}",
            field="resolution",
        )
    native = aspect_of(caps.width, caps.height)
    if body.aspect is not None and body.aspect not in caps.aspects:
        raise _unsupported(
            "generation.aspect.unsupported",
            f"aspect {body.aspect!r} is not one of {list(caps.aspects)}",
            field="aspect",
        )
    if body.aspect not in (None, native) and body.resolution == "base":
        raise _unsupported(
            "generation.aspect.unsupported",
            f"at base resolution the aspect is the model's ({native}); other aspects need 720p or 1080p",
            field="aspect",
        )
    if body.extend is not None and body.keyframes is not None and body.keyframes.first is not None:
        raise ApiError(
            422,
            "generation.extend.conflict",
            "an extension starts where its source video ends: give extend or keyframes.first, not both",
            field="extend",
        )
    if body.fps is not None and body.fps != caps.fps and body.fps not in caps.fps_options:
        raise _unsupported(
            "generation.fps.unsupported",
            f"fps {body.fps:g} is not one of {[caps.fps, *caps.fps_options]}",
            field="fps",
        )
    if body.sampler is not None and body.sampler not in caps.samplers:
        raise _unsupported(
            "generation.sampler.unsupported",
            f"sampler {body.sampler!r} is not one of {list(caps.samplers)}",
            field="sampler",
        )
    if body.steps is not None and body.steps > caps.max_steps:
        raise ApiError(
            422,
            "generation.steps.out_of_range",
            f"at most {caps.max_steps} steps",
            field="steps",
            max=caps.max_steps,
        )
    if body.negative_prompt and not caps.negative_prompt:
        raise _unsupported(
            "generation.negative_prompt.unsupported",
            f"model {model_id!r} does not take a negative prompt",
            field="negative_prompt",
        )


def job_params(body: GenerationCreate, seed: int) -> dict[str, Any]:
    """The normalised request the worker receives (and the generation shows): no None, seed fixed."""
    params = body.model_dump(exclude={"model", "webhook_url"}, exclude_none=True)
    params["seed"] = seed
    return params
