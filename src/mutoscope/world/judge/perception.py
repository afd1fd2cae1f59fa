"""Per-frame perception: which pixels belong to which palette color, and what shape each blob has.

The world's objects are flat, exact palette colors on desaturated backgrounds, but a decoded clip is
not exact: edges are antialiased, and H.264 yuv420p keeps chroma at half resolution, so a pixel near
an edge is a mix of the object's color and the ground's. The classifier therefore works in two
steps:

1. Seeds: pixels within `SEED_DE` (CIE Lab delta-E) of a palette color. Only object interiors get
   there; backgrounds are far from every palette color by construction.
2. Matting: for each color with seeds, every pixel is read as a mix `p = a*c + (1-a)*g` of that
   color `c` and the local ground `g` (ground pixels near it, averaged), and `a` is solved by least
   squares in YCbCr, where luma (full resolution, precise edges) and chroma (blurred) each weigh by
   their contrast. A pixel belongs to the color where `a >= 0.5`, the mix fits, and it connects to
   seeds.

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mutoscope.world.vocab import COLORS

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
PALETTE = np.array([COLORS[n] for n in COLOR_NAMES], np.float32)  # (9, 3) RGB

SEED_DE = 20.0  # Lab delta-E from a palette color that counts as the object's own interior
GROUND_DE = 32.0  # farther than this from every palette color: ground
GROUND_STEADY = 40  # sum |RGB - local 5x5 median| above which a pixel stands out from its ground
WEAK_DE = 50.0  # a pixel this near a color and not ground may be a thin part of an object...
WEAK_ALPHA = 0.5  # ...if the matte reads it as mostly that color
ALPHA_MIN = 0.5  # a pixel at least half the object's color is the object's (sub-pixel unbiased)
RESIDUAL_MAX = 0.35  # a mix that misses the line from ground to color by this much is not this color
UPSAMPLE = 4  # matte upsampling for outlines
MIN_COHESION = 0.5  # the largest piece of a blob holds at least this share of its area
BIG_PIECE_FRACTION = 0.6  # of the smallest object's area: a piece this big may be an object
MAX_ANALYSIS_HEIGHT = 256  # larger videos are downscaled before analysis
# A blob smaller than this fraction of the smallest object's area is noise (the smallest object, a
# small star, covers about 1.4 r^2 with r = SIZES["small"] * H; shrinking takes it to a third of
# that, a zoom out a little further).
MIN_AREA_FRACTION = 0.2
MIN_SEEDS = 3
# The stick figure's pose is kept, as a small centred matte, for blobs this elongated (regular
# shapes measure 1.0-1.15).
POSE_ELONGATION = 1.4
POSE_GRID = 24
POSE_SPAN = 0.5

# RGB -> YCbCr (BT.709, as post/mp4 encodes), for matting: chroma and luma blur differently.
_YCC = np.array([[0.2126, 0.7152, 0.0722], [-0.1146, -0.3854, 0.5], [0.5, -0.4542, -0.0458]], np.float32)


@lru_cache(maxsize=1)
def _lut() -> tuple[np.ndarray, np.ndarray]:
    """For every RGB quantised to 6 bits: the nearest palette index and its Lab delta-E."""
    q = (np.arange(64, dtype=np.float32) * 4 + 1.5) / 255.0
    r, g, b = np.meshgrid(q, q, q, indexing="ij")
    rgb = np.stack([r, g, b], -1).reshape(1, -1, 3)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0]
    pal = cv2.cvtColor(PALETTE[None] / 255.0, cv2.COLOR_RGB2Lab)[0]
    d = np.linalg.norm(lab[:, None, :] - pal[None, :, :], axis=-1)
    return d.argmin(1).astype(np.uint8), d.min(1).astype(np.float32)


def nearest_palette(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) uint8 RGB -> nearest palette index and its delta-E, per pixel."""
    f = frames.astype(np.int32) >> 2
    idx = (f[..., 0] << 12) | (f[..., 1] << 6) | f[..., 2]
    near, dist = _lut()
    return near[idx], dist[idx]


@dataclass
class Detection:
    """One blob of one color in one frame; positions in pixels of the analysis frame (pixel i's
    centre at i)."""

    frame: int
    color: str
    x: float  # matte-weighted centroid
    y: float
    area: float  # px, from the upsampled outline, holes excluded
    radius: float  # min enclosing circle radius, px
    fill: float  # area / (pi radius^2)
    solidity: float  # area / convex hull area
    holes: float  # area of holes / area of the outer outline
    elongation: float  # sqrt(major / minor) of the second moments: 1 for every regular shape
    touches_edge: bool  # the blob meets the frame border (may be cut off)
    orient: dict[int, tuple[float, float]]  # k -> (angle, strength) of the k-fold moments
    core_de: float = 99.0  # median delta-E from its palette color of the blob's seed pixels
    best_de: float = 99.0  # their 10th percentile
    inner_de: float = 99.0  # median delta-E at least 1.5 px inside the blob (99: no inside)
    mass: float = 0.0  # sum of the matte: the area, steady under sub-pixel motion of thin parts
    lab: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mean CIE Lab of the blob's core
    matte: np.ndarray | None = None  # elongated blobs (a figure's pose): the matte crop...
    origin: tuple[int, int] = (0, 0)  # ...and where its top-left pixel lies in the frame


@dataclass
class FramePerception:
    detections: list[Detection]
    object_mask: np.ndarray  # (H, W) bool: any color's blob (for the camera and consistency)


def analysis_frames(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Downscale frames taller than MAX_ANALYSIS_HEIGHT; returns (frames, scale applied)."""
    H, W = frames.shape[1:3]
    if H <= MAX_ANALYSIS_HEIGHT:
        return frames, 1.0
    s = MAX_ANALYSIS_HEIGHT / H
    size = (max(1, round(W * s)), MAX_ANALYSIS_HEIGHT)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]), s


def _local_ground(ycc: np.ndarray, ground: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: the mean ground color around each pixel, from sure ground pixels."""
    w = ground.astype(np.float32)
    num = cv2.GaussianBlur(ycc * w[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    # Where no ground is near (inside a big object), widen the search.
    far = den < 0.05
    if far.any():
        num2 = cv2.GaussianBlur(ycc * w[..., None], (0, 0), sigma * 4)
        den2 = cv2.GaussianBlur(w, (0, 0), sigma * 4)
        num[far] = num2[far]
        den[far] = den2[far]
    return num / np.maximum(den, 1e-6)[..., None]


def _matte(ycc: np.ndarray, ground: np.ndarray, color: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alpha of `color` over the local ground per pixel, and the relative residual of that fit."""
    d = color[None, None, :] - ground  # (H, W, 3)
    p = ycc - ground
    # Contrast per channel decides its weight: a channel where color and ground agree says nothing.
    dd = (d * d).sum(-1)
    alpha = (p * d).sum(-1) / np.maximum(dd, 1e-3)
    # Chroma is blurred, luma is not: a pixel at an edge may have alpha_luma != alpha_chroma. The
    # residual is measured in chroma only, against the chroma line: blur does not count against it.
    dc = d[..., 1:]
    pc = p[..., 1:]
    ddc = (dc * dc).sum(-1)
    ac = (pc * dc).sum(-1) / np.maximum(ddc, 1e-3)
    resid = np.sqrt(((pc - ac[..., None] * dc) ** 2).sum(-1)) / np.sqrt(np.maximum(dd, 1e-3))
    return alpha, resid


def _orientation(alpha: np.ndarray, cx: float, cy: float) -> dict[int, tuple[float, float]]:
    """k-fold angular moments of a matte about its centroid: angle (radians, image coordinates,
    y down, so increasing is clockwise on screen) modulo 2*pi/k, and strength 0..1."""
    ys, xs = np.nonzero(alpha > 0.05)
    w = alpha[ys, xs]
    dx, dy = xs - cx, ys - cy
    r2 = dx * dx + dy * dy
    theta = np.arctan2(dy, dx)
    out = {}
    norm = float((w * r2).sum()) or 1.0
    for k in (3, 4, 5):
        z = (w * r2 * np.exp(1j * k * theta)).sum() / norm
        out[k] = (float(np.angle(z)) / k, float(abs(z)))
    return out


def pose_patch(
    matte: np.ndarray, cx: float, cy: float, H: int, zoom: float = 1.0, roll: float = 0.0
) -> np.ndarray:
    """The matte resampled onto a POSE_GRID x POSE_GRID grid centred on (cx, cy), spanning
    POSE_SPAN frame heights of the world (the camera's zoom and roll undone): rigid motion leaves
    it (nearly) unchanged, moving limbs do not."""
    s = POSE_GRID / (POSE_SPAN * H * zoom)
    c, n = s * math.cos(-roll), s * math.sin(-roll)
    m = np.array([[c, -n, 0.0], [n, c, 0.0]], np.float32)
    m[:, 2] = POSE_GRID / 2 - m[:, :2] @ np.array([cx, cy], np.float32)
    patch = cv2.warpAffine(matte, m, (POSE_GRID, POSE_GRID), flags=cv2.INTER_LINEAR)
    # Blurred by about a source pixel: a thin limb sliding by a fraction of a pixel changes its
    # coverage pixel by pixel, which is not a change of pose.
    return cv2.GaussianBlur(patch, (0, 0), 1.2 * s)


def describe(matte: np.ndarray, x0: int, y0: int, frame: int, color: str, H: int, W: int):
    """Shape descriptors of one blob from its matte crop (alpha in 0..1) at offset (x0, y0)."""
    up = cv2.resize(matte, None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_LINEAR)
    binary = (up >= ALPHA_MIN).astype(np.uint8)
    contours, hier = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    m = cv2.moments(matte)
    if not contours or m["m00"] <= 0:
        return None
    # A blob may come in pieces a pixel apart (a thin limb broken by the encoder): all of its
    # outlines count, their holes subtract, and the enclosing circle and hull take in every piece.
    parent = hier[0][:, 3]
    outer = [c for c, p in zip(contours, parent, strict=True) if p < 0]
    u2 = UPSAMPLE * UPSAMPLE
    outer_areas = [cv2.contourArea(c) for c in outer]
    outer_area = sum(outer_areas)
    # A few pieces, one of them most of the blob: an object; a spray of specks is noise.
    if max(outer_areas) < MIN_COHESION * outer_area:
        return None
    hole_area = sum(cv2.contourArea(c) for c, p in zip(contours, parent, strict=True) if p >= 0)
    area = (outer_area - hole_area) / u2
    if area <= 0:
        return None
    points = np.concatenate(outer)
    _, rad = cv2.minEnclosingCircle(points)
    rad /= UPSAMPLE
    hull_area = cv2.contourArea(cv2.convexHull(points)) / u2
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    spread = math.hypot((mu20 - mu02) / 2, mu11)
    major, minor = (mu20 + mu02) / 2 + spread, max((mu20 + mu02) / 2 - spread, 1e-6)
    h, w = matte.shape
    return Detection(
        frame=frame,
        color=color,
        x=x0 + cx,
        y=y0 + cy,
        area=area,
        radius=rad,
        fill=area / (math.pi * rad * rad),
        solidity=area / max(hull_area, 1e-6),
        holes=hole_area / max(outer_area, 1e-6),
        elongation=math.sqrt(major / minor),
        touches_edge=x0 <= 0 or y0 <= 0 or x0 + w >= W or y0 + h >= H,
        orient=_orientation(matte, cx, cy),
    )


def _blobs(member: np.ndarray, big_piece: float) -> tuple[int, np.ndarray]:
    """Label the blobs of one color. Pieces a pixel apart are one blob (a stick figure's thin limbs
    break up under chroma blur), unless two or more of them are each big enough to be an object:
    then those stay apart (two touching balls) and each small piece joins the nearest of them."""
    n, pieces, stats, cents = cv2.connectedComponentsWithStats(member.astype(np.uint8), 8)
    grown = cv2.dilate(member.astype(np.uint8), np.ones((3, 3), np.uint8))
    _, groups = cv2.connectedComponents(grown, connectivity=8)
    group_of = np.zeros(n, np.int32)
    group_of[pieces[member]] = groups[member]
    blob_of = np.zeros(n, np.int32)
    next_label = 1
    for g in np.unique(group_of[1:]):
        members = [k for k in range(1, n) if group_of[k] == g]
        big = [k for k in members if stats[k, cv2.CC_STAT_AREA] >= big_piece]
        if len(big) < 2:
            blob_of[members] = next_label
            next_label += 1
            continue
        labels_for = {k: next_label + i for i, k in enumerate(big)}
        next_label += len(big)
        for k in members:
            nearest = min(big, key=lambda b: float(np.hypot(*(cents[k] - cents[b]))))
            blob_of[k] = labels_for[nearest]
    return next_label, blob_of[pieces] * member


def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) bounding boxes x, y, w, h of each label (row 0 unused)."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    lo = np.full((n, 2), 1 << 30, np.int64)
    hi = np.full((n, 2), -1, np.int64)
    np.minimum.at(lo, lab, np.stack([xs, ys], 1))
    np.maximum.at(hi, lab, np.stack([xs, ys], 1))
    return np.concatenate([lo, np.maximum(hi - lo + 1, 0)], 1)


def perceive(frames: np.ndarray) -> list[FramePerception]:
    """(T, H, W, 3) uint8 RGB at analysis resolution -> detections per frame."""
    T, H, W, _ = frames.shape
    near, dist = nearest_palette(frames)
    ycc_all = frames.astype(np.float32) @ _YCC.T
    pal_ycc = PALETTE @ _YCC.T
    sigma = max(1.5, 2.5 * H / 64)
    min_area = MIN_AREA_FRACTION * 1.4 * (0.095 * H) ** 2
    big_piece = BIG_PIECE_FRACTION * 1.4 * (0.095 * H) ** 2
    ring = np.ones((3, 3), np.uint8)
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * (H // 16) + 1,) * 2)
    out = []
    for t in range(T):
        seeds = dist[t] < SEED_DE
        # Ground: far from every color, or not a seed and like its neighbourhood (a 5x5 median
        # erases a thin limb, whose encoded pixels may have drifted from their color).
        local = cv2.medianBlur(frames[t], 5).astype(np.int16)
        steady = np.abs(frames[t].astype(np.int16) - local).sum(-1) <= GROUND_STEADY
        ground = (dist[t] > GROUND_DE) | ((dist[t] > SEED_DE) & steady)
        # Keep ground estimates off the objects' antialiased rims.
        ground &= ~cv2.dilate(seeds.astype(np.uint8), ring, iterations=2).astype(bool)
        ycc = ycc_all[t]
        g = _local_ground(ycc, ground, sigma)
        # Weak seeds: not ground, and nearer a color than WEAK_DE; they count where the matte
        # says the pixel is mostly that color (a thin limb whose chroma the encoder halved).
        weak = (dist[t] < WEAK_DE) & ~ground & ~seeds
        dets: list[Detection] = []
        claimed = np.zeros((H, W), np.float32)  # best alpha so far, so that colors do not overlap
        owner = np.full((H, W), -1, np.int16)
        mattes, own_seeds = {}, {}
        for ci in np.unique(near[t][seeds | weak]):
            # An object's pixels lie within `reach` of its own color's seeds: matte only there.
            strict = seeds & (near[t] == ci)
            maybe = weak & (near[t] == ci)
            near_own = cv2.dilate((strict | maybe).astype(np.uint8), reach).astype(bool)
            ys, xs = np.nonzero(near_own)
            box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            a, resid = _matte(ycc[box], g[box], pal_ycc[ci])
            a = np.where(near_own[box] & (resid <= RESIDUAL_MAX), np.clip(a, 0.0, 1.0), 0.0)
            alpha = np.zeros((H, W), np.float32)
            alpha[box] = a
            own = strict | (maybe & (alpha >= WEAK_ALPHA))
            if not own.any():
                continue
            alpha[strict] = 1.0
            alpha[seeds & ~strict] = 0.0
            mattes[ci], own_seeds[ci] = alpha, own
            better = alpha > claimed
            claimed[better] = alpha[better]
            owner[better] = ci
        frame_mask = np.zeros((H, W), bool)
        for ci, alpha in mattes.items():
            member = (alpha >= ALPHA_MIN) & (owner == ci)
            n, labels = _blobs(member, big_piece)
            stats = _boxes(labels, n)
            sizes = np.bincount(labels.ravel(), minlength=n)  # member pixels per blob
            col_seeds = own_seeds[ci]
            for k in range(1, n):
                x, y, w, h = stats[k]
                if sizes[k] < min_area:
                    continue
                comp = labels[y : y + h, x : x + w] == k
                if (col_seeds[y : y + h, x : x + w] & comp).sum() < MIN_SEEDS:
                    continue
                # The matte crop: the component plus a one-pixel rim of partial coverage.
                x0, y0 = max(x - 2, 0), max(y - 2, 0)
                x1, y1 = min(x + w + 2, W), min(y + h + 2, H)
                region = np.zeros((y1 - y0, x1 - x0), np.uint8)
                region[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = comp
                region = cv2.dilate(region, ring, iterations=1).astype(bool)
                crop = np.where(region & (owner[y0:y1, x0:x1] == ci), alpha[y0:y1, x0:x1], 0.0)
                crop = crop.astype(np.float32)
                det = describe(crop, x0, y0, t, COLOR_NAMES[ci], H, W)
                if det is None or min(det.area, float(crop.sum())) < min_area:
                    continue
                det.mass = float(crop.sum())
                inside = crop >= ALPHA_MIN
                own = col_seeds[y0:y1, x0:x1] & inside
                if own.any():
                    det.core_de, det.best_de = (
                        float(v) for v in np.percentile(dist[t, y0:y1, x0:x1][own], [50, 10])
                    )
                # Where the blob has an inside (1.5 px from its edge), a real object is its exact
                # color whatever the encoder did to its rim (a stick figure's head, a disk).
                depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
                if (depth >= 1.5).any():
                    det.inner_de = float(np.median(dist[t, y0:y1, x0:x1][depth >= 1.5]))
                core = frames[t, y0:y1, x0:x1][crop >= 0.9]
                if len(core):
                    rgb = core.mean(0, dtype=np.float32)[None, None] / 255.0
                    det.lab = tuple(float(v) for v in cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, 0])
                if det.elongation > POSE_ELONGATION:
                    det.matte, det.origin = crop, (x0, y0)
                dets.append(det)
                frame_mask[y0:y1, x0:x1] |= region
        out.append(FramePerception(dets, frame_mask))
    return out
