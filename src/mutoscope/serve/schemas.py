"""Request and response bodies. Every request model forbids unknown fields (a typo is an error).

The control fields (keyframes, camera, motion_brush, extend, and resolutions, aspects and frame
rates beyond the model's native ones) are part of the schema from the start, so that clients can
be written once; a request uses them only where GET /v1/models says the model supports them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

UploadId = Annotated[str, Field(pattern=r"^upl_[0-9A-Z]{26}$")]
GenerationId = Annotated[str, Field(pattern=r"^gen_[0-9A-Z]{26}$")]
CameraPreset = Literal[
    "static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "orbit"
]
Axis = Annotated[float, Field(ge=-10, le=10)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Keyframes(Strict):
    first: UploadId | None = None  # the video starts on this image
    last: UploadId | None = None  # and ends on this one
    loop: bool = False  # ends on its first frame (the `first` image, or its own first frame)

    @model_validator(mode="after")
    def _loop_or_last(self):
        if self.loop and self.last is not None:
            raise ValueError(
                "a loop ends on its first frame: give keyframes.loop or keyframes.last, not both"
            )
        return self


class CameraAxes(Strict):
    horizontal: Axis = 0
    vertical: Axis = 0
    pan: Axis = 0
    tilt: Axis = 0
    roll: Axis = 0
    zoom: Axis = 0


class CameraPoint(Strict):
    """Where the camera is at time `t` (seconds): the frame's offset (x, y) in frame heights, its zoom
    factor and roll (radians); linear in between, held after the last point, at rest before the first."""

    t: float = Field(ge=0, le=600)
    x: float = Field(default=0.0, ge=-4, le=4)
    y: float = Field(default=0.0, ge=-4, le=4)
    zoom: float = Field(default=1.0, ge=0.1, le=10)
    roll: float = Field(default=0.0, ge=-6.3, le=6.3)


class Camera(Strict):
    preset: CameraPreset | None = None
    axes: CameraAxes | None = None
    path: list[CameraPoint] | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_of(self):
        if sum(v is not None for v in (self.preset, self.axes, self.path)) != 1:
            raise ValueError("give exactly one of camera.preset, camera.axes and camera.path")
        if self.path is not None and any(b.t <= a.t for a, b in zip(self.path, self.path[1:], strict=False)):
            raise ValueError("camera path times must increase")
        return self


class Shot(Strict):
    """One shot of a storyboard: its prompt and length."""

    prompt: str = Field(min_length=1, max_length=2000)
    seconds: float = Field(gt=0, le=600)


Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class BrushRegion(Strict):
    """A region (the white pixels of `mask`) and where it goes: `trajectory` points (x, y) in frame
    units, at `times` (seconds from the start, increasing) or, without times, spread evenly from the
    first frame to the end of the requested seconds."""

    mask: UploadId
    trajectory: list[Point] = Field(min_length=2, max_length=64)
    times: list[Annotated[float, Field(ge=0, le=600)]] | None = None

    @model_validator(mode="after")
    def _times_match(self):
        if self.times is not None:
            if len(self.times) != len(self.trajectory):
                raise ValueError("give one time per trajectory point")
            if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
                raise ValueError("trajectory times must increase")
        return self


class MotionBrush(Strict):
    regions: list[BrushRegion] = Field(min_length=1, max_length=5)
    static_mask: UploadId | None = None


class Extend(Strict):
    generation_id: GenerationId


class GenerationCreate(Strict):
    prompt: str = Field(min_length=1, max_length=2000)
    negative_prompt: str = Field(default="", max_length=2000)
    model: str | None = None  # default: the newest registered model
    seconds: float = Field(default=2.0, gt=0, le=600)
    seed: int | None = Field(default=None, ge=0, le=2**53)  # drawn and recorded when absent
    steps: int | None = Field(default=None, ge=1, le=500)
    guidance: float | None = Field(default=None, ge=0, le=30)
    # Guidance of segments that start from known frames (a first keyframe, an extension, the later
    # segments of a long video); default: the model's (2 for the shipped one, against 8 from text).
    continue_guidance: float | None = Field(default=None, ge=0, le=30)
    # Text-to-video as text-to-image, then image-to-video; default: the model's.
    image_first: StrictBool | None = None  # "yes" is a 422, not true
    image_guidance: float | None = Field(default=None, ge=0, le=30)  # of that image; default: the model's
    # The time a segment from a first keyframe starts at, from it repeated (1: from noise); default:
    # the model's.
    known_start: float | None = Field(default=None, gt=0, le=1)
    sampler: str | None = None
    resolution: str = "base"
    aspect: str | None = None
    fps: float | None = Field(default=None, gt=0, le=60)
    keyframes: Keyframes | None = None
    camera: Camera | None = None
    motion_brush: MotionBrush | None = None
    extend: Extend | None = None
    # Shots, each with its own prompt, generated one after the other as one video; `seconds` becomes
    # their total, and `prompt` names the video (and is moderated with every shot's prompt).
    storyboard: list[Shot] | None = Field(default=None, min_length=1, max_length=32)
    webhook_url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _storyboard_length(self):
        if self.storyboard is not None:
            total = sum(shot.seconds for shot in self.storyboard)
            if total > 600:
                raise ValueError(f"the storyboard lasts {total:g} s; at most 600")
            self.seconds = total
        return self


class GenerationError(BaseModel):
    code: str
    message: str
    retryable: bool


class OutputFile(BaseModel):
    url: str
    content_type: str
    bytes: int


class Outputs(BaseModel):
    video: OutputFile
    poster: OutputFile
    record: dict[str, Any]


class GenerationOut(BaseModel):
    id: str
    object: Literal["generation"] = "generation"
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    model: str
    prompt: str
    params: dict[str, Any]
    queue_position: int | None
    progress: float
    stage: str | None
    eta_s: float | None
    outputs: Outputs | None
    error: GenerationError | None
    cost: int
    credits_reserved: int
    credits_charged: int
    attempts: int
    cancel_requested: bool
    moderation: dict[str, Any] | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    events_url: str


class GenerationPage(BaseModel):
    data: list[GenerationOut]
    next_cursor: str | None


class FeedbackCreate(Strict):
    thumb: Literal["up", "down"] | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20
    )
    comment: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _something(self):
        if self.thumb is None and self.rating is None:
            raise ValueError("give a thumb (up or down) or a rating (1-5)")
        return self


class PreferenceCreate(Strict):
    chosen: GenerationId
    rejected: GenerationId
    reason: str = Field(default="", max_length=4000)


class ApiKeyCreate(Strict):
    name: str = Field(default="", max_length=200)


class WaitlistJoin(Strict):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=2000)


class AccountCreate(Strict):
    """Redeem an invite code: the answer carries the account's first API key, shown once."""

    invite_code: str = Field(min_length=4, max_length=64)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str = Field(default="", max_length=200)


# Worker protocol (a worker token, not an API key).


class WorkerModel(Strict):
    id: str = Field(min_length=1, max_length=200)
    info: dict[str, Any]


class WorkerLeaseRequest(Strict):
    worker_id: str = Field(min_length=1, max_length=200)
    models: list[str] = Field(min_length=1, max_length=20)


class WorkerHeartbeat(Strict):
    token: str
    stage: str | None = Field(default=None, max_length=32)
    progress: float = Field(default=0.0, ge=0, le=1)
    eta_s: float | None = Field(default=None, ge=0)


class WorkerFail(Strict):
    token: str
    code: str = Field(max_length=100)
    message: str = Field(max_length=4000)
    retryable: bool = False


class WorkerToken(Strict):
    token: str
