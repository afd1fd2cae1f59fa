"""Typed claims that a caption makes about a scene, and the oracle that checks them against a spec.

The captioner emits claims with every caption, the prompt grammar parses a prompt into claims, and the
judge checks claims against pixels. `holds(spec, claim)` is the ground truth the judge is validated on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import StrEnum

from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import Camera, Direction, Motion, Relation, Shape, Spin


class ClaimType(StrEnum):
    COLOR = "color"  # some <shape> is <color>
    SHAPE = "shape"  # some <color> object is a <shape>
    COUNT = "count"  # exactly n objects match the subject
    SIZE = "size"  # the subject is small / medium / large (at the first frame)
    MOTION = "motion"  # the subject performs the event at some time
    CAMERA = "camera"  # the camera makes this move
    RELATION = "relation"  # subject <relation> other (at the first frame)
    ORDER = "order"  # event, then `then` (the second starts after the first ends)
    BACKGROUND = "background"


@dataclass(frozen=True)
class ObjectRef:
    """How a caption picks out an object: any of color, shape and size, None meaning unstated."""

    shape: Shape | None = None
    color: str | None = None
    size: str | None = None

    def matches(self, obj: ObjectSpec) -> bool:
        return (
            (self.shape is None or obj.shape == self.shape)
            and (self.color is None or obj.color == self.color)
            and (self.size is None or obj.size == self.size)
        )

    def describe(self) -> str:
        words = [w for w in (self.size, self.color, self.shape) if w]
        return " ".join(words) if self.shape else " ".join([*words, "object"])


@dataclass(frozen=True)
class Event:
    subject: ObjectRef
    motion: Motion
    direction: Direction | None = None  # None: any direction of that motion
    spin: Spin | None = None

    def matches(self, seg: Segment) -> bool:
        return (
            seg.motion == self.motion
            and (self.direction is None or seg.direction == self.direction)
            and (self.spin is None or seg.spin == self.spin)
        )

    def describe(self) -> str:
        qual = self.direction or self.spin
        return f"{self.subject.describe()} {self.motion}" + (f" {qual}" if qual else "")


@dataclass(frozen=True)
class Claim:
    type: ClaimType
    subject: ObjectRef | None = None  # COLOR, SHAPE, COUNT, SIZE, RELATION
    value: str | None = None  # color, shape, size, camera, relation or background name
    count: int | None = None  # COUNT
    event: Event | None = None  # MOTION, ORDER
    then: Event | None = None  # ORDER
    other: ObjectRef | None = None  # RELATION

    def describe(self) -> str:
        t = self.type
        if t is ClaimType.COLOR:
            return f"a {self.subject.describe()} is {self.value}"
        if t is ClaimType.SHAPE:
            return f"a {self.subject.describe()} is a {self.value}"
        if t is ClaimType.COUNT:
            return f"exactly {self.count} x {self.subject.describe()}"
        if t is ClaimType.SIZE:
            return f"the {self.subject.describe()} is {self.value}"
        if t is ClaimType.MOTION:
            return self.event.describe()
        if t is ClaimType.ORDER:
            return f"{self.event.describe()}, then {self.then.describe()}"
        if t is ClaimType.RELATION:
            return f"{self.subject.describe()} {self.value} {self.other.describe()}"
        return f"{t}: {self.value}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> Claim:
        return cls(
            type=ClaimType(d["type"]),
            subject=_ref(d.get("subject")),
            value=d.get("value"),
            count=d.get("count"),
            event=_event(d.get("event")),
            then=_event(d.get("then")),
            other=_ref(d.get("other")),
        )


def _ref(d: dict | None) -> ObjectRef | None:
    if d is None:
        return None
    return ObjectRef(
        shape=Shape(d["shape"]) if d.get("shape") else None,
        color=d.get("color"),
        size=d.get("size"),
    )


def _event(d: dict | None) -> Event | None:
    if d is None:
        return None
    return Event(
        subject=_ref(d["subject"]),
        motion=Motion(d["motion"]),
        direction=Direction(d["direction"]) if d.get("direction") else None,
        spin=Spin(d["spin"]) if d.get("spin") else None,
    )


def claims_to_json(claims: list[Claim]) -> str:
    return json.dumps([c.to_dict() for c in claims])


def claims_from_json(text: str) -> list[Claim]:
    return [Claim.from_dict(d) for d in json.loads(text)]


# Relation geometry, shared by the oracle (on spec positions) and the judge (on measured centroids).
RELATION_MIN_OFFSET = 0.12  # world units between centres for left/right/above/below
NEXT_TO_MAX_GAP = 0.14  # world units between the two outlines for "next to"


def relation_holds(
    a: tuple[float, float], b: tuple[float, float], ra: float, rb: float, rel: Relation
) -> bool:
    """Does object A (centre a, radius ra) stand in `rel` to object B? Image coordinates, y down."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if rel is Relation.LEFT_OF:
        return dx >= RELATION_MIN_OFFSET and abs(dy) <= dx
    if rel is Relation.RIGHT_OF:
        return -dx >= RELATION_MIN_OFFSET and abs(dy) <= -dx
    if rel is Relation.ABOVE:
        return dy >= RELATION_MIN_OFFSET and abs(dx) <= dy
    if rel is Relation.BELOW:
        return -dy >= RELATION_MIN_OFFSET and abs(dx) <= -dy
    gap = math.hypot(dx, dy) - ra - rb
    return gap <= NEXT_TO_MAX_GAP and abs(dx) >= abs(dy)


def holds(spec: SceneSpec, claim: Claim) -> bool:
    """The ground truth: is `claim` true of the scene `spec` describes?"""
    objs = spec.objects
    t = claim.type
    if t is ClaimType.COLOR:
        return any(claim.subject.matches(o) and o.color == claim.value for o in objs)
    if t is ClaimType.SHAPE:
        return any(claim.subject.matches(o) and o.shape == claim.value for o in objs)
    if t is ClaimType.SIZE:
        return any(claim.subject.matches(o) and o.size == claim.value for o in objs)
    if t is ClaimType.COUNT:
        return sum(claim.subject.matches(o) for o in objs) == claim.count
    if t is ClaimType.CAMERA:
        return spec.camera == claim.value
    if t is ClaimType.BACKGROUND:
        return spec.background == claim.value
    if t is ClaimType.MOTION:
        return any(_event_segments(o, claim.event) for o in objs)
    if t is ClaimType.ORDER:
        firsts = [s for o in objs for s in _event_segments(o, claim.event)]
        seconds = [s for o in objs for s in _event_segments(o, claim.then)]
        return any(a.t1 <= b.t0 + 1e-6 for a in firsts for b in seconds)
    if t is ClaimType.RELATION:
        rel = Relation(claim.value)
        return any(
            relation_holds((a.x, a.y), (b.x, b.y), a.radius, b.radius, rel)
            for a in objs
            if claim.subject.matches(a)
            for b in objs
            if b is not a and claim.other.matches(b)
        )
    raise ValueError(f"unknown claim type {t}")


def _event_segments(obj: ObjectSpec, event: Event) -> list[Segment]:
    if not event.subject.matches(obj):
        return []
    segments = obj.segments or (Segment(Motion.STILL, 0.0, math.inf),)
    return [s for s in segments if event.matches(s)]


__all__ = [
    "Camera",
    "Claim",
    "ClaimType",
    "Event",
    "ObjectRef",
    "claims_from_json",
    "claims_to_json",
    "holds",
    "relation_holds",
]
