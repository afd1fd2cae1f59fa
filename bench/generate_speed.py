"""Speed of THE inference path: a 2-second clip through generate(), with the share of each part.

    .venv/bin/python bench/generate_speed.py [--preset tiny | --model DIR] [--steps 12 16 20 25]
        [--cfg 5] [--repeats 3] [--threads N] [--fp32] [--omp-wait passive|active] [--quality] [--cold]
        [--image-first | --no-image-first]

Measures, in one process: imports, model load (text encoder + DiT + VAE), then per step count a
warm-up generation and `--repeats` timed ones (each with a new prompt, so the text encoder's cache
misses as for a fresh request), reporting the median wall time, the time per step and the shares of
the DiT (denoise), VAE decode, text encoder and MP4 encode, and the peak RSS. `--quality` compares
the bf16 DiT against fp32 on the same seed (weights moved off their zero init so that the DiT's
output is not trivially zero). Bars: <= 2 s wall for a 2 s clip on 2 cores, peak RSS <= 2 GiB,
load <= 3 s. Random weights time the same as trained ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "a red ball bounces on sandy dunes",
    "two blue squares glide to the left while the camera pans right",
    "a small yellow star spins above a green triangle",
    "a person walks to the right on a brick wall background",
    "a large purple ring falls, then bounces",
    "a pink circle zigzags as the camera zooms in",
    "three white triangles drift up over a night sky",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--preset", default="tiny", help="random-initialised preset (default tiny)")
    src.add_argument("--model", default=None, help="a model directory instead")
    ap.add_argument("--steps", type=int, nargs="+", default=[12, 16, 20, 25])
    ap.add_argument("--cfg", type=float, default=5.0, help="guidance scale (1 = no CFG batch)")
    ap.add_argument("--sampler", default="euler")
    ap.add_argument(
        "--image-first",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the text-to-image stage first, or not (default: the model's sample.json)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--fp32", action="store_true", help="fp32 where the CPU has native bf16 too")
    ap.add_argument(
        "--omp-wait",
        choices=("passive", "active"),
        default="passive",
        help="OMP_WAIT_POLICY (default passive, as `mutoscope generate` sets it)",
    )
    ap.add_argument("--quality", action="store_true", help="also compare bf16 with fp32 outputs")
    ap.add_argument("--cold", action="store_true", help="also time whole `mutoscope generate` processes")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.omp_wait:  # must be set before torch (and its OpenMP runtime) loads
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait.upper()
    from mutoscope.allocator import reexec_tuned

    reexec_tuned()  # glibc's malloc as the `mutoscope` command has it (MUTOSCOPE_MALLOC=system: not)

    start = time.perf_counter()
    import torch

    from mutoscope.generate import GenerationRequest, generate, load_model

    import_s = time.perf_counter() - start
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    # bf16 where the CPU does it natively, as `mutoscope generate` (emulated, the VAE decode ran 55x slower)
    bf16 = False if args.fp32 else None
    pipe = load_model(args.model, preset=None if args.model else args.preset, bf16=bf16)
    load_s = time.perf_counter() - start - import_s
    cfg = pipe.config
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"malloc {os.environ.get('MUTOSCOPE_MALLOC', 'system')}, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    dit_m, vae_m = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (pipe.dit, pipe.vae))
    print(
        f"# model {pipe.model_id}: DiT {dit_m:.1f}M params ({'bf16' if pipe.bf16 else 'fp32'}), "
        f"VAE {vae_m:.2f}M, "
        f"clip {cfg.width}x{cfg.height}, {cfg.frames} frames at {cfg.fps:g} fps"
    )
    print(
        f"imports {import_s:.2f} s, model load {load_s:.2f} s (in process; +python start-up for a CLI call)"
    )

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        print("| steps | wall s (median) | CPU s | s / step | DiT | VAE decode | text | MP4 | video s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for steps in args.steps:
            runs = []
            for i in range(args.repeats + 1):  # the first is a warm-up
                prompt = f"{PROMPTS[i % len(PROMPTS)]} {steps}"  # new text each time: a cache miss
                req = GenerationRequest(prompt, seed=i, steps=steps, cfg=args.cfg, sampler=args.sampler,
                                        image_first=args.image_first)  # fmt: skip
                cpu = time.process_time()  # all threads: the wall time x threads on an idle machine
                timings = generate(pipe, req, Path(tmp) / f"{steps}_{i}.mp4").timings
                runs.append({**timings, "cpu_s": time.process_time() - cpu})
            t = {k: statistics.median(r[k] for r in runs[1:]) for k in runs[1]}
            share = {k: t[f"{k}_s"] / t["total_s"] for k in ("denoise", "decode", "text", "encode")}
            video_s = cfg.frames / cfg.fps
            results.append({"steps": steps, **t, **{f"share_{k}": v for k, v in share.items()}})
            print(
                f"| {steps} | {t['total_s']:.2f} | {t['cpu_s']:.2f} | {t['step_s'] * 1000:.0f} ms | "
                + " | ".join(f"{share[k]:.0%}" for k in ("denoise", "decode", "text", "encode"))
                + f" | {video_s:g} |"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")

    quality = None
    if args.quality:
        quality = compare_bf16(args, load_model, GenerationRequest, generate, torch)
        print(
            f"bf16 vs fp32 DiT, same seed, {args.steps[0]} steps: final latent relative error "
            f"{quality['latent_rel_err']:.4f}, video mean |diff| {quality['video_mean_abs']:.2f} / 255"
        )
    cold = None
    if args.cold:
        cold = time_cli(args)
        print(
            f"cold `mutoscope generate` process ({args.steps[0]} steps, python start-up, imports, load, "
            f"generate, write): median {cold['wall_s']:.2f} s, peak RSS {cold['peak_rss_mib']:.0f} MiB"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "import_s": import_s,
                    "load_s": load_s,
                    "peak_rss_mib": peak,
                    "runs": results,
                    "quality": quality,
                    "cold": cold,
                },
                indent=2,
            )
        )
    return 0


def time_cli(args) -> dict:
    """Wall time of whole CLI processes, the way a user runs one generation."""
    import subprocess

    exe = Path(sys.executable).with_name("mutoscope")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            model = ["--model", args.model] if args.model else ["--preset", args.preset]
            cmd = [
                str(exe),
                "generate",
                PROMPTS[i % len(PROMPTS)],
                *model,
                "--steps",
                str(args.steps[0]),
                "--cfg",
                str(args.cfg),
                "--seed",
                str(i),
                "--out",
                f"{tmp}/{i}.mp4",
                "--quiet",
            ]
            start = time.perf_counter()
            subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                env={**os.environ, "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"]},
            )
            walls.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": statistics.median(walls), "walls": walls, "peak_rss_mib": peak}


def compare_bf16(args, load_model, GenerationRequest, generate, torch) -> dict:
    """The same perturbed model in bf16 and fp32, one seed: how far apart the outputs land."""
    from mutoscope.post.mp4 import read_frames

    pipes = {}
    for bf16 in (True, False):
        p = load_model(args.model, preset=None if args.model else args.preset, bf16=bf16)
        if not args.model:
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for w in p.dit.parameters():  # identical perturbation, then cast to the pipe's dtype
                    w.copy_((w.float() + 0.02 * torch.randn(w.shape, generator=g)).to(w.dtype))
        pipes[bf16] = p
    latents, frames = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for bf16, p in pipes.items():
            captured = {}
            decode = p.vae.iter_decode

            def spy(z, chunk=1, decode=decode, captured=captured):
                captured["z"] = z.clone()
                return decode(z, chunk)

            p.vae.iter_decode = spy  # record the final latents on their way to the decoder
            req = GenerationRequest(PROMPTS[0], seed=0, steps=args.steps[0], cfg=args.cfg)
            out = Path(tmp) / f"{bf16}.mp4"
            generate(p, req, out)
            latents[bf16], frames[bf16] = captured["z"], read_frames(out).astype(float)
    rel = ((latents[True] - latents[False]).norm() / latents[False].norm()).item()
    return {"latent_rel_err": rel, "video_mean_abs": float(abs(frames[True] - frames[False]).mean())}


if __name__ == "__main__":
    sys.exit(main())
