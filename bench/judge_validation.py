"""Validate the judge: ground truth passes, mismatched captions score like the oracle, noise fails.

    python bench/judge_validation.py --n 500 [--out docs/judge_validation.md] [--seed 0]

For each of N random specs (64x64, 8 fps, the spec's 2 s), the clip is rendered and passed through
the MP4 encoder and back (write_mp4, read_frames), then judged three ways:

1. ground truth: the clip's own caption claims (all hold of the spec) -> the judge's pass rate is
   its accuracy;
2. mismatched: the next clip's caption claims -> the judge's pass rate next to the oracle's
   (claims.holds on this clip's spec), and the judge's agreement with the oracle;
3. noise: uniform random RGB and smooth (blurred) random-color clips, judged on the same claims ->
   no object claim (color, shape, count, size, motion, order, relation) may pass.

Prints a markdown table per claim type, the consistency scores of ground-truth and noise clips, and
the judge's time per clip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from mutoscope.post.mp4 import read_frames, write_mp4
from mutoscope.world.caption import caption
from mutoscope.world.claims import ClaimType, holds
from mutoscope.world.judge import judge
from mutoscope.world.render import render
from mutoscope.world.sample import sample_spec

OBJECT_CLAIMS = {
    ClaimType.COLOR, ClaimType.SHAPE, ClaimType.COUNT, ClaimType.SIZE, ClaimType.MOTION,
    ClaimType.ORDER, ClaimType.RELATION,
}  # fmt: skip


def through_mp4(frames: np.ndarray, fps: float, tmp: Path) -> tuple[np.ndarray, float]:
    path = tmp / "clip.mp4"
    write_mp4(path, frames, fps)
    return read_frames(path), fps


def noise_clip(kind: str, rng: np.random.Generator, T: int, H: int, W: int) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    # Smooth: each frame a blurred random color field, stretched to full saturation.
    f = rng.random((T, H, W, 3)).astype(np.float32)
    f = np.stack([cv2.GaussianBlur(x, (0, 0), H / 24) for x in f])
    f = (f - f.mean()) / (f.std() + 1e-6) * 70 + 128
    return np.clip(f, 0, 255).astype(np.uint8)


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}" if b else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    ap.add_argument("--failures", type=int, default=0, help="print this many GT failures")
    args = ap.parse_args(argv)

    nrng = np.random.default_rng([args.seed, 1 << 20])
    specs, clips, claims = [], [], []
    gt = defaultdict(lambda: [0, 0])
    mm = defaultdict(lambda: [0, 0, 0, 0])  # judge pass, oracle pass, agree, n
    nz = defaultdict(lambda: [0, 0])
    cons_gt, cons_noise, times, failures = [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(args.n):
            rng = np.random.default_rng([args.seed, i])  # as the world stream draws sample i
            spec = sample_spec(rng)
            text = caption(spec, rng)
            frames = render(spec, args.size, args.size, args.fps)
            frames, fps = through_mp4(frames, args.fps, tmp)
            specs.append(spec)
            clips.append((frames, fps))
            claims.append(list(text.claims))
        for i, (spec, (frames, fps)) in enumerate(zip(specs, clips, strict=True)):
            t0 = time.perf_counter()
            rep = judge(frames, claims[i], fps=fps)
            times.append(time.perf_counter() - t0)
            cons_gt.append(rep.consistency.score)
            for v in rep.verdicts:
                g = gt[v.claim.type]
                g[0] += v.passed
                g[1] += 1
                if not v.passed:
                    failures.append((i, v.claim.describe(), v.evidence))
            other = claims[(i + 1) % len(claims)]
            for v in judge(frames, other, fps=fps).verdicts:
                truth = holds(spec, v.claim)
                m = mm[v.claim.type]
                m[0] += v.passed
                m[1] += truth
                m[2] += v.passed == truth
                m[3] += 1
        T, H, W = clips[0][0].shape[:3]
        n_noise = max(args.n // 5, 20)
        for j in range(n_noise):
            kind = "uniform" if j % 2 == 0 else "smooth"
            frames, fps = through_mp4(noise_clip(kind, nrng, T, H, W), args.fps, tmp)
            rep = judge(frames, claims[j % len(claims)], fps=fps)
            cons_noise.append(rep.consistency.score)
            for v in rep.verdicts:
                nz[v.claim.type][0] += v.passed
                nz[v.claim.type][1] += 1

    lines = [
        f"Judge validation: {args.n} random specs at {args.size}x{args.size}, {args.fps:g} fps, "
        f"through H.264 (write_mp4 -> read_frames); {n_noise} noise clips (uniform and smooth).",
        "",
        "| claim type | n | GT pass % | mismatched n | mismatched pass % | oracle % | "
        "mismatched accuracy % | noise n | noise pass % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in ClaimType:
        g, m, z = gt[t], mm[t], nz[t]
        noise = pct(*z) if t in OBJECT_CLAIMS else f"({pct(*z)})"
        lines.append(
            f"| {t} | {g[1]} | {pct(*g)} | {m[3]} | {pct(m[0], m[3])} | {pct(m[1], m[3])} | "
            f"{pct(m[2], m[3])} | {z[1]} | {noise} |"
        )
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    lines += [
        "",
        "Noise pass % in parentheses: camera and background claims are not object claims (a still "
        "noise clip may well have a static camera).",
        "",
        f"Consistency score (0..100): ground truth median {q(cons_gt, 50):.1f} "
        f"(p5 {q(cons_gt, 5):.1f}, min {min(cons_gt):.1f}); noise median {q(cons_noise, 50):.1f} "
        f"(p95 {q(cons_noise, 95):.1f}, max {max(cons_noise):.1f}).",
        f"Judge time per {args.size}x{args.size}x{T} clip: median {1000 * q(times, 50):.1f} ms, "
        f"p95 {1000 * q(times, 95):.1f} ms.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for f in failures[: args.failures]:
        print(*f, sep=" | ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
