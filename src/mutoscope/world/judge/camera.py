"""Estimate the camera's move from the background: a similarity transform per frame, then a verdict.

Between consecutive frames, a similarity transform about the frame centre (scale, roll, shift) is
fitted to the ground directly on the images (`align`: objects and their rims masked out), and the
per-pair transforms compose into `A_t`, which maps frame-0 pixels to frame-t pixels: the content's
motion. At camera rest (t = 0) the frame is the world, so `A_t^{-1}` takes what is seen at frame t
back to world positions. The move is named from the mean rates over the clip, as fractions of the
world's own rates (vocab.CAMERA_*).

Conventions (vocab.Camera): PAN_LEFT slides the content right, TILT_UP slides it down, ZOOM_IN
makes it grow, ORBIT rotates it about the frame centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mutoscope.world.vocab import (
    CAMERA_ORBIT_RATE,
    CAMERA_PAN_SPEED,
    CAMERA_ZOOM_RATE,
    Camera,
)

# A move is called when its rate reaches this fraction of the rate the world uses; a static camera
# measures about 0 and a moving one about 1, so the fraction sits between with room either side.
RATE_FRACTION = 0.4
# Gauss-Newton iterations per pyramid level, finest first: two levels follow the fastest camera
# (1.6 px a frame at 64x64, 8 fps; larger frames are analysed at most 256 px tall).
PYRAMID_ITERS = (6, 10)
BORDER = 3  # px at analysis resolution: flow at the frame edge sees content entering or leaving


@dataclass(frozen=True)
class CameraTrack:
    """The content's motion: `mats[t]` (3x3) maps frame-0 pixels to frame-t pixels."""

    mats: np.ndarray  # (T, 3, 3) float64
    height: int
    width: int
    fps: float

    @property
    def seconds(self) -> float:
        return (len(self.mats) - 1) / self.fps if len(self.mats) > 1 else 0.0

    def params(self, t: int) -> tuple[float, float, float, float]:
        """(log scale, rotation radians, dx, dy in frame heights) of the content at frame t."""
        m = self.mats[t]
        scale = math.hypot(m[0, 0], m[1, 0])
        rot = math.atan2(m[1, 0], m[0, 0])
        c = np.array([self.width / 2, self.height / 2])
        d = m[:2, :2] @ c + m[:2, 2] - c  # where the frame centre's content went
        return math.log(max(scale, 1e-6)), rot, d[0] / self.height, d[1] / self.height

    def rates(self) -> dict[str, float]:
        """Mean rates over the clip: pan/tilt in frame heights per second, zoom in log-scale per
        second, orbit in radians per second (content motion, signs as measured)."""
        if len(self.mats) < 2:
            return {"dx": 0.0, "dy": 0.0, "zoom": 0.0, "orbit": 0.0}
        # Least-squares slope through all frames: steadier than end minus start.
        p = np.array([self.params(t) for t in range(len(self.mats))])
        ts = np.arange(len(p)) / self.fps
        ts = ts - ts.mean()
        slope = (ts[:, None] * (p - p.mean(0))).sum(0) / max((ts**2).sum(), 1e-9)
        return {"zoom": slope[0], "orbit": slope[1], "dx": slope[2], "dy": slope[3]}

    def to_frame0(self, t: int, xy: np.ndarray) -> np.ndarray:
        """Pixel positions seen at frame t -> where they were at frame 0 (the world at rest)."""
        inv = np.linalg.inv(self.mats[t])
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return xy @ inv[:2, :2].T + inv[:2, 2]

    def scale(self, t: int) -> float:
        m = self.mats[t]
        return math.hypot(m[0, 0], m[1, 0])

    def rotation(self, t: int) -> float:
        m = self.mats[t]
        return math.atan2(m[1, 0], m[0, 0])

    def classify(self) -> tuple[Camera, dict[str, float]]:
        """The camera move, and each rate as a fraction of the world's (1.0 = the world's rate)."""
        r = self.rates()
        frac = {
            "pan": r["dx"] / CAMERA_PAN_SPEED,  # content right (+) is a pan left
            "tilt": r["dy"] / CAMERA_PAN_SPEED,  # content down (+) is a tilt up
            "zoom": r["zoom"] / CAMERA_ZOOM_RATE,
            "orbit": r["orbit"] / CAMERA_ORBIT_RATE,
        }
        name, val = max(frac.items(), key=lambda kv: abs(kv[1]))
        if abs(val) < RATE_FRACTION:
            return Camera.STATIC, frac
        move = {
            ("pan", True): Camera.PAN_LEFT,
            ("pan", False): Camera.PAN_RIGHT,
            ("tilt", True): Camera.TILT_UP,
            ("tilt", False): Camera.TILT_DOWN,
            ("zoom", True): Camera.ZOOM_IN,
            ("zoom", False): Camera.ZOOM_OUT,
            ("orbit", True): Camera.ORBIT,
            ("orbit", False): Camera.ORBIT,
        }[(name, val > 0)]
        return move, frac

    def summary(self) -> str:
        move, frac = self.classify()
        parts = ", ".join(f"{k} {v:+.2f}" for k, v in frac.items())
        return f"{move} ({parts} of the world's rates)"


def _similarity(p: np.ndarray, cx: float, cy: float, half: float) -> np.ndarray:
    """The 3x3 similarity about (cx, cy) for parameters (scale, roll) * half and (dx, dy) px."""
    a, b = p[0] / half, p[1] / half
    m = np.array([[1 + a, -b, 0.0], [b, 1 + a, 0.0], [0.0, 0.0, 1.0]])
    m[0, 2] = cx - m[0, 0] * cx - m[0, 1] * cy + p[2]
    m[1, 2] = cy - m[1, 0] * cx - m[1, 1] * cy + p[3]
    return m


def _pyramid(prev, cur, valid, levels):
    out = [(prev, cur, valid)]
    for _ in range(levels - 1):
        p, c, v = out[-1]
        # A coarse pixel is ground only if all four fine pixels under it were.
        v = cv2.erode(v.astype(np.uint8), np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
        p, c = cv2.pyrDown(p), cv2.pyrDown(c)
        out.append((p, c, v[: p.shape[0], : p.shape[1]].astype(bool)))
    return out


def align(prev: np.ndarray, cur: np.ndarray, valid: np.ndarray, init: np.ndarray) -> np.ndarray:
    """The similarity W (3x3) with cur(W x) ~ prev(x) over the `valid` pixels of prev.

    Inverse-compositional Gauss-Newton (Baker & Matthews 2004) on the images themselves, coarse to
    fine, each pixel weighted by Tukey's biweight of its residual: every gradient of the ground
    votes, so smooth textures pin the motion as well as sharp ones, and a stripe pins only the
    motion across it (the aperture problem is in the normal equations, not hidden). Scale and roll
    are parametrised as the displacement they cause at half the frame height, so all four
    parameters are pixels and one convergence test fits them all."""
    W = init.copy()
    levels = len(PYRAMID_ITERS)
    down = np.diag([0.5 ** (levels - 1)] * 2 + [1.0])
    W = down @ W @ np.linalg.inv(down)
    for lvl, (P, C, V) in reversed(list(enumerate(_pyramid(prev, cur, valid, levels)))):
        P = cv2.GaussianBlur(P, (0, 0), 0.8)
        C = cv2.GaussianBlur(C, (0, 0), 0.8)
        h, w = P.shape
        cx, cy, half = (w - 1) / 2, (h - 1) / 2, h / 2
        ys, xs = np.nonzero(V)
        if len(xs) >= 12:
            gx = (cv2.Sobel(P, cv2.CV_32F, 1, 0, ksize=3) / 8.0)[ys, xs].astype(np.float64)
            gy = (cv2.Sobel(P, cv2.CV_32F, 0, 1, ksize=3) / 8.0)[ys, xs].astype(np.float64)
            x, y = (xs - cx) / half, (ys - cy) / half
            sd = np.stack([gx * x + gy * y, gy * x - gx * y, gx, gy], 1)  # steepest descent
            template = P[ys, xs].astype(np.float64)
            for _ in range(PYRAMID_ITERS[lvl]):
                warped = cv2.warpAffine(C, W[:2].astype(np.float32), (w, h), borderValue=-1.0,
                                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)  # fmt: skip
                seen = warped[ys, xs]
                e = seen.astype(np.float64) - template
                inside = seen >= 0
                if inside.sum() < 12:
                    break
                k = max(4.685 * 1.4826 * float(np.median(np.abs(e[inside]))), 1.0)
                wts = np.where(inside, np.clip(1.0 - (e / k) ** 2, 0.0, None) ** 2, 0.0)
                hess = (sd * wts[:, None]).T @ sd + 1e-6 * np.eye(4)
                dp = np.linalg.solve(hess, (sd * wts[:, None]).T @ e)
                W = W @ np.linalg.inv(_similarity(dp, cx, cy, half))
                if np.abs(dp).max() < 1e-3:
                    break
        if lvl:
            up = np.diag([2.0, 2.0, 1.0])
            W = up @ W @ np.linalg.inv(up)
    return W


def estimate_camera(gray: np.ndarray, object_mask: np.ndarray | None, fps: float = 8.0) -> CameraTrack:
    """gray: (T, H, W) luma; object_mask: (T, H, W) bool (pixels to ignore) or None."""
    gray = np.asarray(gray, dtype=np.float32)
    T, H, W = gray.shape
    mats = np.tile(np.eye(3), (T, 1, 1))
    if object_mask is None:
        object_mask = np.zeros(gray.shape, bool)
    border = np.zeros((H, W), bool)
    border[BORDER : H - BORDER, BORDER : W - BORDER] = True
    ring = np.ones((3, 3), np.uint8)
    step = np.eye(3)
    for t in range(1, T):
        # Objects of either frame, and their antialiased rims, are not ground.
        objects = cv2.dilate((object_mask[t - 1] | object_mask[t]).astype(np.uint8), ring, 2)
        # The camera moves smoothly: the last step is a good start for this one.
        step = align(gray[t - 1], gray[t], (objects == 0) & border, step)
        mats[t] = step @ mats[t - 1]
    return CameraTrack(mats=mats, height=H, width=W, fps=fps)
