"""The captioner: every claim it makes holds of the scene, and the grammar reads it back."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest

from mutoscope.world.caption import caption, coverage
from mutoscope.world.claims import Claim, ClaimType, ObjectRef, holds
from mutoscope.world.grammar import parse_prompt
from mutoscope.world.lexicon import COLOR_WORDS, MOTION_WORDS
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import (
    BACKGROUNDS,
    COLORS,
    HORIZONTAL_ONLY,
    NEEDS_DIRECTION,
    NO_ROTATE,
    PERSON_ONLY,
    SIZES,
    Camera,
    Direction,
    Motion,
    Shape,
    Spin,
)

SEEDS = range(60)


def seg(motion, t0=0.0, t1=2.0, direction=None, spin=None) -> Segment:
    return Segment(Motion(motion), t0, t1, direction and Direction(direction), spin and Spin(spin))


def obj(shape, color, *segments, size="medium", x=0.5, y=0.5) -> ObjectSpec:
    return ObjectSpec(Shape(shape), color, size, x, y, segments=tuple(segments))


def scene(*objects, background="brick", camera="static", kind="") -> SceneSpec:
    return SceneSpec(objects, background, Camera(camera), extras={"kind": kind}).validate()


RELATION = scene(  # still objects well apart: left of / above / next to all hold with margin
    obj("circle", "red", x=0.25, y=0.6),
    obj("star", "blue", x=0.75, y=0.6),
    obj("square", "green", x=0.75, y=0.2),
    kind="relation",
)
COUNT = scene(
    obj("square", "blue", x=0.3),
    obj("square", "blue", x=0.7),
    obj("circle", "red", seg("bounce"), y=0.2),
    kind="count",
    background="grass",
)
ORDER = scene(  # one after the other: the circle falls, then the star spins
    obj("circle", "red", seg("fall", 0, 1), seg("still", 1, 2), x=0.3),
    obj("star", "blue", seg("still", 0, 1), seg("rotate", 1, 2, spin="clockwise"), x=0.7),
    kind="order",
    camera="pan_left",
)
FIXTURES = {
    "move_then_bounce": scene(
        obj("circle", "red", seg("move", 0, 1, "right"), seg("bounce", 1, 2)), camera="pan_left"
    ),
    "person": scene(
        obj(
            "person",
            "yellow",
            seg("walk", 0, 0.7, "left"),
            seg("wave", 0.7, 1.4),
            seg("jump", 1.4, 2),
            size="large",
        ),
        background="grass",
        camera="zoom_in",
    ),
    "spin_grow_orbit": scene(
        obj("square", "purple", seg("rotate", 0, 1, spin="clockwise"), seg("grow", 1, 2), x=0.3),
        obj("triangle", "orange", seg("shrink"), x=0.7, y=0.3),
        obj("star", "white", seg("orbit", spin="counterclockwise"), y=0.7),
        camera="orbit",
        background="night",
    ),
    "zigzag_fall_diagonal": scene(
        obj("ring", "cyan", seg("zigzag", 0, 2, "right"), x=0.3),
        obj("star", "pink", seg("fall", 0, 1), seg("move", 1, 2, "up_left"), x=0.7),
        camera="tilt_up",
        background="dunes",
    ),
    "same_shape_two_colors": scene(
        obj("circle", "red", seg("move", 0, 2, "down_right"), x=0.3),
        obj("circle", "blue", seg("shrink"), x=0.7),
        camera="zoom_out",
        background="clouds",
    ),
    "group_members_differ": scene(
        obj("triangle", "pink", seg("move", 0, 2, "up"), x=0.3),
        obj("triangle", "pink", seg("shrink"), x=0.7),
        camera="tilt_down",
        background="checkerboard",
    ),
    "relation": RELATION,
    "count": COUNT,
    "order": ORDER,
}


def claims_of(spec, seed):
    cap = caption(spec, random.Random(seed))
    return cap, set(cap.claims)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_claim_holds_and_reads_back(name):
    spec = FIXTURES[name]
    for s in SEEDS:
        cap, claims = claims_of(spec, s)
        assert claims, cap.text
        assert all(holds(spec, c) for c in claims), cap.text
        assert set(parse_prompt(cap.text)) == claims, cap.text


@pytest.mark.parametrize("camera", list(Camera))
def test_every_camera_move(camera):
    spec = scene(obj("star", "green", seg("rotate", spin="counterclockwise")), camera=camera)
    said = 0
    for s in SEEDS:
        cap, claims = claims_of(spec, s)
        assert set(parse_prompt(cap.text)) == claims, cap.text
        said += any(c.type is ClaimType.CAMERA for c in claims)
    # A moving camera is nearly always said; a static one only sometimes.
    assert said >= 0.75 * len(SEEDS) if camera != "static" else 0 < said < len(SEEDS)


def test_groups_are_counted_every_time():
    # "two blue squares", or "two medium blue squares" (both are medium)
    refs = {ObjectRef(Shape.SQUARE, "blue"), ObjectRef(Shape.SQUARE, "blue", "medium")}
    for s in SEEDS:
        cap, claims = claims_of(COUNT, s)
        counts = {c.subject for c in claims if c.type is ClaimType.COUNT and c.count == 2}
        assert counts & refs, cap.text


def test_order_within_and_across_objects():
    within = across = 0
    circle, star = ORDER.objects
    for s in SEEDS:
        _, claims = claims_of(FIXTURES["move_then_bounce"], s)
        within += any(c.type is ClaimType.ORDER for c in claims)
        _, claims = claims_of(ORDER, s)
        orders = [c for c in claims if c.type is ClaimType.ORDER]
        across += any(c.event.subject.matches(circle) and c.then.subject.matches(star) for c in orders)
        backwards = [c for c in orders if c.event.subject.matches(star)]
        assert not any(c.then.subject.matches(circle) for c in backwards)
    assert within >= 0.8 * len(SEEDS)
    assert across >= 0.4 * len(SEEDS)


def test_relations_are_stated_only_with_a_margin():
    for s in SEEDS:
        cap, claims = claims_of(RELATION, s)
        assert any(c.type is ClaimType.RELATION for c in claims), cap.text
    # 0.13 apart: left of by the 0.12 minimum, but not with the margin; next to, with it.
    close = scene(obj("circle", "red", x=0.435, y=0.5), obj("star", "blue", x=0.565, y=0.5), kind="relation")
    left_of = Claim(ClaimType.RELATION, ObjectRef(Shape.CIRCLE), "left_of", other=ObjectRef())
    assert holds(close, left_of)
    for s in SEEDS:
        _, claims = claims_of(close, s)
        assert {c.value for c in claims if c.type is ClaimType.RELATION} == {"next_to"}


def test_references_pick_out_one_object():
    spec = FIXTURES["same_shape_two_colors"]
    for s in SEEDS:
        cap, claims = claims_of(spec, s)
        for c in claims:
            if c.type is ClaimType.MOTION:
                assert sum(c.event.subject.matches(o) for o in spec.objects) == 1, cap.text


def test_phrasings_vary():
    spec = FIXTURES["move_then_bounce"]
    texts = [caption(spec, random.Random(s)).text.lower() for s in range(300)]
    words = set(re.findall(r"[a-z]+", " ".join(texts)))
    assert len(set(texts)) >= 290
    assert len(words & set(COLOR_WORDS["red"])) >= 4
    assert len(words & {f[0].split()[0] for f in MOTION_WORDS[Motion.MOVE]}) >= 5
    assert len(words & {"pans", "pan", "swings", "sweeps", "panning", "sweeping"}) >= 4
    joiners = (", then", " and then", ". then", ". after that", "; afterwards", " before it")
    assert sum(any(j in t for t in texts) for j in joiners) >= 5
    layouts = {t.startswith(("the camera", "camera", "as ", "while ", "with ")) for t in texts}
    assert layouts == {True, False}  # the camera sometimes first, sometimes not


def test_deterministic_and_any_rng():
    spec = FIXTURES["spin_grow_orbit"]
    assert caption(spec) == caption(spec)  # spec.caption_seed decides
    other = SceneSpec.from_dict({**spec.to_dict(), "caption_seed": 7})
    assert caption(other) != caption(spec)
    cap = caption(spec, np.random.default_rng(3))
    assert set(parse_prompt(cap.text)) == set(cap.claims)


def test_coverage_counts_claim_types():
    cap = caption(ORDER, random.Random(0))
    cov = coverage(cap.claims)
    assert set(cov) == {str(t) for t in ClaimType}
    assert sum(cov.values()) == len(cap.claims)
    assert cov["motion"] >= 2


def random_spec(r: random.Random) -> SceneSpec:
    """Any valid scene: 1-3 objects (some sharing shape and color), 1-3 segments each."""

    def segment(shape, t0, t1):
        ok = [m for m in Motion if not (m in PERSON_ONLY and shape is not Shape.PERSON)]
        m = r.choice([m for m in ok if not (m is Motion.ROTATE and shape in NO_ROTATE)])
        d = None
        if m in NEEDS_DIRECTION or (m is Motion.BOUNCE and r.random() < 0.3):
            sideways = m in HORIZONTAL_ONLY or m is Motion.BOUNCE
            d = r.choice([Direction.LEFT, Direction.RIGHT] if sideways else list(Direction))
        spin = r.choice(list(Spin)) if m is Motion.ROTATE or r.random() < 0.2 else None
        return Segment(m, t0, t1, d, spin if m in (Motion.ROTATE, Motion.ORBIT) else None)

    objects = []
    for _ in range(r.choice([1, 2, 3])):
        if objects and r.random() < 0.25:
            shape, color = r.choice([(o.shape, o.color) for o in objects])
        else:
            shape, color = r.choice(list(Shape)), r.choice(list(COLORS))
        cuts = sorted(r.uniform(0.3, 1.7) for _ in range(r.choice([0, 0, 1, 2])))
        bounds = [0.0, *cuts, 2.0]
        segs = [segment(shape, a, b) for a, b in itertools.pairwise(bounds)]
        x, y, size = r.uniform(0.1, 0.9), r.uniform(0.1, 0.9), r.choice(list(SIZES))
        objects.append(ObjectSpec(shape, color, size, x, y, segments=tuple(segs)))
    kind = r.choice(["", "count", "relation", "order"])
    background, camera = r.choice(BACKGROUNDS), r.choice(list(Camera))
    extras, seed = {"kind": kind}, r.randrange(1 << 30)
    return SceneSpec(tuple(objects), background, camera, caption_seed=seed, extras=extras)


def test_random_scenes():
    r = random.Random(0)
    n, back = 500, 0
    for _ in range(n):
        spec = random_spec(r)
        cap = caption(spec)
        assert all(holds(spec, c) for c in cap.claims), cap.text
        back += set(parse_prompt(cap.text)) == set(cap.claims)
    assert back >= 0.99 * n


def test_sampled_scenes():
    """The sampler's scenes (mutoscope.world.sample, skipped until it exists): the same bars."""
    sample = pytest.importorskip("mutoscope.world.sample")
    kinds = tuple(getattr(sample, "KINDS", None) or ("count", "relation", "order"))
    rng, n, back = np.random.default_rng(0), 300, 0
    for i in range(n):
        spec = sample.sample_spec(rng, kinds[i % len(kinds)])
        cap = caption(spec)
        assert all(holds(spec, c) for c in cap.claims), cap.text
        back += set(parse_prompt(cap.text)) == set(cap.claims)
    assert back >= 0.99 * n
