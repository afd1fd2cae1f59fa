"""Training throughput of the tiny preset on this machine: samples/s and model FLOP utilisation.

    .venv/bin/python bench/train_throughput.py [--what vae dit] [--steps 20] [--batch 8 16]
        [--threads 2] [--bf16 both] [--vae src/mutoscope/weights/tiny] [--reuse]

Each configuration trains `--steps` steps from scratch in a temporary run directory through the
real loop (mutoscope.train.loop.train: data, forward, backward, AdamW, EMA) and reports the
throughput of the second half of the steps (the first half pays for start-up). FLOPs per step are
counted by torch's FlopCounterMode (forward + backward); MFU is against the matmul peak the loop
measures at the run's start, on this host at these threads (bench/matmul_peak.py). The DiT needs
an exported VAE (`--vae`). With `--reuse` the DiT's second half trains again on the first half's
clips (`--unique-clips`): the throughput of a later epoch, whose latents are kept rather than
encoded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see tests/conftest.py

import torch

from mutoscope.allocator import reexec_tuned
from mutoscope.config import ModelConfig, TrainConfig, load_json, preset
from mutoscope.train.loop import train


def measure(what: str, batch: int, bf16: bool, args: argparse.Namespace) -> dict:
    cfg = preset(args.preset)
    kw = {}
    if what == "dit":
        cfg = dataclasses.replace(cfg, vae=load_json(ModelConfig, Path(args.vae) / "config.json").vae)
        kw["vae_path"] = args.vae
    half = max(1, args.steps // 2)
    tcfg = TrainConfig(what=what, batch_size=batch, max_steps=2 * half, log_every=half, eval_every=0,
                       warmup_steps=1, bf16=bf16, num_workers=1, ckpt_every_s=1e9,
                       unique_clips=half * batch if args.reuse and what == "dit" else 0)  # fmt: skip
    with tempfile.TemporaryDirectory() as run:
        train(cfg, tcfg, run, progress=False, **kw)
        last = json.loads((Path(run) / "log.jsonl").read_text().splitlines()[-1])
    return {"what": what, "batch": batch, "bf16": bf16, "reuse": tcfg.unique_clips > 0,
            "samples_per_s": round(last["samples_per_s"], 2),
            "mfu": round(last.get("mfu", float("nan")), 3)}  # fmt: skip


def main() -> None:
    reexec_tuned()  # glibc's malloc as the `mutoscope` command has it (MUTOSCOPE_MALLOC=system: not)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", nargs="+", default=["vae", "dit"], choices=["vae", "dit"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--bf16", choices=["on", "off", "both"], default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vae", default="src/mutoscope/weights/tiny", help="exported VAE for the DiT")
    parser.add_argument("--reuse", action="store_true", help="DiT: measure a later epoch (latents kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.bf16]
    for what in args.what:
        for batch in args.batch:
            for bf16 in modes:
                print(json.dumps(measure(what, batch, bf16, args)), flush=True)


if __name__ == "__main__":
    main()
