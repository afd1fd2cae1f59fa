"""Claims -> verdicts with evidence, one function per claim type, with claims.holds()'s semantics
applied to what the judge saw instead of to the spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mutoscope.world.claims import Claim, ClaimType, Event, ObjectRef, relation_holds
from mutoscope.world.judge.motion import Happening
from mutoscope.world.judge.reading import SceneReading, SeenObject
from mutoscope.world.vocab import SIZES, Relation

# ORDER: the first event must end before the second starts; segment ends are known to a sample or
# so, and consecutive segments are one sample apart, so allow this many frame intervals of overlap.
ORDER_SLACK_FRAMES = 1.5


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    passed: bool
    evidence: str

    def to_dict(self) -> dict:
        return {
            "type": self.claim.type.value,
            "claim": self.claim.to_dict(),
            "text": self.claim.describe(),
            "passed": self.passed,
            "evidence": self.evidence,
        }


def matches(ref: ObjectRef | None, obj: SeenObject) -> bool:
    if ref is None:
        return True
    return (
        (ref.shape is None or obj.shape == ref.shape)
        and (ref.color is None or obj.color == ref.color)
        and (ref.size is None or obj.size == ref.size)
    )


def _seen(objs: list[SeenObject]) -> str:
    return "; ".join(o.describe() for o in objs) if objs else "none"


def _fits(event: Event, h: Happening) -> bool:
    return (
        h.motion == event.motion
        and (event.direction is None or h.direction == event.direction)
        and (event.spin is None or h.spin == event.spin)
    )


class Context:
    """What the verdicts share: the reading and each object's named motion."""

    def __init__(self, reading: SceneReading, motions: list[list[Happening]]):
        self.reading = reading
        self.motions = motions

    def objects(self, ref: ObjectRef | None) -> list[SeenObject]:
        return [o for o in self.reading.objects if matches(ref, o)]

    def events(self, event: Event) -> list[tuple[SeenObject, Happening]]:
        return [
            (o, h)
            for o, hs in zip(self.reading.objects, self.motions, strict=True)
            if matches(event.subject, o)
            for h in hs
            if _fits(event, h)
        ]

    def motion_of(self, obj: SeenObject) -> list[Happening]:
        return self.motions[self.reading.objects.index(obj)]


def color(ctx: Context, c: Claim) -> Verdict:
    cands = ctx.objects(c.subject)
    hits = [o for o in cands if o.color == c.value]
    return Verdict(c, bool(hits), f"{c.subject.describe()}(s) seen: {_seen(cands)}")


def shape(ctx: Context, c: Claim) -> Verdict:
    cands = ctx.objects(c.subject)
    hits = [o for o in cands if o.shape == c.value]
    return Verdict(c, bool(hits), f"{c.subject.describe()}(s) seen: {_seen(cands)}")


def size(ctx: Context, c: Claim) -> Verdict:
    cands = ctx.objects(c.subject)
    hits = [o for o in cands if o.size == c.value]
    radii = ", ".join(f"{o.color} {o.shape} r={o.radius:.3f}" for o in cands) or "none"
    bands = ", ".join(f"{k} {v}" for k, v in SIZES.items())
    return Verdict(c, bool(hits), f"radius at first sight: {radii} (sizes: {bands})")


def count(ctx: Context, c: Claim) -> Verdict:
    cands = ctx.objects(c.subject)
    return Verdict(c, len(cands) == c.count, f"{len(cands)} seen: {_seen(cands)}")


def _motion_summary(ctx: Context, ref: ObjectRef) -> str:
    objs = ctx.objects(ref)
    if not objs:
        return f"no {ref.describe()} seen"
    return "; ".join(
        f"{o.color} {o.shape}: " + (", ".join(h.describe() for h in ctx.motion_of(o)) or "?") for o in objs
    )


def motion(ctx: Context, c: Claim) -> Verdict:
    hits = ctx.events(c.event)
    return Verdict(c, bool(hits), _motion_summary(ctx, c.event.subject))


def order(ctx: Context, c: Claim) -> Verdict:
    firsts, seconds = ctx.events(c.event), ctx.events(c.then)
    slack = ORDER_SLACK_FRAMES / ctx.reading.fps
    ok = any(
        a.t1 <= b.t0 + slack and a.t0 < b.t0
        for oa, a in firsts
        for ob, b in seconds
        if not (oa is ob and a is b)
    )
    first = ", ".join(h.describe() for _, h in firsts) or "not seen"
    then = ", ".join(h.describe() for _, h in seconds) or "not seen"
    return Verdict(c, ok, f"first event: {first}; second event: {then}")


def relation(ctx: Context, c: Claim) -> Verdict:
    rel = Relation(c.value)
    subs, others = ctx.objects(c.subject), ctx.objects(c.other)
    # The oracle measures radii as the size's nominal radius; so do we, from the size we read.
    ok = any(
        relation_holds(a.start, b.start, SIZES[a.size], SIZES[b.size], rel)
        for a in subs
        for b in others
        if b is not a
    )
    return Verdict(
        c, ok, f"at the first frame: {c.subject.describe()}: {_seen(subs)} | "
        f"{c.other.describe()}: {_seen(others)}"
    )  # fmt: skip


def camera(ctx: Context, c: Claim) -> Verdict:
    move, frac = ctx.reading.camera.classify()
    parts = ", ".join(f"{k} {v:+.2f}" for k, v in frac.items())
    return Verdict(c, move == c.value, f"camera: {move} ({parts} of the world's rates)")


def background(ctx: Context, c: Claim) -> Verdict:
    bg = ctx.reading.background
    top = sorted(ctx.reading.background_scores.items(), key=lambda kv: -kv[1])[:3]
    scores = ", ".join(f"{k} {v:.2f}" for k, v in top)
    return Verdict(c, bg == c.value, f"background: {bg} (scores {scores})")


VERDICTS: dict[ClaimType, Callable[[Context, Claim], Verdict]] = {
    ClaimType.COLOR: color,
    ClaimType.SHAPE: shape,
    ClaimType.SIZE: size,
    ClaimType.COUNT: count,
    ClaimType.MOTION: motion,
    ClaimType.ORDER: order,
    ClaimType.RELATION: relation,
    ClaimType.CAMERA: camera,
    ClaimType.BACKGROUND: background,
}

__all__ = ["VERDICTS", "Context", "Verdict", "matches"]
