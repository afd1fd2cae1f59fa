"""Long videos end to end: memory flat in length, compute per second of video, identity across the
segment boundaries, and the 2-minute 1080p30 file (issue 4).

    .venv/bin/python bench/long_video.py [--model DIR] [--seconds 10 120] [--hd-seconds 120]
        [--out out/long] [--prompt P ... | --suite familiar --n 12] [--seed N] [--context 1|2]
        [--continue-cfg C]

Each generation runs in its own process (`mutoscope generate`'s code path, generate()), which
reports its peak RSS (ru_maxrss) and the stage timings. The base-rate videos are then judged at
every segment boundary (eval/controls.py, boundary_identity), and the objects' cover of the frame is
reported segment by segment. --hd-seconds 0 skips the 1080p30 run. --suite takes the prompts from
an eval suite (its first --n), so that extension is measured over more scenes than a few hand-written
prompts, each generated with --seed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from mutoscope.allocator import reexec_tuned
reexec_tuned()  # glibc's malloc as the `mutoscope` command has it
import torch
from mutoscope.generate import GenerationRequest, generate, load_model
torch.set_num_threads(len(os.sched_getaffinity(0)))
model, out, kw = sys.argv[1] or None, sys.argv[2], json.loads(sys.argv[3])
t0 = time.perf_counter()
pipe = load_model(model)
result = generate(pipe, GenerationRequest(**kw), out)
print(json.dumps({"wall_s": time.perf_counter() - t0, "timings": result.timings,
                  "segments": result.record["segments"], "frames": result.record["frames"],
                  "context": result.record["context"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PROMPT = "a red ball and a blue square move on a gray checkerboard"


def run(model: str | None, out: Path, **kw) -> dict:
    kw = {"prompt": PROMPT, "seed": 1, **kw}
    proc = subprocess.run([sys.executable, "-c", CHILD, model or "", str(out), json.dumps(kw)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 120])
    parser.add_argument("--hd-seconds", type=float, default=120)
    parser.add_argument("--out", default="out/long")
    parser.add_argument("--prompt", nargs="+", default=[PROMPT], help="base-rate runs: one per prompt")
    parser.add_argument("--suite", default=None, help="take the prompts from this eval suite instead")
    parser.add_argument("--n", type=int, default=12, help="with --suite: its first N prompts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--context", type=int, default=None, help="latent frames a continuation is given")
    parser.add_argument("--continue-cfg", type=float, default=None, help="guidance of continuing segments")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from mutoscope.eval.controls import boundary_identity
    from mutoscope.eval.runner import object_cover
    from mutoscope.generate import load_model
    from mutoscope.post.mp4 import read_frames
    from mutoscope.world.judge.perception import perceive

    if args.suite:
        from mutoscope.eval.suites import suite

        args.prompt = [p.text for p in suite(args.suite, args.n)]
    cfg = load_model(args.model).config
    td, base = cfg.vae.temporal_down, cfg.frames
    results = {}
    for seconds, (p, prompt) in itertools.product(args.seconds, enumerate(args.prompt)):
        name = f"base_{seconds:g}s" + (f"_p{p}" if len(args.prompt) > 1 else "")
        path = out / f"{name}.mp4"
        r = run(
            args.model,
            path,
            seconds=seconds,
            prompt=prompt,
            seed=args.seed,
            context=args.context,
            continue_cfg=args.continue_cfg,
        )
        frames = read_frames(path)
        step = base - r["context"] * td  # the new frames of a continuing segment
        bounds = [base + k * step for k in range(r["segments"] - 1)]
        kept = boundary_identity(frames, cfg.fps, bounds)
        r["boundaries"], r["identity_kept"] = len(kept), sum(kept) / max(1, len(kept))
        # The same measure half a segment away from every boundary: what one segment keeps by itself,
        # so that a loss at the boundaries can be told from the model's own flicker.
        inside = boundary_identity(frames, cfg.fps, [b + step // 2 for b in bounds])
        r["identity_kept_mid_segment"] = sum(inside) / max(1, len(inside))
        # How much of the frame the objects cover, segment by segment (the judge's object mask, as the
        # eval report's object_cover): a continuation that paints more each time grows its objects.
        cover = object_cover(perceive(frames))
        r["object_cover_by_segment"] = [
            round(float(cover[a:b].mean()), 4)
            for a, b in zip([0, *bounds], [*bounds, len(frames)], strict=True)
        ]
        r["compute_s_per_video_s"] = r["wall_s"] / seconds
        r["prompt"] = prompt
        results[name] = r
        print(f"{seconds:g} s at {cfg.fps:g} fps: {json.dumps(r)}", flush=True)
    total = sum(r["boundaries"] for r in results.values())  # the base-rate runs: the HD one comes next
    kept = sum(r["identity_kept"] * r["boundaries"] for r in results.values())
    print(f"identity kept at the boundaries, all runs: {kept:.0f}/{total} = {kept / max(1, total):.1%}")
    growth = [
        r["object_cover_by_segment"][-1] / max(r["object_cover_by_segment"][0], 1e-4)
        for r in results.values()
    ]
    print("object cover, last segment / first: " + ", ".join(f"{g:.2f}" for g in growth))
    geo = float(np.exp(np.mean(np.log(np.maximum(growth, 1e-3)))))  # a segment that lost its objects: 0
    print(f"median {float(np.median(growth)):.2f}, geometric mean {geo:.2f}")
    if args.hd_seconds:
        r = run(
            args.model, out / f"hd_{args.hd_seconds:g}s.mp4", seconds=args.hd_seconds, fps=30, size="1080p"
        )
        r["compute_s_per_video_s"] = r["wall_s"] / args.hd_seconds
        results[f"1080p30_{args.hd_seconds:g}s"] = r
        print(f"{args.hd_seconds:g} s at 1080p30: {json.dumps(r)}", flush=True)
    (out / "long.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
