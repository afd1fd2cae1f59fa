"""Object trajectories and camera transforms as closed forms of time, vectorised over frames.

Everything is analytic in seconds and world units, so a spec renders the same motion at any frame
rate. Segments chain: each starts from the state where the previous one ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mutoscope.world.spec import ObjectSpec, SceneSpec
from mutoscope.world.vocab import (
    CAMERA_ORBIT_RATE,
    CAMERA_PAN_SPEED,
    CAMERA_ZOOM_RATE,
    DIRECTION_VECTORS,
    GRAVITY,
    GROW_FACTOR,
    MOVE_SPEED,
    ORBIT_RADIUS,
    ORBIT_RATE,
    SPIN_RATE,
    Camera,
    Direction,
    Motion,
    Spin,
)

WALK_SPEED = 0.6 * MOVE_SPEED
JUMP_HEIGHT = 0.12  # world units at the apex of a jump
ZIGZAG_AMPLITUDE = 0.07
ZIGZAG_PERIOD = 0.5  # seconds for one up-and-down
BOUNCE_PERIOD = 2 * math.sqrt(2 * 0.35 / GRAVITY)  # a drop of 0.35 world units, elastic


# A camera path: (zoom, rotation, tx, ty) arrays, one value per frame (see camera_params).
CameraPath = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# Kling-style camera axes, each in [-10, 10]; 5 is the speed of the world's preset moves.
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
AXIS_LIMIT = 10.0
AXIS_PRESET = 5.0


@dataclass
class States:
    """Per-frame state of one object: arrays of shape (T,)."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray  # multiplies the bounding radius
    angle: np.ndarray  # radians, clockwise on screen
    phase: np.ndarray  # gait / wave / jump phase in cycles (the stick figure's pose)


def fold(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect v into [lo, hi] as an elastic bounce between two walls would."""
    span = hi - lo
    if span <= 0:
        return np.full_like(v, (lo + hi) / 2)
    u = np.mod(v - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def _segment(obj: ObjectSpec, motion: Motion, direction, spin, s, state, r):
    """State after `s` seconds of one motion, from the starting state (x, y, scale, angle)."""
    x0, y0, k0, a0 = state
    x, y = np.full_like(s, x0), np.full_like(s, y0)
    k, a, ph = np.full_like(s, k0), np.full_like(s, a0), np.zeros_like(s)
    rr = r * k0
    if motion is Motion.MOVE:
        dx, dy = DIRECTION_VECTORS[Direction(direction)]
        x = fold(x0 + dx * MOVE_SPEED * s, rr, 1 - rr)
        y = fold(y0 + dy * MOVE_SPEED * s, rr, 1 - rr)
    elif motion is Motion.BOUNCE:
        floor = 1 - rr
        drop = max(floor - y0, 0.05)
        period = 2 * math.sqrt(2 * drop / GRAVITY)
        u = np.mod(s + period / 2, period) - period / 2  # time since the last floor contact
        y = floor - (drop - 0.5 * GRAVITY * u**2)
    elif motion is Motion.FALL:
        floor = 1 - rr
        y = np.minimum(y0 + 0.5 * GRAVITY * s**2, floor)
    elif motion is Motion.ROTATE:
        sign = 1.0 if spin == Spin.CLOCKWISE else -1.0
        a = a0 + sign * SPIN_RATE * s
    elif motion in (Motion.GROW, Motion.SHRINK):
        f = GROW_FACTOR if motion is Motion.GROW else 1 / GROW_FACTOR
        k = k0 * f ** np.clip(s / 1.0, 0, 1)  # over one second, then holds
    elif motion is Motion.ORBIT:
        cx = x0 - ORBIT_RADIUS
        x = cx + ORBIT_RADIUS * np.cos(ORBIT_RATE * s)
        y = y0 - ORBIT_RADIUS * np.sin(ORBIT_RATE * s)
    elif motion is Motion.ZIGZAG:
        sign = -1.0 if direction == Direction.LEFT else 1.0
        x = fold(x0 + sign * MOVE_SPEED * s, rr, 1 - rr)
        tri = 1 - 4 * np.abs(np.mod(s / ZIGZAG_PERIOD + 0.25, 1) - 0.5)  # triangle wave, 0 at s=0
        y = y0 + ZIGZAG_AMPLITUDE * tri
    elif motion is Motion.WALK:
        sign = -1.0 if direction == Direction.LEFT else 1.0
        x = fold(x0 + sign * WALK_SPEED * s, rr, 1 - rr)
        ph = s * 1.5
    elif motion is Motion.WAVE:
        ph = s * 1.5
    elif motion is Motion.JUMP:
        period = 2 * math.sqrt(2 * JUMP_HEIGHT / GRAVITY) + 0.2  # air time plus a crouch
        u = np.mod(s, period) - 0.1
        air = np.clip(u, 0, period - 0.2)
        y = y0 - (GRAVITY / 2) * air * (period - 0.2 - air)
        ph = np.mod(s, period) / period
    return x, y, k, a, ph


def object_states(obj: ObjectSpec, times: np.ndarray) -> States:
    """Trajectory of one object at `times` (seconds)."""
    times = np.asarray(times, dtype=np.float64)
    out = [np.full_like(times, v) for v in (obj.x, obj.y, 1.0, obj.angle, 0.0)]
    state = (obj.x, obj.y, 1.0, obj.angle)
    for seg in obj.segments:
        inside = (times >= seg.t0) & (times < seg.t1)
        after = times >= seg.t1
        res = _segment(obj, seg.motion, seg.direction, seg.spin, times - seg.t0, state, obj.radius)
        for arr, val in zip(out, res, strict=True):
            arr[inside] = val[inside]
        end = _segment(
            obj, seg.motion, seg.direction, seg.spin, np.array([seg.t1 - seg.t0]), state, obj.radius
        )
        state = tuple(float(v[0]) for v in end[:4])
        for arr, val in zip(out[:4], state, strict=True):
            arr[after] = val
        out[4][after] = 0.0
    return States(*out)


def camera_params(camera: Camera, times: np.ndarray) -> tuple[np.ndarray, ...]:
    """(zoom, rotation, tx, ty) per time: frame = zoom * R(rot) (world - c) + c + (tx, ty), c = centre.

    Identity at t=0. PAN_LEFT slides the scene right; TILT_UP slides it down; ZOOM_IN grows it.
    """
    t = np.asarray(times, dtype=np.float64)
    zero, one = np.zeros_like(t), np.ones_like(t)
    pan = CAMERA_PAN_SPEED * t
    table = {
        Camera.STATIC: (one, zero, zero, zero),
        Camera.PAN_LEFT: (one, zero, pan, zero),
        Camera.PAN_RIGHT: (one, zero, -pan, zero),
        Camera.TILT_UP: (one, zero, zero, pan),
        Camera.TILT_DOWN: (one, zero, zero, -pan),
        Camera.ZOOM_IN: (np.exp(CAMERA_ZOOM_RATE * t), zero, zero, zero),
        Camera.ZOOM_OUT: (np.exp(-CAMERA_ZOOM_RATE * t), zero, zero, zero),
        Camera.ORBIT: (one, CAMERA_ORBIT_RATE * t, zero, zero),
    }
    return table[Camera(camera)]


def camera_from_axes(axes: dict[str, float], times: np.ndarray) -> CameraPath:
    """A steady camera move from Kling-style axes (each in [-10, 10], missing = 0), as camera_params.

    The world is flat and seen head-on, so a truck and a pan move the frame alike: `horizontal` and
    `pan` add (positive: the camera moves right, the scene slides left), as do `vertical` and `tilt`
    (positive: up, the scene slides down). `zoom` > 0 zooms in; `roll` > 0 turns the scene as ORBIT.
    """
    unknown = set(axes) - set(CAMERA_AXES)
    if unknown:
        raise ValueError(f"unknown camera axes {sorted(unknown)}; known: {', '.join(CAMERA_AXES)}")
    for name, value in axes.items():
        if not -AXIS_LIMIT <= float(value) <= AXIS_LIMIT:
            raise ValueError(f"camera axis {name}={value} outside [-{AXIS_LIMIT:g}, {AXIS_LIMIT:g}]")
    a = {k: float(axes.get(k, 0.0)) / AXIS_PRESET for k in CAMERA_AXES}
    t = np.asarray(times, dtype=np.float64)
    return (
        np.exp(a["zoom"] * CAMERA_ZOOM_RATE * t),
        a["roll"] * CAMERA_ORBIT_RATE * t,
        -(a["horizontal"] + a["pan"]) * CAMERA_PAN_SPEED * t,
        (a["vertical"] + a["tilt"]) * CAMERA_PAN_SPEED * t,
    )


def path_to_frame(path: CameraPath, x, y):
    """Map world points (per frame) to frame coordinates under a camera path (unit square at rest)."""
    z, rot, tx, ty = path
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = x - 0.5, y - 0.5
    return z * (c * dx - s * dy) + 0.5 + tx, z * (s * dx + c * dy) + 0.5 + ty


def to_frame(camera: Camera, times, x, y):
    """Map world points (per time) to frame-world coordinates (unit square at rest)."""
    return path_to_frame(camera_params(camera, times), x, y)


def scene_times(spec: SceneSpec, fps: float) -> np.ndarray:
    return np.arange(round(spec.seconds * fps)) / fps
