"""Read a clip back into the world's facts: objects (color, shape, size, world trajectory), the
camera move and the background. Pixels only; the spec is never consulted.

Pipeline: perception (per-frame blobs) -> camera (background motion, objects masked) -> tracking
(blobs linked over time) -> objects (tracks that persist, with world coordinates: each position is
taken back through the camera's transform to where it would be seen at rest, then divided by the
frame height; the unit square of the world is the frame at rest, centred horizontally).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from mutoscope.world.judge.background import classify_background
from mutoscope.world.judge.camera import CameraTrack, estimate_camera
from mutoscope.world.judge.perception import (
    Detection,
    FramePerception,
    analysis_frames,
    perceive,
)
from mutoscope.world.judge.tracking import Track, link
from mutoscope.world.vocab import SIZES, Camera, Shape

DEFAULT_FPS = 8.0
# A track is an object if it is seen in at least this fraction of the frames (an object may leave
# the frame early under a pan or a zoom), and if it behaves like one: its area steady from frame to
# frame, its steps small, few frames missed. Noise blobs of one color, linked by chance, are not.
MIN_TRACK_FRACTION = 0.25
MIN_TRACK_FRAMES = 3
MAX_AREA_JUMP = 0.25  # median |log area change| between sightings (shrink + zoom out: ~0.2)
# Median blob area of a track, in (small radius)^2: the smallest object covers ~1.4 of them;
# single frames may fall lower (shrinking, zoom out, a cut by the border), the median may not.
MIN_TRACK_AREA = 0.35
MAX_STEP = 0.12  # median step between sightings, frame heights (a bouncing ball's fastest is ~0.2)
MAX_GAP_SHARE = 0.25  # share of steps that skip a frame
# Objects are flat palette colors. The median delta-E of a blob's own-color pixels is a few units,
# up to ~14 on thin or small figures whose chroma the encoder halves, and their 10th percentile is
# under 5; where a blob has an inside, it is exact. A noise blob that comes near a color has all
# three high (median above 11, 10th percentile above 6.5, inside above 8). A track is flat if any
# is low.
FLAT_CORE_DE = 13.0
FLAT_INNER_DE = 8.0
FLAT_BEST_DE = 9.0
FIGURE_ELONGATION = 1.8  # the stick figure measures 2-4; regular shapes 1.0-1.15
FIGURE_PRESENCE = 0.5  # share of the frames (a small figure under a zoom out fades)
FIGURE_AREA_JUMP = 0.25

PERSON_ELONGATION = 1.6  # regular shapes measure 1.0-1.15; the stick figure 2-4
# Rotation-invariant descriptors of each shape and size as rendered at 64x64 and read back through
# H.264: mean and spread of (k=3, 4, 5 moment strengths, fill, solidity, holes) over 27 renders
# each (all colors, random backgrounds and angles). Spreads are floored at SPREAD_FLOOR.
SHAPE_PROTOTYPES = {
    ("circle", "small"): ((0.03, 0.03, 0.03, 0.83, 0.95, 0.0), (0.02, 0.03, 0.02, 0.05, 0.02, 0.0)),
    ("circle", "medium"): ((0.02, 0.02, 0.02, 0.87, 0.96, 0.0), (0.02, 0.01, 0.01, 0.02, 0.02, 0.0)),
    ("circle", "large"): ((0.01, 0.02, 0.01, 0.9, 0.97, 0.0), (0.01, 0.01, 0.01, 0.03, 0.01, 0.0)),
    ("ring", "small"): ((0.03, 0.04, 0.03, 0.67, 0.76, 0.2), (0.02, 0.04, 0.02, 0.07, 0.07, 0.06)),
    ("ring", "medium"): ((0.03, 0.02, 0.02, 0.7, 0.77, 0.2), (0.02, 0.02, 0.01, 0.03, 0.03, 0.03)),
    ("ring", "large"): ((0.01, 0.01, 0.01, 0.72, 0.77, 0.2), (0.01, 0.01, 0.01, 0.02, 0.02, 0.02)),
    ("square", "small"): ((0.05, 0.23, 0.05, 0.68, 0.91, 0.0), (0.03, 0.03, 0.03, 0.05, 0.03, 0.0)),
    ("square", "medium"): ((0.03, 0.26, 0.03, 0.68, 0.92, 0.0), (0.02, 0.02, 0.03, 0.03, 0.03, 0.0)),
    ("square", "large"): ((0.02, 0.27, 0.01, 0.67, 0.94, 0.0), (0.01, 0.02, 0.01, 0.02, 0.03, 0.0)),
    ("triangle", "small"): ((0.43, 0.06, 0.06, 0.54, 0.89, 0.0), (0.08, 0.05, 0.05, 0.06, 0.05, 0.0)),
    ("triangle", "medium"): ((0.5, 0.04, 0.04, 0.5, 0.89, 0.0), (0.03, 0.03, 0.02, 0.02, 0.03, 0.0)),
    ("triangle", "large"): ((0.52, 0.03, 0.03, 0.47, 0.9, 0.0), (0.02, 0.03, 0.02, 0.02, 0.02, 0.0)),
    ("star", "small"): ((0.1, 0.11, 0.39, 0.57, 0.77, 0.0), (0.05, 0.1, 0.1, 0.06, 0.07, 0.0)),
    ("star", "medium"): ((0.06, 0.05, 0.48, 0.52, 0.7, 0.0), (0.03, 0.03, 0.05, 0.03, 0.04, 0.0)),
    ("star", "large"): ((0.04, 0.04, 0.52, 0.5, 0.66, 0.0), (0.02, 0.02, 0.03, 0.03, 0.04, 0.0)),
}
SPREAD_FLOOR = np.array([0.04, 0.04, 0.04, 0.04, 0.04, 0.05])
# k of the k-fold symmetry that shows each shape's rotation.
SYMMETRY = {Shape.TRIANGLE: 3, Shape.SQUARE: 4, Shape.STAR: 5}
# Matte area of each shape over its bounding circle (pi r^2), measured like SHAPE_PROTOTYPES; the
# size is read from the area, which sub-pixel motion and rotation leave unchanged.
AREA_FILL = {
    Shape.CIRCLE: 1.01,
    Shape.SQUARE: 0.672,
    Shape.TRIANGLE: 0.417,
    Shape.STAR: 0.424,
    Shape.RING: 0.83,
}
PERSON_ENCLOSING = 1.0  # the figure's enclosing circle over its bounding radius (0.95-1.02)
# The stick figure's matte centroid sits this many radii below its centre (legs outweigh the head).
PERSON_CENTROID_DROP = 0.141


def shape_votes(d: Detection) -> dict[Shape, float]:
    """One vote for the shape this blob looks most like.

    Every regular shape (circle, ring, square, triangle, star) has isotropic second moments, so an
    elongated blob is the stick figure. The rest go to the nearest prototype (SHAPE_PROTOTYPES) in
    the space of rotation-invariant descriptors: k-fold moment strengths (3: triangle, 4: square,
    5: star), fill of the bounding circle, solidity, and the hole that tells a ring."""
    votes = {s: 0.0 for s in Shape}
    if d.elongation >= PERSON_ELONGATION and d.fill < 0.5:
        votes[Shape.PERSON] = 1.0
        return votes
    f = np.array([d.orient[3][1], d.orient[4][1], d.orient[5][1], d.fill, d.solidity, d.holes])
    best = min(
        SHAPE_PROTOTYPES.items(),
        key=lambda kv: float((((f - kv[1][0]) / np.maximum(kv[1][1], SPREAD_FLOOR)) ** 2).sum()),
    )
    votes[Shape(best[0][0])] = 1.0
    return votes


@dataclass
class SeenObject:
    """One object as the judge saw it; world units, seconds."""

    color: str
    shape: Shape
    shape_confidence: float  # fraction of the frames voting for `shape`
    size: str
    radius: float  # bounding radius at the first sighting, world units
    track: Track
    t: np.ndarray  # (N,) seconds of each sighting
    xy: np.ndarray  # (N, 2) world position (camera removed)
    log_r: np.ndarray  # (N,) log of the world radius (camera zoom removed)
    angle: np.ndarray  # (N,) k-fold orientation, unwrapped, camera rotation removed (nan: none)
    edge: np.ndarray  # (N,) bool: the blob touched the frame border (position less certain)
    views: list  # per sighting, the camera's (zoom, roll): to undo them when comparing poses
    height: int = 64  # analysis frame height, px
    camera_still: bool = True  # the camera did not move (poses compare cleanly)
    first_frame: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> tuple[float, float]:
        return float(self.xy[0, 0]), float(self.xy[0, 1])

    def describe(self) -> str:
        x, y = self.start
        return f"{self.size} {self.color} {self.shape} at ({x:.2f}, {y:.2f})"


@dataclass
class SceneReading:
    objects: list[SeenObject]
    camera: CameraTrack
    background: str
    background_scores: dict[str, float]
    fps: float
    n_frames: int
    height: int  # analysis resolution
    width: int
    perception: list[FramePerception]
    tracks: list[Track]
    gray: np.ndarray  # (T, H, W) uint8 luma at analysis resolution

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps


def pixel_to_world(xy: np.ndarray, H: int, W: int) -> np.ndarray:
    """Pixel positions (pixel i's centre at i) in a frame at rest -> world units: the frame height
    is one unit, y down, and the unit square sits in the middle of a wide frame."""
    xy = np.asarray(xy, dtype=np.float64) + 0.5
    return np.stack([(xy[:, 0] - (W - H) / 2) / H, xy[:, 1] / H], 1)


def _size_name(radius: float) -> str:
    """Nearest size in log space (sizes are ratios apart)."""
    return min(SIZES, key=lambda s: abs(math.log(radius / SIZES[s])))


def _to_object(track: Track, cam: CameraTrack, fps: float, H: int, W: int) -> SeenObject:
    votes: dict[Shape, float] = {s: 0.0 for s in Shape}
    for d in track.dets:
        w = 0.3 if d.touches_edge else 1.0
        for s, v in shape_votes(d).items():
            votes[s] += w * v
    shape = max(votes, key=votes.get)
    conf = votes[shape] / max(sum(votes.values()), 1e-9)
    frames = np.array(track.frames)
    pix = np.array([[d.x, d.y] for d in track.dets])
    rest = np.concatenate([cam.to_frame0(f, p[None]) for f, p in zip(frames, pix, strict=True)])
    xy = pixel_to_world(rest, H, W)
    if shape is Shape.PERSON:  # thin lines: their matte area varies with what the encoder left
        r_px = np.array([d.radius / PERSON_ENCLOSING for d in track.dets])
    else:
        r_px = np.array([math.sqrt(d.mass / (math.pi * AREA_FILL[shape])) for d in track.dets])
    zoom = np.array([cam.scale(f) for f in frames])
    log_r = np.log(np.maximum(r_px, 1e-3) / H / zoom)
    if shape is Shape.PERSON:
        xy[:, 1] -= PERSON_CENTROID_DROP * np.exp(log_r)
    k = SYMMETRY.get(shape)
    if k:
        raw = np.array([d.orient[k][0] for d in track.dets]) - np.array([cam.rotation(f) for f in frames])
        angle = np.unwrap(raw * k) / k
    else:
        angle = np.full(len(frames), np.nan)
    edge = np.array([d.touches_edge for d in track.dets])
    views = [(cam.scale(f), cam.rotation(f)) for f in frames]
    # Size at the first sighting; several early unclipped frames steady it when the object is not
    # growing (a median of the first three sightings, each taken back through the camera's zoom).
    first = [i for i in range(min(3, len(frames))) if not edge[i]] or [0]
    r0 = float(np.exp(np.median(log_r[first[:1] if _changes_size(log_r) else first])))
    return SeenObject(
        color=track.color,
        shape=shape,
        shape_confidence=conf,
        size=_size_name(r0),
        radius=r0,
        track=track,
        t=frames / fps,
        xy=xy,
        log_r=log_r,
        angle=angle,
        edge=edge,
        views=views,
        height=H,
        camera_still=cam.classify()[0] is Camera.STATIC,
        first_frame=int(frames[0]),
    )


def is_object(track: Track, n_frames: int, height: int) -> bool:
    """Does this track behave like one of the world's objects (see MIN_TRACK_FRACTION)?"""
    dets = track.dets
    if len(dets) < max(MIN_TRACK_FRAMES, math.ceil(MIN_TRACK_FRACTION * n_frames)):
        return False
    pairs = list(itertools.pairwise(dets))
    whole = [(a, b) for a, b in pairs if not (a.touches_edge or b.touches_edge)] or pairs
    jump = np.median([abs(math.log(b.mass / a.mass)) for a, b in whole])
    step = np.median([math.hypot(b.x - a.x, b.y - a.y) / (b.frame - a.frame) for a, b in pairs])
    gaps = np.mean([b.frame - a.frame > 1 for a, b in pairs])
    core = np.median([d.core_de for d in dets])
    best = np.median([d.best_de for d in dets])
    inner = np.median([d.inner_de for d in dets])
    flat = core <= FLAT_CORE_DE or best <= FLAT_BEST_DE or inner <= FLAT_INNER_DE
    # A stick figure is thin lines, none of them flat once the encoder has halved their chroma: it
    # must instead hold steady, seen in nearly every frame with a steady area.
    figure = (
        np.median([d.elongation for d in dets]) >= FIGURE_ELONGATION
        and len(dets) >= FIGURE_PRESENCE * n_frames
        and jump <= FIGURE_AREA_JUMP
    )
    return (
        np.median([d.mass for d in dets]) >= MIN_TRACK_AREA * (SIZES["small"] * height) ** 2
        and jump <= MAX_AREA_JUMP
        and step <= MAX_STEP * height
        and gaps <= MAX_GAP_SHARE
        and (flat or figure)
    )


def _changes_size(log_r: np.ndarray) -> bool:
    return len(log_r) >= 3 and abs(log_r[min(2, len(log_r) - 1)] - log_r[0]) > 0.05


def read_scene(frames: np.ndarray, fps: float = DEFAULT_FPS) -> SceneReading:
    """(T, H, W, 3) uint8 RGB -> what the clip shows."""
    frames, _ = analysis_frames(np.ascontiguousarray(frames))
    T, H, W, _ = frames.shape
    per = perceive(frames)
    gray = (frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    cam = estimate_camera(gray, np.stack([p.object_mask for p in per]), fps)
    tracks = link(per, H)
    objects = [_to_object(tr, cam, fps, H, W) for tr in tracks if is_object(tr, T, H)]
    objects.sort(key=lambda o: (o.first_frame, o.start))
    bg, scores = classify_background(frames, np.stack([p.object_mask for p in per]))
    return SceneReading(objects, cam, bg, scores, fps, T, H, W, per, tracks, gray)
