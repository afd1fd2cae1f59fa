"""Random scene specs covering the whole vocabulary, with every object in frame and none overlapping.

Kinds balance the claim types: single objects, several, counts, relations, order of events, camera
moves. A candidate is rejected and redrawn until it satisfies the physical constraints.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mutoscope.world.motion import camera_params, object_states, to_frame
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import (
    BACKGROUNDS,
    COLORS,
    NO_ROTATE,
    SIZES,
    Camera,
    Direction,
    Motion,
    Relation,
    Shape,
    Spin,
)

KINDS = SCENE_KINDS = ("single", "multi", "count", "relation", "order", "camera", "figure")
SECONDS = 2.0
OBJECT_MOTIONS = (
    Motion.STILL,
    Motion.MOVE,
    Motion.BOUNCE,
    Motion.FALL,
    Motion.ROTATE,
    Motion.GROW,
    Motion.SHRINK,
    Motion.ORBIT,
    Motion.ZIGZAG,
)
FIGURE_MOTIONS = (Motion.STILL, Motion.WALK, Motion.WAVE, Motion.JUMP)
PLAIN_SHAPES = tuple(s for s in Shape if s is not Shape.PERSON)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _segment(rng, shape: Shape, t0: float, t1: float, motions=None) -> Segment:
    if shape is Shape.PERSON:
        motion = _pick(rng, motions or FIGURE_MOTIONS)
    else:
        motion = _pick(rng, motions or OBJECT_MOTIONS)
        if motion is Motion.ROTATE and shape in NO_ROTATE:
            motion = Motion.MOVE
    direction = spin = None
    if motion in (Motion.ZIGZAG, Motion.WALK):
        direction = _pick(rng, (Direction.LEFT, Direction.RIGHT))
    elif motion is Motion.MOVE:
        direction = _pick(rng, tuple(Direction))
    elif motion is Motion.ROTATE:
        spin = _pick(rng, tuple(Spin))
    return Segment(motion, t0, t1, direction=direction, spin=spin)


def _object(rng, shape=None, color=None, size=None, segments=None, xy=None) -> ObjectSpec:
    shape = shape or _pick(rng, tuple(Shape))
    size = size or _pick(rng, tuple(SIZES))
    segs = segments if segments is not None else (_segment(rng, shape, 0.0, SECONDS),)
    if any(s.motion is Motion.GROW for s in segs) and size == "large":
        size = "medium"  # a large object grown 1.7x would not fit the frame
    x, y = xy if xy is not None else rng.uniform(0.2, 0.8, size=2)
    if any(s.motion in (Motion.FALL, Motion.BOUNCE) for s in segs) and xy is None:
        y = rng.uniform(0.2, 0.4)  # start high so the drop is visible
    return ObjectSpec(
        shape=shape,
        color=color or _pick(rng, tuple(COLORS)),
        size=size,
        x=float(x),
        y=float(y),
        angle=float(rng.uniform(0, 2 * np.pi)) if shape is not Shape.PERSON else 0.0,
        segments=tuple(s for s in segs if s.motion is not Motion.STILL or len(segs) > 1),
    )


def _draw(rng, kind: str) -> tuple[list[ObjectSpec], Camera]:
    camera = Camera.STATIC if rng.random() < 0.7 else _pick(rng, tuple(Camera))
    if kind == "single":
        return [_object(rng)], camera
    if kind == "figure":
        return [_object(rng, shape=Shape.PERSON)], camera
    if kind == "camera":
        camera = _pick(rng, tuple(c for c in Camera if c is not Camera.STATIC))
        still = (Segment(Motion.STILL, 0, SECONDS),)
        if camera is Camera.ZOOM_IN:  # the zoom pushes everything outwards: start near the centre
            return [_object(rng, size="small", segments=still, xy=rng.uniform(0.36, 0.64, 2))], camera
        n = int(rng.integers(1, 3))
        return [_object(rng, segments=still) for _ in range(n)], camera
    if kind == "multi":
        return [_object(rng) for _ in range(int(rng.integers(2, 4)))], camera
    if kind == "count":
        shape, color = _pick(rng, PLAIN_SHAPES), _pick(rng, tuple(COLORS))
        size, motion = _pick(rng, ("small", "medium")), _pick(rng, (Motion.STILL, Motion.ROTATE))
        n = int(rng.integers(2, 4))
        objs = [
            _object(rng, shape, color, size, segments=(_segment(rng, shape, 0, SECONDS, (motion,)),))
            for _ in range(n)
        ]
        if n == 2 and rng.random() < 0.5:
            objs.append(_object(rng, segments=(Segment(Motion.STILL, 0, SECONDS),)))
        return objs, Camera.STATIC
    if kind == "relation":
        rel = _pick(rng, tuple(Relation))
        still = (Segment(Motion.STILL, 0, SECONDS),)
        a = _object(rng, size=_pick(rng, ("small", "medium")), segments=still, xy=(0.5, 0.5))
        b = _object(rng, size=_pick(rng, ("small", "medium")), segments=still, xy=(0.5, 0.5))
        gap = a.radius + b.radius + (0.06 if rel is Relation.NEXT_TO else rng.uniform(0.12, 0.25))
        cx, cy = rng.uniform(0.35, 0.65, size=2)
        horizontal = rel in (Relation.LEFT_OF, Relation.RIGHT_OF, Relation.NEXT_TO)
        sign = -1 if rel in (Relation.LEFT_OF, Relation.ABOVE, Relation.NEXT_TO) else 1
        off = (gap / 2, 0) if horizontal else (0, gap / 2)
        a = _replace_xy(a, cx + sign * off[0], cy + sign * off[1])
        b = _replace_xy(b, cx - sign * off[0], cy - sign * off[1])
        return [a, b], Camera.STATIC
    if kind == "order":
        half = SECONDS / 2
        moving = (Motion.MOVE, Motion.ROTATE, Motion.GROW, Motion.SHRINK, Motion.FALL)
        if rng.random() < 0.5:
            shape = _pick(rng, PLAIN_SHAPES)
            first = _segment(rng, shape, 0, half, (Motion.MOVE,))
            second = _segment(rng, shape, half, SECONDS, moving)
            return [_object(rng, shape, segments=(first, second), size="small")], Camera.STATIC
        sa, sb = _pick(rng, PLAIN_SHAPES), _pick(rng, PLAIN_SHAPES)
        a = _object(
            rng,
            sa,
            segments=(_segment(rng, sa, 0, half, moving), Segment(Motion.STILL, half, SECONDS)),
        )
        b = _object(
            rng,
            sb,
            segments=(Segment(Motion.STILL, 0, half), _segment(rng, sb, half, SECONDS, moving)),
        )
        return [a, b], Camera.STATIC
    raise ValueError(f"unknown scene kind {kind!r}; choose from {SCENE_KINDS}")


def _replace_xy(obj: ObjectSpec, x: float, y: float) -> ObjectSpec:
    return replace(obj, x=float(x), y=float(y))


def feasible(spec: SceneSpec, margin: float = 0.02) -> bool:
    """Every object fully in frame at every checked time, and no two objects overlap."""
    times = np.linspace(0.0, spec.seconds - 1e-6, max(33, int(spec.seconds * 16)))
    states = [object_states(o, times) for o in spec.objects]
    for o, st in zip(spec.objects, states, strict=True):
        r = o.radius * st.scale
        fx, fy = to_frame(spec.camera, times, st.x, st.y)
        zoom = camera_params(spec.camera, times)[0]
        rr = r * zoom + margin
        if np.any((fx - rr < 0) | (fx + rr > 1) | (fy - rr < 0) | (fy + rr > 1)):
            return False
    for i in range(len(states)):
        for j in range(i + 1, len(states)):
            a, b = states[i], states[j]
            ra = spec.objects[i].radius * a.scale
            rb = spec.objects[j].radius * b.scale
            if np.any(np.hypot(a.x - b.x, a.y - b.y) < ra + rb + margin):
                return False
    return True


def _stretch(spec: SceneSpec, seconds: float) -> SceneSpec:
    """The same scene over `seconds`: segment windows scale, motion rates stay per second."""
    f = seconds / SECONDS
    objects = tuple(
        replace(o, segments=tuple(replace(s, t0=s.t0 * f, t1=s.t1 * f) for s in o.segments))
        for o in spec.objects
    )
    return replace(spec, objects=objects, seconds=seconds)


def sample_spec(rng: np.random.Generator, kind: str | None = None, seconds: float = SECONDS) -> SceneSpec:
    """A random, valid, feasible scene of the given kind (a random kind when None)."""
    if kind is not None and kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose from {SCENE_KINDS}")
    chosen = kind or _pick(rng, SCENE_KINDS)
    for _ in range(500):
        objects, camera = _draw(rng, chosen)
        spec = SceneSpec(
            objects=tuple(objects),
            background=_pick(rng, BACKGROUNDS),
            camera=camera,
            seconds=SECONDS,
            seed=int(rng.integers(2**31)),
            caption_seed=int(rng.integers(2**31)),
            extras={"kind": chosen},
        )
        spec = _stretch(spec, seconds).validate() if seconds != SECONDS else spec.validate()
        if feasible(spec):
            return spec
    raise RuntimeError(f"could not draw a feasible {chosen!r} scene")  # a sampler bug, not input
