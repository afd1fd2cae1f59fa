"""Link per-frame detections into tracks: one track per object, across the clip.

A detection joins only a track of its own color (colors never change in the world). Within a color,
tracks and detections are matched frame by frame by the least total cost over all assignments
(there are at most a handful of blobs of one color), the cost being the distance from the track's
predicted position (constant velocity) plus a penalty for a change of area. A track may miss a few
frames (an object briefly merged with a twin, or cut by the border); a detection that no track
takes starts one.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from mutoscope.world.judge.perception import Detection, FramePerception

MAX_GAP = 3  # frames a track may go unseen and still be continued
# Gate: a detection farther than this (frame heights) from a track's prediction starts a new track.
# A bouncing ball moves up to ~0.25 frame heights per frame at 8 fps; the camera adds a little.
GATE = 0.4


@dataclass
class Track:
    color: str
    dets: list[Detection] = field(default_factory=list)

    @property
    def frames(self) -> list[int]:
        return [d.frame for d in self.dets]

    @property
    def last(self) -> Detection:
        return self.dets[-1]

    def predict(self, frame: int) -> tuple[float, float]:
        d = self.dets[-1]
        if len(self.dets) < 2:
            return d.x, d.y
        p = self.dets[-2]
        gap = max(d.frame - p.frame, 1)
        k = (frame - d.frame) / gap
        return d.x + (d.x - p.x) * k, d.y + (d.y - p.y) * k

    def at(self, frame: int) -> Detection | None:
        for d in self.dets:
            if d.frame == frame:
                return d
        return None


def _cost(track: Track, det: Detection, height: int) -> float:
    px, py = track.predict(det.frame)
    dist = math.hypot(det.x - px, det.y - py) / height
    if dist > GATE:
        return math.inf
    area = abs(math.log(max(det.mass, 1.0) / max(track.last.mass, 1.0)))
    return dist + 0.1 * area


def _assign(tracks: list[Track], dets: list[Detection], height: int) -> list[tuple[int, int]]:
    """Least-cost matching of tracks to detections (brute force: sets are tiny)."""
    if not tracks or not dets:
        return []
    cost = np.array([[_cost(t, d, height) for d in dets] for t in tracks])
    best, best_pairs = math.inf, []
    small, large = (tracks, dets) if len(tracks) <= len(dets) else (dets, tracks)
    if len(large) > 7:  # many blobs of one color (noise): greedy is enough
        pairs = []
        used_t, used_d = set(), set()
        for i, j in sorted(np.ndindex(cost.shape), key=lambda ij: cost[ij]):
            if i not in used_t and j not in used_d and math.isfinite(cost[i, j]):
                pairs.append((i, j))
                used_t.add(i)
                used_d.add(j)
        return pairs
    for perm in itertools.permutations(range(len(large)), len(small)):
        if small is tracks:
            pairs = list(zip(range(len(tracks)), perm, strict=True))
        else:
            pairs = [(p, j) for j, p in enumerate(perm)]
        pairs = [(i, j) for i, j in pairs if math.isfinite(cost[i, j])]
        # Prefer more matches, then less cost.
        total = sum(cost[i, j] for i, j in pairs) - 10.0 * len(pairs)
        if total < best:
            best, best_pairs = total, pairs
    return best_pairs


def link(frames: list[FramePerception], height: int) -> list[Track]:
    """Tracks over the clip, longest first."""
    tracks: list[Track] = []
    for t, fp in enumerate(frames):
        for color in sorted({d.color for d in fp.detections}):
            dets = [d for d in fp.detections if d.color == color]
            live = [tr for tr in tracks if tr.color == color and t - tr.last.frame <= MAX_GAP]
            pairs = _assign(live, dets, height)
            taken = set()
            for i, j in pairs:
                live[i].dets.append(dets[j])
                taken.add(j)
            for j, d in enumerate(dets):
                if j not in taken:
                    tracks.append(Track(color, [d]))
    tracks.sort(key=lambda tr: -len(tr.dets))
    return tracks
