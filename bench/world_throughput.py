"""Throughput of the world stream through a DataLoader: clips per second, per number of workers.

    .venv/bin/python bench/world_throughput.py [--workers 0 1 2] [--batches 20] [--batch 32]

Each configuration builds a fresh DataLoader over WorldStream (64x64, 16 frames at 8 fps by
default), with the collate that produces the model's float (B, C, T, H, W) batches, draws
`--warmup` batches (worker start-up, first imports) and then times `--batches` more. Goal: >= 200
clips/s with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import torch
from torch.utils.data import DataLoader

from mutoscope.data.world_stream import WorldStream, collate


def measure(workers: int, args: argparse.Namespace) -> tuple[float, float]:
    """(clips per second, seconds per batch) over `args.batches` batches after the warm-up."""
    stream = WorldStream(seed=args.seed, width=args.size, height=args.size, fps=args.fps,
                         seconds=args.frames / args.fps)  # fmt: skip
    loader = DataLoader(stream, batch_size=args.batch, num_workers=workers, collate_fn=collate,
                        prefetch_factor=4 if workers else None,
                        persistent_workers=False)  # fmt: skip
    it = iter(loader)
    for _ in range(args.warmup):
        next(it)
    start = time.perf_counter()
    clips = 0
    for _ in range(args.batches):
        batch = next(it)
        clips += batch["video"].shape[0]
    seconds = time.perf_counter() - start
    expected = (args.batch, 3, args.frames, args.size, args.size)
    assert tuple(batch["video"].shape) == expected, batch["video"].shape
    del it, loader  # shut the workers down before the next configuration
    return clips / seconds, seconds / args.batches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batches", type=int, default=20, help="timed batches per configuration")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the loader's work is numpy / Pillow per clip; keep cores for workers

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"clips: {args.size}x{args.size}, {args.frames} frames, batch {args.batch}, "
          f"{args.warmup} warm-up + {args.batches} timed batches")  # fmt: skip
    print("| workers | clips/s | s/batch |")
    print("|--------:|--------:|--------:|")
    for workers in args.workers:
        rate, per_batch = measure(workers, args)
        print(f"| {workers:7d} | {rate:7.1f} | {per_batch:7.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
