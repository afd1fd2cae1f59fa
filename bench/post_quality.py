"""Quality and speed of the post stages (issue 4): frame interpolation 8 -> 30 fps, x4 upscaling.

    .venv/bin/python bench/post_quality.py [--clips 16] [--threads 2] [--interp DIR] [--sr DIR]

On `--clips` clips of the held-out world (seed tasks.HELD_OUT_SEED, never trained on):
- interpolation: PSNR at every 30 fps time strictly between two 8 fps base frames (truth rendered
  at 120 fps) of the model, of the linear cross-fade and of repeating the nearest base frame;
- super-resolution: PSNR at 256x256 (4 frames a scene, at 2 fps) of the model and of bicubic
  against the 256x256 render; and at 1080x1080 (the first `--clips-1080` scenes) of the model +
  OpenCV bicubic resize against bicubic 64 -> 1080 straight, both against the 1080x1080 render;
- speed: output frames/s of interpolate_stream (64x64, 8 -> 30 fps) and of upscale_stream to
  1920x1080 (the network on the 64x36 crop, then the resize), and what 3600 frames (2 min at
  30 fps) would take. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np
import torch

from mutoscope.allocator import reexec_tuned
from mutoscope.post.interpolate import (
    blend,
    interpolate_stream,
    load_interpolator,
    predict,
    to_float,
    to_uint8,
)
from mutoscope.post.upscale import bicubic, crop_to_aspect, load_upscaler, resize, upscale, upscale_frames
from mutoscope.train.post_tasks import SR_FPS, held_out_pairs, held_out_triplets, psnr
from mutoscope.train.tasks import HELD_OUT_SEED
from mutoscope.world.render import render
from mutoscope.world.sample import sample_spec


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@torch.no_grad()
def interp_quality(model, clips: int) -> dict[str, float]:
    d = held_out_triplets(model.cfg, clips)
    f0, f1, t = (d[k].split(64) for k in ("frame0", "frame1", "t"))
    pred = torch.cat([predict(model, *b) for b in zip(f0, f1, t, strict=True)])  # as the stream runs it
    nearest = torch.where(d["t"].view(-1, 1, 1, 1) < 0.5, d["frame0"], d["frame1"])
    fade = blend(d["frame0"], d["frame1"], d["t"])
    return {"model": psnr(pred, d["target"]), "blend": psnr(fade, d["target"]),
            "nearest": psnr(nearest, d["target"]), "frames": len(pred)}  # fmt: skip


@torch.no_grad()
def sr_quality(model, clips: int, clips_1080: int) -> dict[str, float]:
    d = held_out_pairs(model.cfg, clips)
    low = to_uint8(d["low"])  # the uint8 renders again, exactly
    pred = torch.cat([to_float(upscale_frames(model, low[i : i + 16])) for i in range(0, len(low), 16)])
    out = {
        "model": psnr(pred, d["high"]),
        "bicubic": psnr(bicubic(d["low"], 4), d["high"]),
        "frames": len(pred),
    }
    ours, base = [], []
    for c in range(clips_1080):
        spec = sample_spec(np.random.default_rng([HELD_OUT_SEED, c]))
        low, truth = render(spec, 64, 64, SR_FPS), render(spec, 1080, 1080, SR_FPS)
        ours.append(psnr_uint8(upscale(low, (1080, 1080), model), truth))
        base.append(psnr_uint8(resize(low, (1080, 1080)), truth))  # OpenCV bicubic, 64 -> 1080
    out.update(model_1080=float(np.mean(ours)), bicubic_1080=float(np.mean(base)))
    return out


def base_frames(clips: int) -> np.ndarray:
    """Held-out clips at 64x64, 8 fps, end to end: the frames a long generated video would have."""
    return np.concatenate([render(sample_spec(np.random.default_rng([HELD_OUT_SEED, c])), 64, 64, 8)
                           for c in range(clips)])  # fmt: skip


def speed(interp, sr, frames: np.ndarray) -> dict[str, float]:
    start = time.perf_counter()
    n = sum(len(f) for f in interpolate_stream(np.split(frames, len(frames) // 16), 8, 30, interp))
    out = {"interp_fps": n / (time.perf_counter() - start), "interp_frames": n}
    low = crop_to_aspect(np.resize(frames, (n, 64, 64, 3)), (1920, 1080))  # n frames, as after interp
    start = time.perf_counter()
    ups = [upscale_frames(sr, low[i : i + 16]) for i in range(0, n, 16)]
    out["sr_fps"] = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for u in ups:
        resize(u, (1920, 1080))
    out["resize_fps"] = n / (time.perf_counter() - start)
    return out


def main() -> int:
    reexec_tuned()  # glibc's malloc as the `mutoscope` command has it (MUTOSCOPE_MALLOC=system: not)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16, help="held-out clips for PSNR")
    ap.add_argument("--clips-1080", type=int, default=4, help="held-out scenes for PSNR at 1080x1080")
    ap.add_argument("--speed-clips", type=int, default=8, help="2 s clips run through both stages for speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--interp", help="exported directory or interp run (default: the shipped weights)")
    ap.add_argument("--sr", help="exported directory or sr run (default: the shipped weights)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    interp, sr = load_interpolator(args.interp), load_upscaler(args.sr)
    qi = interp_quality(interp, args.clips)
    qs = sr_quality(sr, args.clips, args.clips_1080)
    sp = speed(interp, sr, base_frames(args.speed_clips))
    per_3600 = {k: 3600 / sp[k] for k in ("interp_fps", "sr_fps", "resize_fps")}
    command = shlex.join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    print(f"`{command}`, torch threads {args.threads}, bf16 autocast {interp.bf16 and sr.bf16}\n")
    print("| stage | measure | model | baseline(s) |")
    print("|---|---|---:|---|")
    print(f"| interpolation 8 -> 30 fps, 64x64 | PSNR at the in-between times ({qi['frames']} frames, "
          f"{args.clips} clips) | {qi['model']:.2f} dB | blend {qi['blend']:.2f} dB, "
          f"nearest frame {qi['nearest']:.2f} dB |")  # fmt: skip
    print(f"| super-resolution x4 | PSNR at 256x256 ({qs['frames']} frames) | {qs['model']:.2f} dB | "
          f"bicubic {qs['bicubic']:.2f} dB |")  # fmt: skip
    print(f"| super-resolution + resize | PSNR at 1080x1080 ({args.clips_1080 * 4} frames) | "
          f"{qs['model_1080']:.2f} dB | bicubic 64 -> 1080 {qs['bicubic_1080']:.2f} dB |")  # fmt: skip
    print(f"| interpolation | frames/s out (64x64) | {sp['interp_fps']:.0f} | 3600 frames: "
          f"{per_3600['interp_fps']:.0f} s |")  # fmt: skip
    print(f"| super-resolution, 64x36 -> 256x144 | frames/s | {sp['sr_fps']:.0f} | 3600 frames: "
          f"{per_3600['sr_fps']:.0f} s |")  # fmt: skip
    print(f"| resize 256x144 -> 1920x1080 (OpenCV bicubic) | frames/s | {sp['resize_fps']:.0f} | "
          f"3600 frames: {per_3600['resize_fps']:.0f} s |")  # fmt: skip
    total = sum(per_3600.values())
    print(f"| all three, 8 fps 64x64 -> 30 fps 1920x1080 | 3600 frames (2 min) | {total:.0f} s | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
