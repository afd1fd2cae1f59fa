"""The renderer: spec -> (T, H, W, 3) uint8 clip at any size and frame rate, antialiased.

Every pixel is mapped through the inverse camera to world coordinates, where the background texture
and the objects' signed distance functions are evaluated analytically; coverage = clip(0.5 - sdf in
pixels, 0, 1) antialiases edges at every resolution.
"""

from __future__ import annotations

import math

import numpy as np

from mutoscope.world.motion import CameraPath, camera_params, object_states, scene_times
from mutoscope.world.spec import ObjectSpec, SceneSpec
from mutoscope.world.vocab import COLORS, Motion, Shape

# ---------------------------------------------------------------- signed distances (unit radius)


def _sd_circle(px, py):
    return np.hypot(px, py) - 1.0


def _sd_square(px, py, half=0.72):
    qx, qy = np.abs(px) - half, np.abs(py) - half
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sd_triangle(px, py, r=0.866):
    """Equilateral triangle pointing up on screen (Inigo Quilez's sdEquilateralTriangle)."""
    k = math.sqrt(3.0)
    x, y = np.abs(px) - r, -py + r / k
    flip = x + k * y > 0
    x, y = np.where(flip, (x - k * y) / 2, x), np.where(flip, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * r, 0)
    return -np.hypot(x, y) * np.sign(y)


def _sd_star(px, py, rf=0.45):
    """Five-pointed star, a point up (Inigo Quilez's sdStar5)."""
    k1x, k1y = 0.809016994375, -0.587785252292
    x, y = np.abs(px), -py
    d = 2 * np.maximum(k1x * x + k1y * y, 0)
    x, y = x - d * k1x, y - d * k1y
    d = 2 * np.maximum(-k1x * x + k1y * y, 0)
    x, y = x + d * k1x, y - d * k1y
    x, y = np.abs(x), y - 1.0
    bax, bay = rf * -k1y, rf * k1x - 1.0
    h = np.clip((x * bax + y * bay) / (bax * bax + bay * bay), 0, 1.0)
    return np.hypot(x - bax * h, y - bay * h) * np.sign(y * bax - x * bay)


def _sd_ring(px, py):
    return np.abs(np.hypot(px, py) - 0.72) - 0.28


def _sd_capsule(px, py, ax, ay, bx, by, r):
    pax, pay, bax, bay = px - ax, py - ay, bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-9), 0, 1)
    return np.hypot(pax - bax * h, pay - bay * h) - r


def _sd_person(px, py, pose):
    """Stick figure: head, body, two arms, two legs; `pose` holds per-frame limb angles (T, 1, 1)."""
    hip, shoulder, limb, th = (0.0, 0.25), (0.0, -0.3), 0.5, 0.16
    d = np.hypot(px, py + 0.72) - 0.26  # head
    d = np.minimum(d, _sd_capsule(px, py, 0, -0.48, *hip, th))  # body
    for ang, (ox, oy), ln in (
        (pose["leg_l"], hip, 0.7),
        (pose["leg_r"], hip, 0.7),
        (pose["arm_l"], shoulder, limb),
        (pose["arm_r"], shoulder, limb),
    ):
        ex, ey = ox + ln * np.sin(ang), oy + ln * np.cos(ang)
        d = np.minimum(d, _sd_capsule(px, py, ox, oy, ex, ey, th))
    return d


SDF = {
    Shape.CIRCLE: _sd_circle,
    Shape.SQUARE: _sd_square,
    Shape.TRIANGLE: _sd_triangle,
    Shape.STAR: _sd_star,
    Shape.RING: _sd_ring,
}


def person_pose(obj: ObjectSpec, times: np.ndarray, phase: np.ndarray) -> dict:
    """Limb angles (radians from straight down) per frame for the figure's current motion."""
    motion = np.array([_motion_at(obj, t) for t in times])
    swing = 0.5 * np.sin(2 * np.pi * phase)
    walking, waving, jumping = motion == Motion.WALK, motion == Motion.WAVE, motion == Motion.JUMP
    crouch = np.where(jumping, 0.35 * np.cos(2 * np.pi * phase) ** 2, 0.0)
    pose = {
        "leg_l": np.where(walking, swing, 0.28 + crouch),
        "leg_r": np.where(walking, -swing, -0.28 - crouch),
        "arm_l": np.where(walking, -swing, 0.5),
        "arm_r": np.where(walking, swing, -0.5),
    }
    # The wave: the right arm raised above the head, swinging 1.5 times a second.
    pose["arm_r"] = np.where(waving, -2.6 + 0.45 * np.sin(2 * np.pi * phase), pose["arm_r"])
    pose["arm_l"] = np.where(jumping, 2.4, pose["arm_l"])
    pose["arm_r"] = np.where(jumping, -2.4, pose["arm_r"])
    return {k: v[:, None, None] for k, v in pose.items()}


def _motion_at(obj: ObjectSpec, t: float) -> Motion:
    for seg in obj.segments:
        if seg.t0 <= t < seg.t1:
            return seg.motion
    return Motion.STILL


# ---------------------------------------------------------------- backgrounds (world coordinates)


def _soft(v, k=6.0):
    return np.clip(0.5 + k * v, 0.0, 1.0)


def _mix(a, b, w):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a + (b - a) * w[..., None]


def _bg_checkerboard(x, y):
    return _mix((92, 94, 98), (138, 140, 144), _soft(np.sin(np.pi * 8 * x) * np.sin(np.pi * 8 * y)))


def _bg_dunes(x, y):
    wave = np.sin(2 * np.pi * (3 * y + 0.4 * np.sin(2 * np.pi * 1.5 * x)))
    ripple = 0.3 * np.sin(2 * np.pi * (11 * x + 5 * y))
    return _mix((150, 130, 100), (184, 165, 128), np.clip(0.5 + 0.4 * wave + ripple * 0.3, 0, 1))


def _bg_night(x, y):
    cell = 1 / 9
    cx, cy = np.floor(x / cell), np.floor(y / cell)
    h = np.mod(np.sin(cx * 12.9898 + cy * 78.233) * 43758.5453, 1.0)  # per-cell hash
    sx, sy = (cx + 0.2 + 0.6 * h) * cell, (cy + 0.2 + 0.6 * np.mod(h * 7.13, 1)) * cell
    star = np.exp(-(((x - sx) ** 2 + (y - sy) ** 2) / (2 * 0.012**2))) * (h > 0.35)
    sky = _mix((22, 26, 46), (40, 44, 70), np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * y), 0, 1))
    return sky + (np.float32(125) - sky) * star[..., None]


def _bg_grass(x, y):
    stripes = _soft(np.sin(2 * np.pi * 6 * x), 3.0)
    blades = 0.25 * np.sin(2 * np.pi * (23 * x + 3 * np.sin(9 * y)))
    return _mix((104, 124, 96), (142, 160, 128), np.clip(stripes + blades, 0, 1))


def _bg_brick(x, y):
    rows = np.floor(y * 8)
    bx = x * 4 + 0.5 * np.mod(rows, 2)
    fy, fx = np.mod(y * 8, 1), np.mod(bx, 1)
    # Distance to the nearest mortar line, in row heights (a brick is two rows wide).
    mortar = np.minimum(np.minimum(fy, 1 - fy), 2 * np.minimum(fx, 1 - fx))
    brick = _soft(mortar - 0.08, 20.0)
    tone = 0.08 * np.sin(rows * 3.1 + np.floor(bx) * 1.7)
    base = _mix((128, 84, 74), (142, 100, 88), np.clip(0.5 + 4 * tone, 0, 1))
    return base + (np.float32(150) - base) * (1 - brick)[..., None] * 0.9


def _bg_clouds(x, y):
    v = np.sin(2 * np.pi * (1.3 * x + 0.2 * np.sin(2 * np.pi * y))) * np.sin(
        2 * np.pi * (1.1 * y + 0.3 * x)
    ) + 0.5 * np.sin(2 * np.pi * (3.1 * x - 2.3 * y))
    return _mix((128, 146, 170), (178, 182, 190), _soft(v - 0.2, 1.5))


BACKGROUND_FN = {
    "checkerboard": _bg_checkerboard,
    "dunes": _bg_dunes,
    "night": _bg_night,
    "grass": _bg_grass,
    "brick": _bg_brick,
    "clouds": _bg_clouds,
}


# ---------------------------------------------------------------- the renderer


def pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates of pixel centres at camera rest: (H, W) arrays."""
    xs = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / height + 0.5
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    return np.meshgrid(xs, ys)


def render(
    spec: SceneSpec, width: int = 64, height: int = 64, fps: float = 8.0, camera: CameraPath | None = None
) -> np.ndarray:
    """Draw the clip: (T, H, W, 3) uint8, frame k at time k / fps.

    `camera` (zoom, rotation, tx, ty) per frame replaces the spec's camera move: the path that camera
    control asks for (world/motion.py, camera_from_axes)."""
    return render_layers(spec, width, height, fps, camera)[0]


def render_layers(
    spec: SceneSpec, width: int = 64, height: int = 64, fps: float = 8.0, camera: CameraPath | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The clip and each object's coverage: (T, H, W, 3) uint8 and (N, T, H, W) float32 in [0, 1]
    (object n's antialiased alpha before later objects are drawn over it)."""
    times = scene_times(spec, fps)
    fx, fy = pixel_grid(width, height)
    path = camera_params(spec.camera, times) if camera is None else camera
    if any(len(a) != len(times) for a in path):
        raise ValueError(f"camera path covers {len(path[0])} frames, the clip has {len(times)}")
    zoom, rot, tx, ty = (np.asarray(a, np.float32)[:, None, None] for a in path)
    # Inverse camera: frame point -> world point.
    dx, dy = (fx[None] - 0.5 - tx) / zoom, (fy[None] - 0.5 - ty) / zoom
    c, s = np.cos(rot), np.sin(rot)
    wx, wy = c * dx + s * dy + 0.5, -s * dx + c * dy + 0.5  # (T, H, W)
    rng = np.random.default_rng(spec.seed)
    ox, oy = rng.uniform(0, 1, size=2).astype(np.float32)
    frame = BACKGROUND_FN[spec.background](wx + ox, wy + oy)  # (T, H, W, 3) float
    px_per_unit = height * zoom  # world units -> pixels, per frame
    alphas = np.zeros((len(spec.objects), *wx.shape), np.float32)
    for n, obj in enumerate(spec.objects):
        st = object_states(obj, times)
        radius = (obj.radius * st.scale).astype(np.float32)[:, None, None]
        ca = np.cos(st.angle).astype(np.float32)[:, None, None]
        sa = np.sin(st.angle).astype(np.float32)[:, None, None]
        rx = wx - st.x.astype(np.float32)[:, None, None]
        ry = wy - st.y.astype(np.float32)[:, None, None]
        # Into the object's unit frame: undo its clockwise rotation, divide by its radius.
        ux, uy = (ca * rx + sa * ry) / radius, (-sa * rx + ca * ry) / radius
        if obj.shape is Shape.PERSON:
            sd = _sd_person(ux, uy, person_pose(obj, times, st.phase))
        else:
            sd = SDF[obj.shape](ux, uy)
        alphas[n] = np.clip(0.5 - sd * radius * px_per_unit, 0.0, 1.0)
        frame = frame + (np.asarray(COLORS[obj.color], np.float32) - frame) * alphas[n][..., None]
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8), alphas
