"""The scene spec: plain, JSON-serialisable data that fully determines a clip.

A spec says what is in the scene and what happens, in world units and seconds; it says nothing about
pixels or frame rate, so one spec renders the same motion at 64x64 / 8 fps and at 1920x1080 / 30 fps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mutoscope.world.vocab import (
    BACKGROUNDS,
    COLORS,
    HORIZONTAL_ONLY,
    NEEDS_DIRECTION,
    NEEDS_SPIN,
    NO_ROTATE,
    PERSON_ONLY,
    SIZES,
    Camera,
    Direction,
    Motion,
    Shape,
    Spin,
)


@dataclass(frozen=True)
class Segment:
    """One motion of one object over the time window [t0, t1) seconds."""

    motion: Motion
    t0: float
    t1: float
    direction: Direction | None = None  # MOVE, ZIGZAG, WALK
    spin: Spin | None = None  # ROTATE


@dataclass(frozen=True)
class ObjectSpec:
    shape: Shape
    color: str  # a key of COLORS
    size: str  # a key of SIZES
    x: float  # initial centre, world units (frame at rest is the unit square, y down)
    y: float
    angle: float = 0.0  # initial rotation, radians
    segments: tuple[Segment, ...] = ()  # consecutive, covering the clip; empty means still

    @property
    def radius(self) -> float:
        return SIZES[self.size]


@dataclass(frozen=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]
    background: str  # one of BACKGROUNDS
    camera: Camera = Camera.STATIC
    seconds: float = 2.0
    seed: int = 0  # texture placement and other cosmetic randomness
    caption_seed: int = 0  # which phrasing the captioner picks
    extras: dict = field(default_factory=dict)  # free-form notes (e.g. the sampler's scene kind)

    def validate(self) -> SceneSpec:
        """Raise ValueError naming the first field outside the world's vocabulary."""
        if not 1 <= len(self.objects) <= 3:
            raise ValueError(f"a scene has 1 to 3 objects, got {len(self.objects)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}")
        if self.seconds <= 0:
            raise ValueError("seconds must be positive")
        for i, obj in enumerate(self.objects):
            where = f"objects[{i}]"
            if obj.color not in COLORS:
                raise ValueError(f"{where}: unknown color {obj.color!r}")
            if obj.size not in SIZES:
                raise ValueError(f"{where}: unknown size {obj.size!r}")
            for seg in obj.segments:
                _validate_segment(where, obj.shape, seg)
        return self

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SceneSpec:
        objects = tuple(
            ObjectSpec(
                shape=Shape(o["shape"]),
                color=o["color"],
                size=o["size"],
                x=float(o["x"]),
                y=float(o["y"]),
                angle=float(o.get("angle", 0.0)),
                segments=tuple(
                    Segment(
                        motion=Motion(s["motion"]),
                        t0=float(s["t0"]),
                        t1=float(s["t1"]),
                        direction=Direction(s["direction"]) if s.get("direction") else None,
                        spin=Spin(s["spin"]) if s.get("spin") else None,
                    )
                    for s in o.get("segments", ())
                ),
            )
            for o in d["objects"]
        )
        return cls(
            objects=objects,
            background=d["background"],
            camera=Camera(d.get("camera", "static")),
            seconds=float(d.get("seconds", 2.0)),
            seed=int(d.get("seed", 0)),
            caption_seed=int(d.get("caption_seed", 0)),
            extras=dict(d.get("extras", {})),
        ).validate()

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        return cls.from_dict(json.loads(text))


def _validate_segment(where: str, shape: Shape, seg: Segment) -> None:
    if seg.t1 <= seg.t0:
        raise ValueError(f"{where}: segment {seg.motion} has t1 <= t0")
    if seg.motion in NEEDS_DIRECTION and seg.direction is None:
        raise ValueError(f"{where}: {seg.motion} needs a direction")
    if seg.motion in HORIZONTAL_ONLY and seg.direction not in (Direction.LEFT, Direction.RIGHT):
        raise ValueError(f"{where}: {seg.motion} goes left or right only")
    if seg.motion in NEEDS_SPIN and seg.spin is None:
        raise ValueError(f"{where}: {seg.motion} needs a spin")
    if seg.motion in PERSON_ONLY and shape is not Shape.PERSON:
        raise ValueError(f"{where}: only a person can {seg.motion}")
    if seg.motion is Motion.ROTATE and shape in NO_ROTATE:
        raise ValueError(f"{where}: a {shape} cannot visibly rotate")
