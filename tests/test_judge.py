"""The judge reads clips back from pixels: each claim type both ways, noise, camera, the CLI."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mutoscope.post.mp4 import read_frames, write_mp4
from mutoscope.world.claims import Claim, ClaimType, Event, ObjectRef
from mutoscope.world.judge import judge
from mutoscope.world.judge.camera import estimate_camera
from mutoscope.world.render import render
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import (
    CAMERA_ORBIT_RATE,
    CAMERA_PAN_SPEED,
    CAMERA_ZOOM_RATE,
    COLORS,
    GRAVITY,
    MOVE_SPEED,
    SIZES,
    SPIN_RATE,
    Camera,
    Direction,
    Motion,
    Relation,
    Shape,
    Spin,
)

H = W = 64
FPS = 8.0
T = 16


def _texture(n: int, seed: int) -> np.ndarray:
    """A desaturated, textured ground (gray-beige blotches), far from every palette color."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), n / 60)
    t = (t - t.min()) / (t.max() - t.min())
    return np.clip(np.array([110, 105, 95]) + (t[..., None] - 0.5) * 70, 0, 255).astype(np.float32)


def _outline(shape: Shape, r: float, angle: float) -> np.ndarray:
    if shape is Shape.SQUARE:
        k, radii = 4, [r]
    elif shape is Shape.TRIANGLE:
        k, radii = 3, [r]
    else:  # star: tips on the circle, inner corners at 0.45 r
        k, radii = 10, [r, 0.45 * r]
    a0 = angle - math.pi / 2 + (math.pi / 4 if shape is Shape.SQUARE else 0.0)
    return np.array(
        [
            (radii[i % len(radii)] * math.cos(a0 + 2 * math.pi * i / k),
             radii[i % len(radii)] * math.sin(a0 + 2 * math.pi * i / k))
            for i in range(k)
        ]
    )  # fmt: skip


def _draw(img, shape, color, x, y, r, angle, S):
    c = tuple(int(v) for v in COLORS[color])
    if shape is Shape.CIRCLE:
        cv2.circle(img, (round(x * S), round(y * S)), round(r * S), c, -1, cv2.LINE_AA)
    elif shape is Shape.RING:
        th = 0.38 * r
        cv2.circle(img, (round(x * S), round(y * S)), round((r - th / 2) * S), c, round(th * S),
                   cv2.LINE_AA)  # fmt: skip
    elif shape is Shape.PERSON:
        lw = max(1, round(0.18 * r * S))
        p = lambda dx, dy: (round((x + dx * r) * S), round((y + dy * r) * S))  # noqa: E731
        cv2.circle(img, p(0, -0.7), round(0.27 * r * S), c, -1, cv2.LINE_AA)
        for a, b in [((0, -0.45), (0, 0.15)), ((0, 0.15), (0.4, 1.0)), ((0, 0.15), (-0.4, 1.0)),
                     ((0, -0.35), (0.5, -0.05)), ((0, -0.35), (-0.5, -0.05))]:  # fmt: skip
            cv2.line(img, p(*a), p(*b), c, lw, cv2.LINE_AA)
    else:
        pts = (_outline(shape, r, angle) + np.array([x, y])) * S
        cv2.fillPoly(img, [pts.round().astype(np.int32)], c, cv2.LINE_AA)


def clip(objects, camera=Camera.STATIC, seed=0) -> np.ndarray:
    """Draw a clip: objects are dicts with shape, color, size, x, y (world, at t=0) and an optional
    `at(t) -> (dx, dy, dangle, scale)` motion; 4x supersampled, then area-downsampled."""
    S = 4
    n = int(H * 2.5) * S
    tex = _texture(n, seed)
    frames = []
    for i in range(T):
        t = i / FPS
        s, rot, dx, dy = 1.0, 0.0, 0.0, 0.0
        if camera is Camera.PAN_LEFT:
            dx = CAMERA_PAN_SPEED * t
        elif camera is Camera.PAN_RIGHT:
            dx = -CAMERA_PAN_SPEED * t
        elif camera is Camera.TILT_UP:
            dy = CAMERA_PAN_SPEED * t
        elif camera is Camera.TILT_DOWN:
            dy = -CAMERA_PAN_SPEED * t
        elif camera is Camera.ZOOM_IN:
            s = math.exp(CAMERA_ZOOM_RATE * t)
        elif camera is Camera.ZOOM_OUT:
            s = math.exp(-CAMERA_ZOOM_RATE * t)
        elif camera is Camera.ORBIT:
            rot = CAMERA_ORBIT_RATE * t
        m = cv2.getRotationMatrix2D((n / 2, n / 2), -math.degrees(rot), s)
        m[0, 2] += dx * H * S - (n - W * S) / 2
        m[1, 2] += dy * H * S - (n - H * S) / 2
        img = cv2.warpAffine(tex, m, (W * S, H * S), flags=cv2.INTER_LINEAR).astype(np.uint8)
        for o in objects:
            mx, my, da, sc = o.get("at", lambda t: (0.0, 0.0, 0.0, 1.0))(t)
            wx, wy = o["x"] + mx - 0.5, o["y"] + my - 0.5
            px = 0.5 + dx + s * (wx * math.cos(rot) - wy * math.sin(rot))
            py = 0.5 + dy + s * (wx * math.sin(rot) + wy * math.cos(rot))
            r = SIZES[o["size"]] * sc * s * H
            _draw(img, Shape(o["shape"]), o["color"], px * H, py * H, r, o.get("angle", 0.3) + da
                  + rot, S)  # fmt: skip
        frames.append(cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA))
    return np.stack(frames)


def obj(shape, color, size="medium", x=0.5, y=0.5, at=None, angle=0.3) -> dict:
    d = {"shape": Shape(shape), "color": color, "size": size, "x": x, "y": y, "angle": angle}
    if at:
        d["at"] = at
    return d


def moving(direction: Direction):
    from mutoscope.world.vocab import DIRECTION_VECTORS

    ux, uy = DIRECTION_VECTORS[direction]
    return lambda t: (ux * MOVE_SPEED * t, uy * MOVE_SPEED * t, 0.0, 1.0)


def falling(t):
    return (0.0, min(0.5 * GRAVITY * t * t, 0.45), 0.0, 1.0)


def spinning(sign):
    return lambda t: (0.0, 0.0, sign * SPIN_RATE * t, 1.0)


def growing(t):
    return (0.0, 0.0, 0.0, 1.7 ** (t / 2.0))


def verdict(frames, claim: Claim) -> bool:
    [v] = judge(frames, [claim], fps=FPS).verdicts
    return v.passed


RED_CIRCLE = ObjectRef(shape=Shape.CIRCLE, color="red")


@pytest.fixture(scope="module")
def two_objects():
    """A medium red circle left of a small blue star, both still."""
    return clip([obj("circle", "red", "medium", 0.3, 0.5), obj("star", "blue", "small", 0.72, 0.5)])


def test_color_shape_size_count_both_ways(two_objects):
    f = two_objects
    assert verdict(f, Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.CIRCLE), value="red"))
    assert not verdict(f, Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.CIRCLE), value="green"))
    assert verdict(f, Claim(ClaimType.SHAPE, subject=ObjectRef(color="blue"), value="star"))
    assert not verdict(f, Claim(ClaimType.SHAPE, subject=ObjectRef(color="blue"), value="square"))
    assert verdict(f, Claim(ClaimType.SIZE, subject=RED_CIRCLE, value="medium"))
    assert not verdict(f, Claim(ClaimType.SIZE, subject=RED_CIRCLE, value="large"))
    assert verdict(f, Claim(ClaimType.COUNT, subject=ObjectRef(), count=2))
    assert not verdict(f, Claim(ClaimType.COUNT, subject=ObjectRef(color="blue"), count=2))


def test_relation_both_ways(two_objects):
    star = ObjectRef(shape=Shape.STAR)
    assert verdict(
        two_objects,
        Claim(ClaimType.RELATION, subject=RED_CIRCLE, value=Relation.LEFT_OF, other=star),
    )
    assert not verdict(
        two_objects,
        Claim(ClaimType.RELATION, subject=RED_CIRCLE, value=Relation.RIGHT_OF, other=star),
    )
    assert not verdict(
        two_objects, Claim(ClaimType.RELATION, subject=RED_CIRCLE, value=Relation.ABOVE, other=star)
    )


@pytest.mark.parametrize(
    ("at", "event", "wrong"),
    [
        (moving(Direction.RIGHT), Event(RED_CIRCLE, Motion.MOVE, Direction.RIGHT),
         Event(RED_CIRCLE, Motion.MOVE, Direction.LEFT)),
        (moving(Direction.UP_LEFT), Event(RED_CIRCLE, Motion.MOVE, Direction.UP_LEFT),
         Event(RED_CIRCLE, Motion.STILL)),
        (falling, Event(RED_CIRCLE, Motion.FALL), Event(RED_CIRCLE, Motion.MOVE)),
        (growing, Event(RED_CIRCLE, Motion.GROW), Event(RED_CIRCLE, Motion.SHRINK)),
        (None, Event(RED_CIRCLE, Motion.STILL), Event(RED_CIRCLE, Motion.MOVE, Direction.RIGHT)),
    ],
)  # fmt: skip
def test_motion_both_ways(at, event, wrong):
    y = 0.3 if at is falling else 0.5
    f = clip([obj("circle", "red", "medium", 0.35, y, at)])
    assert verdict(f, Claim(ClaimType.MOTION, event=event))
    assert not verdict(f, Claim(ClaimType.MOTION, event=wrong))


def test_rotation_direction():
    sq = ObjectRef(shape=Shape.SQUARE)
    f = clip([obj("square", "green", "large", 0.5, 0.5, spinning(+1))])
    assert verdict(f, Claim(ClaimType.MOTION, event=Event(sq, Motion.ROTATE, spin=Spin.CLOCKWISE)))
    assert not verdict(f, Claim(ClaimType.MOTION, event=Event(sq, Motion.ROTATE, spin=Spin.COUNTERCLOCKWISE)))


def test_still_object_under_panning_camera_is_still():
    f = clip([obj("triangle", "yellow", "large", 0.45, 0.5)], camera=Camera.PAN_LEFT)
    tri = ObjectRef(shape=Shape.TRIANGLE)
    assert verdict(f, Claim(ClaimType.CAMERA, value=Camera.PAN_LEFT))
    assert verdict(f, Claim(ClaimType.MOTION, event=Event(tri, Motion.STILL)))
    assert not verdict(f, Claim(ClaimType.MOTION, event=Event(tri, Motion.MOVE)))


def test_order_both_ways():
    def move_then_still(t):
        return (MOVE_SPEED * min(t, 1.0), 0.0, 0.0, 1.0)

    f = clip([obj("circle", "red", "medium", 0.3, 0.5, move_then_still)])
    mv = Event(RED_CIRCLE, Motion.MOVE, Direction.RIGHT)
    still = Event(RED_CIRCLE, Motion.STILL)
    assert verdict(f, Claim(ClaimType.ORDER, event=mv, then=still))
    assert not verdict(f, Claim(ClaimType.ORDER, event=still, then=mv))


@pytest.mark.parametrize("move", list(Camera))
def test_camera_estimation_on_shifted_textures(move):
    frames = clip([], camera=move, seed=3)
    gray = cv2.cvtColor(frames.reshape(-1, W, 3), cv2.COLOR_RGB2GRAY).reshape(T, H, W)
    found, frac = estimate_camera(gray, None, FPS).classify()
    assert found == move, frac


def test_noise_passes_no_object_claim():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    claims = [
        Claim(ClaimType.COLOR, subject=ObjectRef(shape=Shape.CIRCLE), value=c) for c in COLORS
    ] + [
        Claim(ClaimType.SHAPE, subject=ObjectRef(color="red"), value=s) for s in Shape
    ] + [
        Claim(ClaimType.COUNT, subject=ObjectRef(), count=1),
        Claim(ClaimType.MOTION, event=Event(ObjectRef(), Motion.STILL)),
    ]  # fmt: skip
    report = judge(noise, claims, fps=FPS)
    assert not any(v.passed for v in report.verdicts)
    assert report.consistency.score < 20


def through_mp4(frames: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        return read_frames(write_mp4(Path(tmp) / "clip.mp4", frames, FPS))


def _world_clip(shape, motion, *, direction=None, y=0.5, background="grass", camera=Camera.STATIC):
    """A medium object of the world with one motion for the whole clip, rendered at 64x64 through
    the MP4 encoder (as the validation reads it)."""
    seg = (Segment(motion, 0.0, 2.0, direction=direction),)
    obj_ = ObjectSpec(shape=shape, color="orange", size="medium", x=0.5, y=y, segments=seg)
    spec = SceneSpec(objects=(obj_,), background=background, camera=camera).validate()
    return through_mp4(render(spec, W, H, FPS))


@pytest.mark.parametrize(
    ("motion", "direction", "y", "wrong"),
    [
        (Motion.WALK, Direction.RIGHT, 0.7, Motion.JUMP),
        (Motion.WAVE, None, 0.6, Motion.WALK),
        (Motion.JUMP, None, 0.7, Motion.WAVE),
    ],
)
def test_stick_figure_motions_both_ways(motion, direction, y, wrong):
    f = _world_clip(Shape.PERSON, motion, direction=direction, y=y)
    person = ObjectRef(shape=Shape.PERSON)
    assert verdict(f, Claim(ClaimType.SHAPE, subject=ObjectRef(color="orange"), value="person"))
    assert verdict(f, Claim(ClaimType.MOTION, event=Event(person, motion, direction)))
    assert not verdict(f, Claim(ClaimType.MOTION, event=Event(person, wrong)))
    assert not verdict(f, Claim(ClaimType.MOTION, event=Event(person, Motion.STILL)))


def test_background_and_camera_claims_both_ways():
    f = _world_clip(Shape.CIRCLE, Motion.STILL, background="brick", camera=Camera.ZOOM_IN)
    assert verdict(f, Claim(ClaimType.BACKGROUND, value="brick"))
    assert not verdict(f, Claim(ClaimType.BACKGROUND, value="dunes"))
    assert verdict(f, Claim(ClaimType.CAMERA, value=Camera.ZOOM_IN))
    assert not verdict(f, Claim(ClaimType.CAMERA, value=Camera.ZOOM_OUT))
    assert not verdict(f, Claim(ClaimType.CAMERA, value=Camera.STATIC))
