"""What each object does, and when: its world trajectory cut into segments, each named a motion.

Every object's sightings (world position with the camera removed, log radius with the zoom removed,
k-fold orientation with the camera's roll removed) are cut into consecutive segments by dynamic
programming. Each segment is fitted by the best of a few kinematic models whose magnitudes are the
world's own (vocab): free straight-line motion, fall under GRAVITY, a circle at ORBIT_RATE, a
zigzag; radius and orientation are fitted as straight lines in every model. The cost of a
segmentation is the chi-square of its fits plus a penalty per segment (so a cut must pay for
itself). Then each segment is named from its fitted parameters (speed and heading, spin rate,
growth, gravity, orbit radius), and a few patterns across segments are named as wholes: arcs joined
by a rebound are a bounce, an arc that comes to rest is a fall, a person's arc that starts upwards
is a jump.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from mutoscope.world.judge.perception import pose_patch
from mutoscope.world.judge.reading import SeenObject
from mutoscope.world.motion import JUMP_HEIGHT, ZIGZAG_AMPLITUDE, ZIGZAG_PERIOD
from mutoscope.world.vocab import (
    DIRECTION_VECTORS,
    GRAVITY,
    GROW_FACTOR,
    MOVE_SPEED,
    ORBIT_RADIUS,
    ORBIT_RATE,
    SPIN_RATE,
    Direction,
    Motion,
    Shape,
    Spin,
)

# Measurement noise: world units (a third of a pixel at 64x64, plus camera drift), log radius,
# radians.
SIGMA_POS = 0.006
SIGMA_LOG_R = 0.035
SIGMA_ANGLE = 0.08
SEGMENT_PENALTY = 12.0  # chi-square a cut must save to be worth making
MIN_SAMPLES = 3  # a segment spans at least three sightings
MAX_SAMPLES = 32  # longer clips are subsampled for the segmentation

# Naming thresholds, as fractions of the world's magnitudes.
STILL_SPEED = 0.3 * MOVE_SPEED  # world units / s
MOVE_RANGE = (0.5 * MOVE_SPEED, 1.8 * MOVE_SPEED)
SPIN_MIN = 0.4 * SPIN_RATE  # rad / s
# Growth: GROW_FACTOR over a segment of at most the clip's length; a third of that rate over 2 s.
GROW_MIN = math.log(GROW_FACTOR) / 2.0 / 3.0  # log radius / s
ORBIT_R_RANGE = (0.5 * ORBIT_RADIUS, 1.7 * ORBIT_RADIUS)
# A drop of a few pixels already hits the floor at this speed (world units / s).
REBOUND_SPEED = 0.3
# Pose change (see _articulates) above which the stick figure moves its limbs: a still figure reads
# 0 under a still camera and up to ~0.2 under a moving one; a wave 0.06-0.14, a walk 0.17-0.25.
ARTICULATION = 0.02
ARTICULATION_MOVING = 0.2
ZIGZAG_PHASES = 16
JUMP_REACH = 0.45  # seconds either side of a jump's apex where the figure stands (a jump: 0.86 s)
# The orbit model is held to the world's radius: a free circle fits any short wiggle. Its deviation
# is charged as a Gaussian prior of this width.
ORBIT_R_SIGMA = 0.3 * ORBIT_RADIUS


@dataclass(frozen=True)
class Happening:
    """One named segment of one object's motion."""

    motion: Motion | None  # None: moving in a way the world does not name
    t0: float
    t1: float
    direction: Direction | None = None
    spin: Spin | None = None
    detail: str = ""

    def describe(self) -> str:
        qual = self.direction or self.spin
        name = f"{self.motion}" + (f" {qual}" if qual else "") if self.motion else "unnamed motion"
        return f"{name} {self.t0:.2f}-{self.t1:.2f}s" + (f" ({self.detail})" if self.detail else "")


@dataclass
class _Fit:
    model: str
    cost: float
    params: dict


def _triangle(u: np.ndarray) -> np.ndarray:
    """The world's zigzag: a triangle wave of unit amplitude and period (world/motion.py)."""
    return 1 - 4 * np.abs(np.mod(u + 0.25, 1) - 0.5)


class _Prefix:
    """Least squares of one linear model over every window [a, b] of the samples at once: prefix
    sums of the normal equations make each window's fit a difference and one small solve."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray):
        # parts: (basis (N, p), target (N,)) pairs whose squared residuals add up.
        p = parts[0][0].shape[1]
        n = len(w)
        gram = np.zeros((n + 1, p, p))
        rhs = np.zeros((n + 1, p))
        sq = np.zeros(n + 1)
        w2 = w * w
        for B, y in parts:
            gram[1:] += np.cumsum(w2[:, None, None] * B[:, :, None] * B[:, None, :], 0)
            rhs[1:] += np.cumsum(w2[:, None] * B * y[:, None], 0)
            sq[1:] += np.cumsum(w2 * y * y)
        self.gram, self.rhs, self.sq = gram, rhs, sq

    def solve(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows [a, b] inclusive -> (solutions (K, p), residual sums of squares (K,))."""
        G = self.gram[b + 1] - self.gram[a]
        r = self.rhs[b + 1] - self.rhs[a]
        G = G + 1e-9 * np.eye(G.shape[-1])
        sol = np.linalg.solve(G, r[..., None])[..., 0]
        cost = self.sq[b + 1] - self.sq[a] - (sol * r).sum(-1)
        return sol, np.maximum(cost, 0.0)


# Extra parameters cost a little, so that a still object is not fitted as an orbit of radius 0.
MODEL_PENALTY = {"linear": 0.0, "gravity": 1.0, "orbit": 3.0, "zigzag": 2.0}


def _window_fits(t, xy, log_r, angle, w, a, b) -> tuple[np.ndarray, list[_Fit], list[dict]]:
    """Best model per window [a, b]: total cost (with side channels), the fit, the side rates."""
    one = np.ones_like(t)
    line = np.stack([one, t], 1)
    x, y = xy[:, 0], xy[:, 1]
    K = len(a)
    t_a, t_b = t[a], t[b]
    costs, sols = {}, {}
    sx, cx = _Prefix([(line, x)], w).solve(a, b)
    sy, cy = _Prefix([(line, y)], w).solve(a, b)
    costs["linear"], sols["linear"] = cx + cy, (sx, sy)
    sg, cg = _Prefix([(line, y - 0.5 * GRAVITY * t * t)], w).solve(a, b)
    costs["gravity"], sols["gravity"] = cx + cg, (sx, sg)
    best_orbit = None
    for sign in (1.0, -1.0):
        c, s = np.cos(sign * ORBIT_RATE * t), np.sin(sign * ORBIT_RATE * t)
        zero = np.zeros_like(t)
        pre = _Prefix([(np.stack([one, zero, c, -s], 1), x), (np.stack([zero, one, s, c], 1), y)], w)
        so, co = pre.solve(a, b)
        if best_orbit is None:
            best_orbit = (so, co)
        else:
            pick = co < best_orbit[1]
            best_orbit = (np.where(pick[:, None], so, best_orbit[0]), np.minimum(co, best_orbit[1]))
    costs["orbit"], sols["orbit"] = best_orbit[1], best_orbit[0]
    # Zigzag, held to the world's own wave: x at MOVE_SPEED either way, y a triangle wave of known
    # amplitude and period at the best of ZIGZAG_PHASES phases; only the offsets are free.
    flat = np.ones((len(t), 1))
    zig_x = np.minimum(
        *(_Prefix([(flat, x - sign * MOVE_SPEED * t)], w).solve(a, b)[1] for sign in (1.0, -1.0))
    )
    right = _Prefix([(flat, x - MOVE_SPEED * t)], w).solve(a, b)[1] <= zig_x
    zig_y = np.min(
        [
            _Prefix([(flat, y - ZIGZAG_AMPLITUDE * _triangle(t / ZIGZAG_PERIOD + k / ZIGZAG_PHASES))],
                    w).solve(a, b)[1]
            for k in range(ZIGZAG_PHASES)
        ],
        axis=0,
    )  # fmt: skip
    # A wave is only told from a wobble over most of its period.
    enough = t_b - t_a >= 0.75 * ZIGZAG_PERIOD
    costs["zigzag"], sols["zigzag"] = np.where(enough, zig_x + zig_y, np.inf), right
    prior = {
        "orbit": ((np.hypot(sols["orbit"][:, 2], sols["orbit"][:, 3]) - ORBIT_RADIUS) / ORBIT_R_SIGMA) ** 2
    }
    names = list(costs)
    total = np.stack(
        [costs[m] / SIGMA_POS**2 + MODEL_PENALTY[m] + prior.get(m, 0.0) for m in names]
    )  # (M, K)
    pick = total.argmin(0)
    # Side channels: radius and orientation as straight lines in every model.
    sr, cr = _Prefix([(line, log_r)], np.ones_like(t)).solve(a, b)
    side_cost = cr / SIGMA_LOG_R**2
    has_angle = not np.isnan(angle).any()
    if has_angle:
        sa, ca = _Prefix([(line, angle)], np.ones_like(t)).solve(a, b)
        side_cost = side_cost + ca / SIGMA_ANGLE**2
    fits, sides = [], []
    for k in range(K):
        m = names[pick[k]]
        cost = float(costs[m][k] / SIGMA_POS**2)
        if m == "linear":
            params = {"vx": sols[m][0][k, 1], "vy": sols[m][1][k, 1]}
        elif m == "gravity":
            vy = sols[m][1][k, 1]
            params = {
                "vx": sols[m][0][k, 1],
                "vy0": vy + GRAVITY * t_a[k],
                "vy1": vy + GRAVITY * t_b[k],
            }
        elif m == "orbit":
            params = {"radius": math.hypot(sols[m][k, 2], sols[m][k, 3])}
        else:
            params = {"vx": MOVE_SPEED if sols[m][k] else -MOVE_SPEED}
        fits.append(_Fit(m, cost, {k2: float(v) for k2, v in params.items()}))
        sides.append({"g": float(sr[k, 1]), "omega": float(sa[k, 1]) if has_angle else 0.0})
    return total[pick, np.arange(K)] + side_cost, fits, sides


def _segment(obj: SeenObject) -> list[tuple[int, int, _Fit, dict]]:
    """Optimal segmentation of the object's sightings: (first, last, position fit, side rates)."""
    n = len(obj.t)
    idx = np.arange(n)
    if n > MAX_SAMPLES:
        idx = np.unique(np.linspace(0, n - 1, MAX_SAMPLES).round().astype(int))
    m = len(idx)
    if m < 2:
        return []
    t = obj.t[idx] - obj.t[idx].mean()  # centred: better conditioned normal equations
    w = np.where(obj.edge[idx], 0.3, 1.0)  # cut-off blobs have biased centroids
    lo = min(MIN_SAMPLES, m)
    pairs = [(i, j) for i in range(m) for j in range(i + lo - 1, m)]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    total, fits, sides = _window_fits(t, obj.xy[idx], obj.log_r[idx], obj.angle[idx], w, a, b)
    window = {p: k for k, p in enumerate(pairs)}
    # best[j]: least cost of segmenting samples [0, j).
    best = [math.inf] * (m + 1)
    back = [0] * (m + 1)
    best[0] = 0.0
    for j in range(lo, m + 1):
        for i in range(0, j - lo + 1):
            if best[i] == math.inf:
                continue
            c = best[i] + total[window[(i, j - 1)]] + SEGMENT_PENALTY
            if c < best[j]:
                best[j], back[j] = c, i
    out, j = [], m
    while j > 0:
        i = back[j]
        k = window[(i, j - 1)]
        out.append((int(idx[i]), int(idx[j - 1]), fits[k], sides[k]))
        j = i
    return out[::-1]


def _heading(vx: float, vy: float) -> Direction:
    return max(DIRECTION_VECTORS, key=lambda d: DIRECTION_VECTORS[d][0] * vx + DIRECTION_VECTORS[d][1] * vy)


def _articulates(obj: SeenObject, a: int, b: int) -> float:
    """How much the stick figure's limbs move within sightings a..b: the mean change of its centred
    matte from the segment's mean pose, over the pose's mass (0 for a rigid figure)."""
    if obj.shape is not Shape.PERSON:
        return 0.0
    dets, views = obj.track.dets[a : b + 1], obj.views[a : b + 1]
    keep = [i for i, d in enumerate(dets) if d.matte is not None]
    if len(keep) < 3:
        return 0.0
    p = np.stack(
        [
            pose_patch(dets[i].matte, dets[i].x - dets[i].origin[0],
                       dets[i].y - dets[i].origin[1], obj.height, *views[i])
            for i in keep
        ]
    )  # fmt: skip
    mean = p.mean(0)
    return float(np.abs(p - mean).sum((1, 2)).mean() / max(mean.sum(), 1e-6))


def _name(obj: SeenObject, a: int, b: int, fit: _Fit, side: dict) -> Happening:
    t0, t1 = float(obj.t[a]), float(obj.t[b])
    p = fit.params
    omega, g = side["omega"], side["g"]
    if fit.model == "orbit" and ORBIT_R_RANGE[0] <= p["radius"] <= ORBIT_R_RANGE[1]:
        return Happening(Motion.ORBIT, t0, t1, detail=f"radius {p['radius']:.2f}")
    if fit.model == "gravity":
        return Happening(None, t0, t1, detail=f"arc vy {p['vy0']:+.2f}..{p['vy1']:+.2f}")
    if fit.model == "zigzag":
        d = Direction.RIGHT if p["vx"] > 0 else Direction.LEFT
        return Happening(Motion.ZIGZAG, t0, t1, direction=d)
    vx, vy = p.get("vx", 0.0), p.get("vy", 0.0)
    speed = math.hypot(vx, vy)
    if speed < STILL_SPEED:
        if abs(omega) >= SPIN_MIN:
            spin = Spin.CLOCKWISE if omega > 0 else Spin.COUNTERCLOCKWISE
            return Happening(Motion.ROTATE, t0, t1, spin=spin, detail=f"{omega:+.1f} rad/s")
        if abs(g) >= GROW_MIN:
            return Happening(Motion.GROW if g > 0 else Motion.SHRINK, t0, t1, detail=f"{g:+.2f}/s")
        # Under a moving camera a rigid figure's thin lines are resampled every frame, which
        # reads as pose change up to ARTICULATION_MOVING; a wave must stand out from that.
        limit = ARTICULATION if obj.camera_still else ARTICULATION_MOVING
        if _articulates(obj, a, b) > limit:
            return Happening(Motion.WAVE, t0, t1)
        return Happening(Motion.STILL, t0, t1, detail=f"{speed:.3f}/s")
    if MOVE_RANGE[0] <= speed <= MOVE_RANGE[1]:
        d = _heading(vx, vy)
        detail = f"{speed:.2f}/s"
        sideways = d in (Direction.LEFT, Direction.RIGHT)
        if obj.shape is Shape.PERSON and sideways and _articulates(obj, a, b) > ARTICULATION:
            return Happening(Motion.WALK, t0, t1, direction=d, detail=detail)
        return Happening(Motion.MOVE, t0, t1, direction=d, detail=detail)
    return Happening(None, t0, t1, detail=f"{speed:.2f}/s")


def _gravity_patterns(obj: SeenObject, segs, named: list[Happening]) -> list[Happening]:
    """Arcs under gravity: joined by a rebound, a bounce; ending at rest, a fall; a person's arc
    that starts upwards, a jump."""
    out = list(named)
    y, t = obj.xy[:, 1], obj.t
    v = np.diff(y) / np.maximum(np.diff(t), 1e-6)
    impacts = [k for k in range(1, len(y) - 1) if min(v[k - 1], -v[k]) > REBOUND_SPEED]
    i = 0
    while i < len(segs):
        if segs[i][2].model != "gravity":
            i += 1
            continue
        j = i
        while j + 1 < len(segs) and segs[j + 1][2].model == "gravity":
            j += 1
        arcs = [segs[k][2].params for k in range(i, j + 1)]
        t0, t1 = named[i].t0, named[j].t1
        # A rebound shows between arcs, or as one sharp turn from falling to rising at the arc's
        # end (a short bounce may leave no room for a second arc).
        rebounds = sum(1 for p, q in itertools.pairwise(arcs) if p["vy1"] > 0.2 and q["vy0"] < -0.2)
        rebounds += sum(1 for k in impacts if segs[j][1] - 1 <= k <= segs[j][1] + 1)
        starts_up = arcs[0]["vy0"] < -0.3
        if obj.shape is Shape.PERSON and starts_up:
            motion = Motion.JUMP
        elif rebounds or starts_up:
            motion = Motion.BOUNCE
        else:
            motion = Motion.FALL
        h = Happening(motion, t0, t1, detail=f"{len(arcs)} arc(s), {rebounds} rebound(s)")
        for k in range(i, j + 1):
            out[k] = h
        i = j + 1
    return out


def _jumps(obj: SeenObject, segs, named: list[Happening]) -> list[Happening]:
    """A stick figure that rises at least half of JUMP_HEIGHT above the ground on both sides of the
    rise, and comes back, jumps: the segments that rise and fall around each apex are one jump
    (the crouch between jumps cuts the arcs too short for the gravity model on their own)."""
    y, t = obj.xy[:, 1], obj.t
    out = list(named)
    for k in range(1, len(y) - 1):
        near = np.abs(t - t[k]) <= JUMP_REACH
        before, after = near & (t < t[k]), near & (t > t[k])
        if not (before.any() and after.any()) or y[k] != y[near].min():
            continue
        rise = min(y[before].max(), y[after].max()) - y[k]
        if rise < 0.5 * JUMP_HEIGHT:
            continue
        span = (t[before].min(), t[after].max())
        for i, (a, b, _, _) in enumerate(segs):
            if t[b] >= span[0] and t[a] <= span[1]:
                out[i] = Happening(Motion.JUMP, named[i].t0, named[i].t1, detail=f"rise {rise:.2f}")
    return out


def happenings(obj: SeenObject) -> tuple[list[Happening], float]:
    """The object's motion as named segments in time order (adjacent equal names merged), and the
    RMS position residual of the fits (world units; how far the motion strays from the world's)."""
    segs = _segment(obj)
    n = sum(b - a + 1 for a, b, _, _ in segs)
    rms = math.sqrt(sum(f.cost for _, _, f, _ in segs) / max(n, 1)) * SIGMA_POS
    named = [_name(obj, a, b, f, side) for a, b, f, side in segs]
    named = _gravity_patterns(obj, segs, named)
    if obj.shape is Shape.PERSON:
        named = _jumps(obj, segs, named)
    merged: list[Happening] = []
    for h in named:
        if merged and (merged[-1].motion, merged[-1].direction, merged[-1].spin) == (
            h.motion,
            h.direction,
            h.spin,
        ):
            last = merged.pop()
            detail = last.detail if last.detail == h.detail else ""
            h = Happening(h.motion, last.t0, h.t1, h.direction, h.spin, detail)
        merged.append(h)
    return merged, rms
