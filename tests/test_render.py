"""The renderer, trajectories, camera and sampler: determinism, palette, physics, coverage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mutoscope.world.motion import BOUNCE_PERIOD, object_states
from mutoscope.world.render import BACKGROUND_FN, pixel_grid, render
from mutoscope.world.sample import SCENE_KINDS, feasible, sample_spec
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import BACKGROUNDS, COLORS, SIZES, Camera, Direction, Motion, Shape


def one(shape=Shape.SQUARE, color="red", motion=None, camera=Camera.STATIC, bg="checkerboard", **kw):
    segs = (Segment(motion, 0.0, 2.0, **kw),) if motion else ()
    obj = ObjectSpec(shape=shape, color=color, size="large", x=0.5, y=0.5, segments=segs)
    return SceneSpec(objects=(obj,), background=bg, camera=camera)


def test_render_is_deterministic_and_shaped():
    spec = sample_spec(np.random.default_rng(3))
    a, b = render(spec), render(spec)
    assert a.shape == (16, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert render(spec, 40, 30, fps=4).shape == (8, 30, 40, 3)


@pytest.mark.parametrize("shape", list(Shape))
def test_object_centre_has_the_exact_palette_colour(shape):
    spec = one(shape=shape, color="blue")
    frame = render(spec, 64, 64)[0]
    # The circle, square, triangle and star cover their centres; a ring's band and a person's body do not.
    probe = {Shape.RING: (32, 32 + int(0.72 * SIZES["large"] * 64)), Shape.PERSON: (32 - 8, 32)}
    y, x = probe.get(shape, (32, 32))
    assert tuple(frame[y, x]) == COLORS["blue"]


@pytest.mark.parametrize("bg", BACKGROUNDS)
def test_backgrounds_stay_far_from_every_object_colour(bg):
    x, y = pixel_grid(256, 256)
    pixels = BACKGROUND_FN[bg](x * 3 - 1, y * 3 - 1).reshape(-1, 3)
    assert pixels.max() < 200  # never confusable with white (245, 245, 245)
    palette = np.array(list(COLORS.values()), np.float32)
    dist = np.linalg.norm(pixels[:, None] - palette[None], axis=-1)
    assert dist.min() > 60
    assert pixels.std(axis=0).mean() > 5  # textured, so the camera's motion is visible


@pytest.mark.parametrize(
    ("camera", "sign_x", "sign_y"),
    [(Camera.PAN_LEFT, 1, 0), (Camera.PAN_RIGHT, -1, 0), (Camera.TILT_UP, 0, 1), (Camera.TILT_DOWN, 0, -1)],
)
def test_pans_and_tilts_slide_the_background_the_right_way(camera, sign_x, sign_y):
    spec = SceneSpec(objects=one().objects, background="brick", camera=camera)
    clip = render(spec, 64, 64).astype(np.float32).mean(-1)
    (dx, dy), _ = cv2.phaseCorrelate(clip[0], clip[2])
    # Two frames at 8 fps: 0.25 s * 0.2 units/s * 64 px = 3.2 px.
    assert np.sign(round(dx)) == sign_x and np.sign(round(dy)) == sign_y
    assert abs(abs(dx) + abs(dy) - 3.2) < 1.0


def test_zoom_in_grows_the_object_and_zoom_out_shrinks_it():
    areas = {}
    for cam in (Camera.ZOOM_IN, Camera.ZOOM_OUT):
        clip = render(one(camera=cam, bg="night"), 64, 64)
        red = np.all(clip == COLORS["red"], axis=-1).sum(axis=(1, 2))
        areas[cam] = red[-1] / red[0]
    assert areas[Camera.ZOOM_IN] > 1.5 and areas[Camera.ZOOM_OUT] < 0.7


def test_bounce_is_elastic_and_never_below_the_floor():
    obj = ObjectSpec(Shape.CIRCLE, "red", "small", 0.5, 0.3, segments=(Segment(Motion.BOUNCE, 0, 6.0),))
    t = np.linspace(0, 6, 2401)
    st = object_states(obj, t)
    floor = 1 - obj.radius
    assert st.y.max() <= floor + 1e-9
    assert abs(st.y.min() - 0.3) < 1e-3  # every apex back at the start height
    assert np.sum(np.diff(np.sign(np.diff(st.y))) < 0) >= 2  # at least two floor contacts
    assert BOUNCE_PERIOD > 0


def test_fall_comes_to_rest_on_the_floor():
    obj = ObjectSpec(Shape.SQUARE, "red", "small", 0.5, 0.2, segments=(Segment(Motion.FALL, 0, 2.0),))
    st = object_states(obj, np.array([0.0, 0.2, 1.0, 1.9]))
    assert st.y[0] == pytest.approx(0.2) and st.y[1] > st.y[0]
    assert st.y[2] == pytest.approx(1 - obj.radius) == st.y[3]


def test_segments_chain_from_where_the_previous_ended():
    segs = (
        Segment(Motion.MOVE, 0, 1.0, direction=Direction.RIGHT),
        Segment(Motion.MOVE, 1.0, 2.0, direction=Direction.UP),
    )
    obj = ObjectSpec(Shape.SQUARE, "red", "small", 0.3, 0.7, segments=segs)
    st = object_states(obj, np.array([0.0, 1.0, 1.999]))
    assert st.x[1] == pytest.approx(0.52) and st.y[1] == pytest.approx(0.7)
    assert st.x[2] == pytest.approx(0.52) and st.y[2] < 0.5


def test_same_motion_at_64px_8fps_and_320x180_30fps():
    segs = (Segment(Motion.MOVE, 0.0, 2.0, direction=Direction.DOWN_RIGHT),)
    obj = ObjectSpec(Shape.CIRCLE, "yellow", "small", 0.3, 0.3, segments=segs)
    spec = SceneSpec(objects=(obj,), background="grass")
    low, high = render(spec, 64, 64, 8), render(spec, 320, 180, 30)

    def centre(frame, h, w):
        ys, xs = np.nonzero(np.all(np.abs(frame.astype(int) - COLORS["yellow"]) < 8, axis=-1))
        return (xs.mean() + 0.5 - w / 2) / h + 0.5, (ys.mean() + 0.5) / h

    for k8, k30 in ((0, 0), (4, 15), (8, 30), (12, 45)):  # t = 0, 0.5, 1, 1.5 s
        a, b = centre(low[k8], 64, 64), centre(high[k30], 180, 320)
        assert np.hypot(a[0] - b[0], a[1] - b[1]) < 1 / 64


def test_sampler_covers_the_vocabulary_and_keeps_scenes_feasible():
    rng = np.random.default_rng(0)
    specs = [sample_spec(rng) for _ in range(500)]
    objs = [o for s in specs for o in s.objects]
    motions = {seg.motion for o in objs for seg in o.segments} | {Motion.STILL}
    assert {o.shape for o in objs} == set(Shape)
    assert {o.color for o in objs} == set(COLORS)
    assert {o.size for o in objs} == set(SIZES)
    assert {s.background for s in specs} == set(BACKGROUNDS)
    assert {s.camera for s in specs} == set(Camera)
    assert motions == set(Motion)
    assert {s.extras["kind"] for s in specs} == set(SCENE_KINDS)
    assert all(feasible(s, margin=0.0) for s in specs[:100])
    assert all(SceneSpec.from_json(s.to_json()) == s for s in specs[:100])


def test_sampler_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown scene kind"):
        sample_spec(np.random.default_rng(0), kind="nope")


def test_overlapping_objects_are_infeasible():
    a = ObjectSpec(Shape.CIRCLE, "red", "large", 0.5, 0.5)
    b = ObjectSpec(Shape.SQUARE, "blue", "large", 0.55, 0.5)
    assert not feasible(SceneSpec(objects=(a, b), background="night"))
