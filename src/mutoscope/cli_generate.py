"""`mutoscope generate "PROMPT" [options]`: text to video with the shipped model (or --model / --preset).

One prompt writes OUT (default outputs/<prompt>_<seed>.mp4) with its poster .png and record .json.
`--prompts FILE` is batch mode: one prompt per line (blank lines and # comments skipped), or JSONL
lines like {"prompt": "...", "seed": 3, "negative_prompt": "...", "steps": 20, "cfg": 5, "seconds": 2,
"sampler": "euler"}; the command-line options are the defaults for every line; the model is loaded
once; videos go to the --out directory as 000_<prompt>.mp4, 001_... . Bad input exits 2 before any
model is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
from pathlib import Path

from mutoscope.errors import UserError

REQUEST_KEYS = ("prompt", "negative_prompt", "seed", "steps", "cfg", "seconds", "sampler")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a video from a text prompt",
        description=__doc__.splitlines()[0],
        epilog="Batch mode: --prompts FILE (one prompt per line, or JSONL); see the module docs.",
    )
    p.add_argument("prompt", nargs="?", help="what the video shows, e.g. 'a red ball bounces'")
    p.add_argument("--prompts", help="batch mode: a file of prompts (one per line, or JSONL)")
    p.add_argument("--negative", default="", help="negative prompt: what to steer away from")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, recorded)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale, >= 0 (default: the model's)")
    p.add_argument(
        "--seconds", type=float, default=2.0, help="video length (default 2; clamped to the base clip)"
    )
    p.add_argument(
        "--sampler", choices=("euler", "heun"), default=None, help="ODE sampler (default: the model's)"
    )
    p.add_argument("--out", default=None, help="output .mp4 (one prompt) or directory (default: outputs/)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    src.add_argument("--preset", default=None, help="a randomly initialised preset instead (for testing)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "video"


def read_prompts(path: str) -> list[dict]:
    """Requests (dicts of REQUEST_KEYS) from a prompts file; UserError naming the bad line."""
    p = Path(path)
    if not p.is_file():
        raise UserError("generate.prompts.missing", f"no such prompts file: {p}")
    items = []
    for number, line in enumerate(p.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    "generate.prompts.invalid", f"{p}:{number}: not valid JSON ({e.msg})"
                ) from None
            if "negative" in item:
                item["negative_prompt"] = item.pop("negative")
            unknown = set(item) - set(REQUEST_KEYS)
            if unknown or not isinstance(item.get("prompt"), str):
                why = f"unknown keys {sorted(unknown)}" if unknown else "no 'prompt' string"
                raise UserError("generate.prompts.invalid", f"{p}:{number}: {why}")
        else:
            item = {"prompt": line}
        items.append(item)
    if not items:
        raise UserError("generate.prompts.empty", f"{p} holds no prompts")
    return items


def run(args: argparse.Namespace) -> int:
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("generate.prompt.missing", "give a PROMPT or --prompts FILE (one of them)")
    defaults = {
        "negative_prompt": args.negative,
        "seed": args.seed,
        "steps": args.steps,
        "cfg": args.cfg,
        "seconds": args.seconds,
        "sampler": args.sampler,
    }
    if args.prompts is None:
        items = [{**defaults, "prompt": args.prompt}]
    else:
        items = [{**defaults, **item} for item in read_prompts(args.prompts)]
        if args.out is not None and args.out.lower().endswith(".mp4"):
            raise UserError("generate.out.invalid", "with --prompts, --out is a directory")
    if any(not str(item["prompt"]).strip() for item in items):
        raise UserError("input.prompt.empty", "the prompt is empty")
    for item in items:  # a seed chosen here is in the file name too
        item["seed"] = secrets.randbelow(2**31) if item["seed"] is None else item["seed"]

    # OpenMP threads that spin while waiting stall when another process holds a core: measured on this
    # 2-core machine under load, 16 steps took 12.8 s spinning and 1.9 s passive. Read when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from tqdm import tqdm

    from mutoscope.generate import GenerationRequest, generate, load_model

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core this process may use
    pipe = load_model(args.model, preset=args.preset, device=args.device)
    for index, item in enumerate(items):
        req = GenerationRequest(**item)
        out = _out_path(args, req, index, batch=args.prompts is not None)
        out.parent.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=pipe.sample.steps if req.steps is None else req.steps,
            desc="denoise",
            unit="step",
            disable=args.quiet,
            leave=False,
        )
        stage = ["denoise"]

        def progress(name: str, done: int, total: int, bar=bar, stage=stage) -> None:
            if name != stage[0]:  # a new stage: decode counts latent frames
                stage[0] = name
                bar.set_description(name)
                bar.reset(total=total)
            bar.update(done - bar.n)

        try:
            result = generate(pipe, req, out, callback=progress)
        finally:
            bar.close()
        t = result.timings
        print(
            f"{result.video}  seed {result.seed}, {result.record['seconds']:g} s of video in "
            f"{t['total_s']:.2f} s ({result.record['steps']} steps, model {pipe.model_id})"
        )
        for note in result.record["notes"]:
            print(f"  note: {note}")
    return 0


def _out_path(args: argparse.Namespace, req, index: int, batch: bool) -> Path:
    name = f"{_slug(req.prompt)}_{req.seed}.mp4"
    if batch:
        return Path(args.out or "outputs") / f"{index:03d}_{name}"
    if args.out is not None and args.out.lower().endswith(".mp4"):
        return Path(args.out)
    return Path(args.out or "outputs") / name
