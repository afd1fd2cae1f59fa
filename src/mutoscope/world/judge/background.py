"""Classify the background from the pixels that are not objects.

Features of the ground (objects masked out, pooled over a few frames): mean CIE Lab color, how
much of it is texture, and which way its edges run. Each background of the world is a prototype in
that feature space (measured on rendered clips, see PROTOTYPES), and the nearest one in scaled
distance wins; the scores are softmax-like weights for the evidence line.
"""

from __future__ import annotations

import cv2
import numpy as np

from mutoscope.world.vocab import BACKGROUNDS

# Feature order: L, a, b (mean Lab of the ground), contrast (std of L), edge energy (mean gradient
# magnitude of L), axis share (fraction of edge energy on horizontal or vertical edges), horizontal
# share (of that, the part on horizontal edges, i.e. vertical gradients).
FEATURES = ("L", "a", "b", "contrast", "edges", "axis", "horizontal")
PROTOTYPES: dict[str, tuple[float, ...]] = {
    "checkerboard": (60.0, 0.0, 0.0, 12.0, 6.0, 0.8, 0.5),
    "dunes": (70.0, 3.0, 18.0, 5.0, 2.0, 0.5, 0.6),
    "night": (12.0, 2.0, -10.0, 6.0, 2.0, 0.4, 0.5),
    "grass": (60.0, -12.0, 14.0, 5.0, 3.0, 0.6, 0.3),
    "brick": (45.0, 14.0, 12.0, 8.0, 4.0, 0.8, 0.6),
    "clouds": (70.0, -2.0, -12.0, 5.0, 1.5, 0.4, 0.5),
}
SCALES = (12.0, 5.0, 5.0, 5.0, 3.0, 0.25, 0.25)
FRAMES_USED = 4  # spread over the clip


def features(frames: np.ndarray, object_mask: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB and (T, H, W) bool -> the feature vector (see FEATURES)."""
    T = len(frames)
    picks = np.unique(np.linspace(0, T - 1, min(FRAMES_USED, T)).round().astype(int))
    labs, contrast, edges, axis, horiz = [], [], [], [], []
    kernel = np.ones((3, 3), np.uint8)
    for t in picks:
        lab = cv2.cvtColor(frames[t].astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        ground = ~cv2.dilate(object_mask[t].astype(np.uint8), kernel, iterations=2).astype(bool)
        if ground.sum() < 16:
            continue
        labs.append(lab[ground].mean(0))
        L = lab[..., 0]
        contrast.append(float(L[ground].std()))
        gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        mag = np.hypot(gx, gy)[ground]
        edges.append(float(mag.mean()))
        ax, ay = np.abs(gx)[ground], np.abs(gy)[ground]
        on_axis = np.abs(ax - ay) / np.maximum(ax + ay, 1e-6)  # 1 on an axis, 0 on a diagonal
        axis.append(float((on_axis * mag).sum() / max(mag.sum(), 1e-6)))
        horiz.append(float(ay.sum() / max((ax + ay).sum(), 1e-6)))
    if not labs:
        return np.array([np.nan] * len(FEATURES))
    m = np.mean(labs, 0)
    return np.array([m[0], m[1], m[2], np.mean(contrast), np.mean(edges), np.mean(axis),
                     np.mean(horiz)])  # fmt: skip


def classify_background(frames: np.ndarray, object_mask: np.ndarray) -> tuple[str, dict[str, float]]:
    """The nearest prototype and a score per background (0..1, summing to 1)."""
    f = features(frames, object_mask)
    if np.isnan(f).any():
        return "unknown", {b: 0.0 for b in BACKGROUNDS}
    scale = np.array(SCALES)
    d2 = {b: float((((f - np.array(p)) / scale) ** 2).sum()) for b, p in PROTOTYPES.items()}
    best = min(d2, key=d2.get)
    w = {b: np.exp(-0.5 * (v - d2[best])) for b, v in d2.items()}
    z = sum(w.values())
    return best, {b: float(v / z) for b, v in w.items()}
