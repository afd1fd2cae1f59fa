"""The per-video consistency score: do the objects keep their identity, color and size, does the
picture hold still where it should (no flicker), and does the motion look like the world's physics?

Each part is 0..1 and the score is their weighted mean times 100. Scales are set from the world's
own clips through the MP4 encoder (which score about 90-100) and from noise (which scores near 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mutoscope.world.judge.reading import SceneReading

WEIGHTS = {"identity": 0.3, "color": 0.15, "size": 0.15, "flicker": 0.2, "motion": 0.2}
COLOR_DRIFT_DE = 6.0  # mean delta-E of an object's core color from its own average, per frame
SIZE_JITTER = 0.04  # median |second difference| of log radius per frame
FLICKER_LEVEL = 0.02  # mean absolute change of the ground between frames after the camera's move
MOTION_RMS = 0.012  # world units of position residual against the world's motions


@dataclass(frozen=True)
class Consistency:
    score: float  # 0..100
    parts: dict[str, float]  # each 0..1
    notes: str

    def to_dict(self) -> dict:
        return {"score": round(self.score, 1), "parts": {k: round(v, 3) for
    k, v in self.parts.items()}, "notes": self.notes}  # fmt: skip


def _identity(reading: SceneReading) -> tuple[float, str]:
    """Objects seen in every frame, and no blobs that come and go."""
    T = reading.n_frames
    if not reading.objects:
        return 0.0, "no object persists"
    cover = np.mean([len(o.t) / T for o in reading.objects])
    in_objects = sum(len(o.track.dets) for o in reading.objects)
    total = sum(len(tr.dets) for tr in reading.tracks)
    stray = 1.0 - in_objects / max(total, 1)
    return float(cover * (1.0 - stray)), f"coverage {cover:.2f}, stray blobs {stray:.2f}"


def _color(reading: SceneReading) -> float:
    drifts = []
    for o in reading.objects:
        lab = np.array([d.lab for d in o.track.dets])
        drifts.append(float(np.linalg.norm(lab - lab.mean(0), axis=1).mean()))
    return math.exp(-np.mean(drifts) / COLOR_DRIFT_DE) if drifts else 0.0


def _size(reading: SceneReading) -> float:
    jitters = [float(np.median(np.abs(np.diff(o.log_r, 2)))) for o in reading.objects if len(o.t) >= 4]
    return math.exp(-np.mean(jitters) / SIZE_JITTER) if jitters else 0.0


def _flicker(reading: SceneReading) -> float:
    """Mean change of the ground between frames once the camera's move is undone."""
    gray, cam = reading.gray.astype(np.float32) / 255.0, reading.camera
    H, W = gray.shape[1:]
    changes = []
    for t in range(1, len(gray)):
        step = cam.mats[t] @ np.linalg.inv(cam.mats[t - 1])
        warped = cv2.warpAffine(gray[t - 1], step[:2], (W, H), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        keep = ~(reading.perception[t].object_mask | reading.perception[t - 1].object_mask)
        keep[:3], keep[-3:], keep[:, :3], keep[:, -3:] = False, False, False, False
        if keep.any():
            changes.append(float(np.abs(warped - gray[t])[keep].mean()))
    if not changes:
        return 1.0
    return math.exp(-max(np.mean(changes) - 0.005, 0.0) / FLICKER_LEVEL)


def _motion(residuals: list[float]) -> float:
    return math.exp(-np.mean(residuals) / MOTION_RMS) if residuals else 0.0


def consistency(reading: SceneReading, residuals: list[float]) -> Consistency:
    identity, note = _identity(reading)
    parts = {
        "identity": identity,
        "color": _color(reading),
        "size": _size(reading),
        "flicker": _flicker(reading),
        "motion": _motion(residuals),
    }
    score = 100.0 * sum(WEIGHTS[k] * v for k, v in parts.items())
    return Consistency(score, parts, note)
