"""Measuring the controls with the judge (issue 4's bars): camera, keyframes, motion brush, extension.

Every case is drawn from the held-out world (a seed no training run uses) and carries what the
control asks for, so that the same measurement runs on ground-truth renders (the check that the
measurement itself is sound) and on generated clips:

- camera: a scene with a still camera and no camera words in its caption; the control asks for one
  preset move; the judge must recover that move (`CameraTrack.classify`).
- keyframes: the first and last frames of a render are given; PSNR of the generated ones to them.
- motion brush: a scene of still objects; the first frame is given (image-to-video), one object is
  brushed to a target point, another lies under the static mask; the judge tracks both: the brushed
  one's end point must be within 10% of the frame of the target, the static one must move < 2%.
- extension: the objects the judge reads just before and just after each segment boundary must be
  the same (color, shape, size).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mutoscope.world.caption import caption
from mutoscope.world.claims import ClaimType
from mutoscope.world.judge.reading import read_scene
from mutoscope.world.render import render_layers
from mutoscope.world.sample import sample_spec
from mutoscope.world.spec import SceneSpec, Segment
from mutoscope.world.vocab import Camera, Motion

SEED = 20261203  # the controls suite's world: not a training seed (those are small integers)
MOVES = (Camera.PAN_LEFT, Camera.PAN_RIGHT, Camera.TILT_UP, Camera.TILT_DOWN, Camera.ZOOM_IN, Camera.ZOOM_OUT)
BRUSH_TOLERANCE = 0.10  # of the frame size
STATIC_TOLERANCE = 0.02


@dataclass(frozen=True)
class Case:
    index: int
    prompt: str
    spec: SceneSpec
    seed: int


def _still_scene(
    rng: np.random.Generator, kinds=("single", "multi", "count", "relation")
) -> tuple[SceneSpec, str]:
    """A scene with a still camera whose caption says nothing of the camera."""
    while True:
        spec = sample_spec(rng, kind=str(rng.choice(kinds)))
        if spec.camera is not Camera.STATIC:
            continue
        cap = caption(spec, rng)
        if not any(c.type is ClaimType.CAMERA for c in cap.claims):
            return spec, cap.text


def camera_cases(n: int, seed: int = SEED) -> list[tuple[Case, Camera]]:
    """n cases cycling through the six preset moves (pan, tilt, zoom, each both ways)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for i in range(n):
        spec, text = _still_scene(rng)
        out.append((Case(i, text, spec, seed + i), MOVES[i % len(MOVES)]))
    return out


def camera_recovered(frames: np.ndarray, fps: float, move: Camera) -> tuple[bool, float, float]:
    """(the judge reads `move` from the clip, the judge's consistency score, how much of the move it
    measures: the requested axis' rate as a fraction of the world's, signed so that 1.0 is the move
    done fully and negative the opposite way; a progress measure below the judge's 0.4 cut-off)."""
    from mutoscope.world.judge import judge

    report = judge(frames, [], fps=fps)
    seen, frac = report.reading.camera.classify()
    family = str(move).split("_")[0]
    sign = -1.0 if move in (Camera.PAN_RIGHT, Camera.TILT_DOWN, Camera.ZOOM_OUT) else 1.0
    return seen is move, report.consistency.score, sign * frac[family]


def keyframe_cases(n: int, seed: int = SEED) -> list[Case]:
    rng = np.random.default_rng([seed, 2])
    out = []
    for i in range(n):
        spec = sample_spec(rng, kind=str(rng.choice(("single", "multi", "figure", "camera"))))
        out.append(Case(i, caption(spec, rng).text, spec, seed + i))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@dataclass(frozen=True)
class BrushCase:
    case: Case
    mask: np.ndarray  # (H, W) the brushed object in frame 0
    path: np.ndarray  # (2, 3): [[0, x0, y0], [t_end, x1, y1]] in frame units
    static: np.ndarray | None  # (H, W) the static mask, over another object
    static_at: tuple[float, float] | None  # that object's centre, frame units


def brush_cases(
    n: int, size: int = 64, fps: float = 8.0, seconds: float = 2.0, seed: int = SEED
) -> list[BrushCase]:
    """Scenes of one or two still objects; the first is brushed to a point 0.2-0.35 of the frame away."""
    rng = np.random.default_rng([seed, 3])
    out = []
    while len(out) < n:
        spec = sample_spec(rng, kind=str(rng.choice(("single", "multi"))))
        if spec.camera is not Camera.STATIC or len(spec.objects) > 2:
            continue
        still = tuple(replace(o, segments=(Segment(Motion.STILL, 0.0, seconds),)) for o in spec.objects)
        spec = replace(spec, objects=still)
        _, alphas = render_layers(spec, size, size, fps)
        masks = (alphas[:, 0] > 0.5).astype(np.float32)
        if (masks.sum(axis=(1, 2)) < 4).any():
            continue
        start = np.array([spec.objects[0].x, spec.objects[0].y])
        for _ in range(20):
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.35)
            target = start + dist * np.array([np.cos(angle), np.sin(angle)])
            if np.all((target >= 0.15) & (target <= 0.85)):
                break
        else:
            continue
        end_t = (round(seconds * fps) - 1) / fps
        path = np.array([[0.0, *start], [end_t, *target]])
        static = static_at = None
        if len(spec.objects) == 2:
            other = spec.objects[1]
            if np.linalg.norm(np.array([other.x, other.y]) - target) < 0.2:
                continue  # the brushed object would end on the static one
            static = np.clip(_dilate(masks[1], 3), 0, 1)
            static_at = (other.x, other.y)
        text = caption(spec, rng).text
        out.append(BrushCase(Case(len(out), text, spec, seed + len(out)), masks[0], path, static, static_at))
    return out


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out = np.maximum(out, np.roll(np.roll(mask, dy, 0), dx, 1))
    return out


def _track_from(reading, xy: np.ndarray):
    """The judge's track that starts nearest `xy` (frame units), and its positions (N, 2) in frame units."""
    best, dist = None, np.inf
    for tr in reading.tracks:
        d0 = tr.dets[0]
        p = np.array([d0.x + 0.5, d0.y + 0.5]) / np.array([reading.width, reading.height])
        if d0.frame <= 1 and np.linalg.norm(p - xy) < dist:
            best, dist = tr, np.linalg.norm(p - xy)
    if best is None or dist > 0.1:
        return None
    return np.array([[d.x + 0.5, d.y + 0.5] for d in best.dets]) / np.array([reading.width, reading.height])


def brush_errors(frames: np.ndarray, fps: float, bc: BrushCase) -> tuple[float, float | None]:
    """(distance of the brushed object's last position from the target, the static object's largest
    displacement), both as fractions of the frame; inf when the judge cannot find the object."""
    reading = read_scene(frames, fps)
    moved = _track_from(reading, bc.path[0, 1:])
    end_error = float("inf") if moved is None else float(np.linalg.norm(moved[-1] - bc.path[-1, 1:]))
    static_motion = None
    if bc.static_at is not None:
        track = _track_from(reading, np.array(bc.static_at))
        static_motion = (
            float("inf") if track is None else float(np.linalg.norm(track - track[0], axis=1).max())
        )
    return end_error, static_motion


def boundary_identity(frames: np.ndarray, fps: float, boundaries: list[int], window: int = 8) -> list[bool]:
    """Per segment boundary: the judge reads the same objects (color, shape, size) in the `window`
    frames before it as in the `window` frames after it, and at least one: a video that has lost its
    objects keeps nothing (until 2026-12-08 two empty readings counted as kept)."""

    def objects(clip: np.ndarray) -> list[tuple[str, str, str]]:
        reading = read_scene(clip, fps)
        return sorted((o.color, str(o.shape), o.size) for o in reading.objects)

    kept = []
    for b in boundaries:
        if b - window < 0 or b + window > len(frames):
            continue
        before = objects(frames[b - window : b])
        kept.append(bool(before) and before == objects(frames[b : b + window]))
    return kept


def brush_truth(bc: BrushCase, size: int = 64, fps: float = 8.0) -> np.ndarray:
    """What a perfect brush gives: the scene rendered frame by frame with the brushed object carried
    along the path (the ceiling of the brush measurement)."""
    frames = round(bc.case.spec.seconds * fps)
    out = []
    for k in range(frames):
        x = np.interp(k / fps, bc.path[:, 0], bc.path[:, 1])
        y = np.interp(k / fps, bc.path[:, 0], bc.path[:, 2])
        objs = (replace(bc.case.spec.objects[0], x=float(x), y=float(y)), *bc.case.spec.objects[1:])
        out.append(render_layers(replace(bc.case.spec, objects=objs), size, size, fps)[0][0])
    return np.stack(out)
