"""The prompt grammar: prompts in the world's words read back into typed claims."""

from __future__ import annotations

import pytest

from mutoscope.errors import UserError
from mutoscope.world.claims import Claim, ClaimType, Event, ObjectRef, holds
from mutoscope.world.grammar import parse_prompt
from mutoscope.world.lexicon import (
    CAMERA_VERBS,
    COLOR_WORDS,
    DIRECTION_WORDS,
    MOTION_WORDS,
    PHRASES,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    Kind,
)
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import Camera, Direction, Motion, Shape, Spin

RED_STAR = ObjectRef(shape=Shape.STAR, color="red")


def test_every_name_has_synonyms_and_each_reads_back_to_it():
    tables = [
        (Kind.COLOR, {c: ws for c, ws in COLOR_WORDS.items()}),
        (Kind.SHAPE, {s: [one for one, _ in pairs] for s, pairs in SHAPE_WORDS.items()}),
        (Kind.SIZE, SIZE_WORDS),
        (Kind.MOTION, {m: [f[0] for f in forms] for m, forms in MOTION_WORDS.items()}),
        (Kind.RELATION, RELATION_WORDS),
    ]
    for kind, table in tables:
        for name, words in table.items():
            assert len(words) >= 3, (kind, name)
            for w in words:
                assert PHRASES[tuple(w.split())].kind is kind
                assert PHRASES[tuple(w.split())].value == name
    for d in (Direction.LEFT, Direction.RIGHT, Direction.UP, Direction.DOWN):
        assert len(DIRECTION_WORDS[d]) >= 3
    assert all(len(forms) >= 3 for forms in CAMERA_VERBS.values())


def test_readme_prompt():
    claims = parse_prompt("a crimson star spins clockwise on a brick wall")
    assert set(claims) == {
        Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.STAR), value="red"),
        Claim(ClaimType.SHAPE, subject=ObjectRef(color="red"), value="star"),
        Claim(ClaimType.MOTION, event=Event(RED_STAR, Motion.ROTATE, spin=Spin.CLOCKWISE)),
        Claim(ClaimType.BACKGROUND, value="brick"),
    }


def test_counts_plurals_and_groups():
    claims = parse_prompt("Two blue squares bounce; a single red ball stays still.")
    blue_squares = ObjectRef(shape=Shape.SQUARE, color="blue")
    red_ball = ObjectRef(shape=Shape.CIRCLE, color="red")
    assert Claim(ClaimType.COUNT, subject=blue_squares, count=2) in claims
    assert Claim(ClaimType.COUNT, subject=red_ball, count=1) in claims
    assert Claim(ClaimType.MOTION, event=Event(blue_squares, Motion.BOUNCE)) in claims
    assert Claim(ClaimType.MOTION, event=Event(red_ball, Motion.STILL)) in claims
    # "a"/"an" count nothing; "three shapes" counts everything
    assert not any(c.type is ClaimType.COUNT for c in parse_prompt("a red ball"))
    assert parse_prompt("3 shapes")[0] == Claim(ClaimType.COUNT, subject=ObjectRef(), count=3)


@pytest.mark.parametrize(
    "text",
    [
        "The red star slides right, then the blue ring falls.",
        "The red star slides right. After that, the blue ring falls.",
        "The red star slides right before the blue ring falls.",
        "After the red star slides right, the blue ring falls.",
        "The blue ring falls after the red star slides right.",
        "Before the blue ring falls, the red star slides right.",
    ],
)
def test_order_constructions_agree(text):
    first = Event(RED_STAR, Motion.MOVE, direction=Direction.RIGHT)
    then = Event(ObjectRef(shape=Shape.RING, color="blue"), Motion.FALL)
    orders = [c for c in parse_prompt(text) if c.type is ClaimType.ORDER]
    assert orders == [Claim(ClaimType.ORDER, event=first, then=then)]


def test_one_subject_several_verbs_and_pronouns():
    claims = parse_prompt("A green ring grows. Then it spins anticlockwise and bounces.")
    ring = ObjectRef(shape=Shape.RING, color="green")
    grow, spin = Event(ring, Motion.GROW), Event(ring, Motion.ROTATE, spin=Spin.COUNTERCLOCKWISE)
    assert Claim(ClaimType.ORDER, event=grow, then=spin) in claims
    assert Claim(ClaimType.MOTION, event=Event(ring, Motion.BOUNCE)) in claims
    assert sum(c.type is ClaimType.ORDER for c in claims) == 1  # "and" orders nothing


def test_relations_predicates_and_sizes():
    claims = parse_prompt("The ball is crimson and sits to the left of a large blue box.")
    ball = ObjectRef(shape=Shape.CIRCLE, color="red")
    box = ObjectRef(shape=Shape.SQUARE, color="blue", size="large")
    assert Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.CIRCLE), value="red") in claims
    assert Claim(ClaimType.RELATION, subject=ball, value="left_of", other=box) in claims
    assert Claim(ClaimType.SIZE, subject=replace_size(box), value="large") in claims
    assert Claim(ClaimType.MOTION, event=Event(ball, Motion.STILL)) in claims
    shape = parse_prompt("the red shape is a star")
    assert Claim(ClaimType.SHAPE, subject=ObjectRef(color="red"), value="star") in shape


def replace_size(ref: ObjectRef) -> ObjectRef:
    return ObjectRef(shape=ref.shape, color=ref.color)


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("The camera pans left.", Camera.PAN_LEFT),
        ("camera swinging to the right", Camera.PAN_RIGHT),
        ("a slow upward tilt", Camera.TILT_UP),
        ("The camera dollies in.", Camera.ZOOM_IN),
        ("the camera pulls back", Camera.ZOOM_OUT),
        ("The camera orbits.", Camera.ORBIT),
        ("A locked-off shot.", Camera.STATIC),
        ("The camera does not move.", Camera.STATIC),
        ("the camera is static", Camera.STATIC),
    ],
)
def test_camera_moves(text, move):
    assert parse_prompt(text) == [Claim(ClaimType.CAMERA, value=str(move))]


def test_the_subject_decides_between_camera_and_object():
    ball = ObjectRef(shape=Shape.CIRCLE, color="red")
    claims = parse_prompt("A red ball orbits while the camera orbits.")
    assert Claim(ClaimType.MOTION, event=Event(ball, Motion.ORBIT)) in claims
    assert Claim(ClaimType.CAMERA, value="orbit") in claims


def test_case_punctuation_and_hyphens_are_tolerated():
    a = parse_prompt("A SCARLET-colored Ball... ZIG-ZAGS leftward!!  It doesn't move.")
    b = parse_prompt("a scarlet ball zigzags left. it does not move")
    assert set(a) == set(b)
    ball = ObjectRef(shape=Shape.CIRCLE, color="red")
    assert Claim(ClaimType.MOTION, event=Event(ball, Motion.ZIGZAG, Direction.LEFT)) in a


@pytest.mark.parametrize("text", ["", "   ", "hello there, how are you?", "a dog and a cat"])
def test_prompts_naming_nothing_are_refused(text):
    with pytest.raises(UserError) as err:
        parse_prompt(text)
    assert err.value.code == "prompt.unparsed"
    assert "\n" not in err.value.message


def test_parsed_claims_are_checked_by_the_oracle():
    spin = Segment(Motion.ROTATE, 0.0, 2.0, spin=Spin.CLOCKWISE)
    star = ObjectSpec(Shape.STAR, "red", "medium", 0.3, 0.5, segments=(spin,))
    spec = SceneSpec((star,), "brick").validate()
    good = parse_prompt("a crimson star spins clockwise on a brick wall")
    bad = parse_prompt("a blue star spins counterclockwise on sandy dunes")
    assert all(holds(spec, c) for c in good)
    assert not any(holds(spec, c) for c in bad)
