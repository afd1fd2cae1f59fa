"""`mutoscope generate "PROMPT" [options]`: text to video with the shipped model (or --model / --preset).

One prompt writes OUT (default outputs/<prompt>_<seed>.mp4) with its poster .png and record .json.
`--prompts FILE` is batch mode: one prompt per line (blank lines and # comments skipped), or JSONL
lines like {"prompt": "...", "seed": 3, "negative_prompt": "...", "steps": 20, "cfg": 5, "seconds": 2,
"sampler": "euler"}; the command-line options are the defaults for every line; the model is loaded
once; videos go to the --out directory as 000_<prompt>.mp4, 001_... . Bad input exits 2 before any
model is loaded.

Controls (docs in control_inputs.py): --first-frame / --last-frame IMAGE, --loop, --camera (a preset
such as pan_left, or axes as JSON: '{"pan": 5, "zoom": -3}', or @path.json holding axes or a path),
--brush MASK PATH_JSON (repeatable up to 5; PATH_JSON: '[[0, 0.2, 0.5], [2, 0.8, 0.5]]', seconds and
x, y in frame units), --static-mask IMAGE, --extend VIDEO.mp4, --storyboard FILE.json (a list of
{"prompt", "seconds"} shots), --fps 30 (learned interpolation), --size 1080p | 1080p-vertical |
1080p-square | WxH (learned super-resolution, then resampling). --seconds beyond the base clip
extends it segment by segment, e.g. --seconds 120.
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
    p.add_argument("--continue-cfg", type=float, default=None,
                   help="guidance of segments that start from known frames: --first-frame, --extend and "
                        "each later segment of a long video (default: the model's)")  # fmt: skip
    p.add_argument("--image-first", action=argparse.BooleanOptionalAction, default=None,
                   help="draw a segment's first frame from the prompt first, then the segment from it "
                        "(default: the model's)")  # fmt: skip
    p.add_argument("--image-cfg", type=float, default=None,
                   help="guidance of that first frame, >= 0 (default: the model's)")  # fmt: skip
    p.add_argument("--known-start", type=float, default=None,
                   help="flow time in (0, 1] a segment from a first keyframe starts at, from it repeated; "
                        "1: from noise (default: the model's)")  # fmt: skip
    p.add_argument("--seconds", type=float, default=2.0, help="video length (default 2; longer is extended)")
    p.add_argument(
        "--sampler",
        choices=("euler", "heun", "ancestral"),
        default=None,
        help="sampler (default: the model's)",
    )
    p.add_argument("--out", default=None, help="output .mp4 (one prompt) or directory (default: outputs/)")
    c = p.add_argument_group("controls")
    c.add_argument("--first-frame", metavar="IMAGE", help="start from this image (PNG/JPEG, any size)")
    c.add_argument("--last-frame", metavar="IMAGE", help="end on this image")
    c.add_argument("--loop", action="store_true", help="end on the first frame")
    c.add_argument("--camera", help="preset (pan_left, zoom_in, ...), axes JSON, or @file.json")
    c.add_argument("--brush", nargs=2, action="append", metavar=("MASK", "PATH_JSON"), default=None,
                   help="motion brush region: mask image and [[seconds, x, y], ...] (up to 5)")  # fmt: skip
    c.add_argument("--static-mask", metavar="IMAGE", help="regions that must not move")
    c.add_argument("--extend", metavar="VIDEO", help="continue this MP4 from its last frames")
    c.add_argument("--storyboard", metavar="FILE", help='JSON list of {"prompt", "seconds"} shots')
    c.add_argument(
        "--fps", type=float, default=None, help="output frame rate, e.g. 30 (default: the model's)"
    )
    c.add_argument("--size", default=None, help="output size: 1080p, 1080p-vertical, 1080p-square or WxH")
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


def _json_arg(text: str, flag: str):
    """A JSON value from the command line, or from a file with @path."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise UserError(f"generate.{flag}.missing", f"no such file: {path}")
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"generate.{flag}.invalid", f"--{flag}: not valid JSON ({e.msg})") from None


def control_args(args: argparse.Namespace) -> dict:
    """The control options given on the command line, as GenerationRequest fields."""
    out = {}
    for key in ("first_frame", "last_frame", "static_mask", "extend", "fps", "size"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    if getattr(args, "loop", False):
        out["loop"] = True
    camera = getattr(args, "camera", None)
    if camera is not None:
        out["camera"] = _json_arg(camera, "camera") if camera.lstrip()[:1] in "{[@" else camera
    if getattr(args, "brush", None):
        out["brush"] = [{"mask": m, "path": _json_arg(path, "brush")} for m, path in args.brush]
    if getattr(args, "storyboard", None) is not None:
        board = _json_arg("@" + args.storyboard, "storyboard")
        if not isinstance(board, list) or not board:
            raise UserError("generate.storyboard.invalid", "the storyboard is a JSON list of shots")
        out["storyboard"] = board
    return out


def run(args: argparse.Namespace) -> int:
    if args.prompt is None and args.prompts is None and args.storyboard is not None:
        args.prompt = "storyboard"  # the shots carry the prompts
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("generate.prompt.missing", "give a PROMPT or --prompts FILE (one of them)")
    defaults = {
        "negative_prompt": args.negative,
        "seed": args.seed,
        "steps": args.steps,
        "cfg": args.cfg,
        "continue_cfg": args.continue_cfg,
        "image_first": args.image_first,
        "image_cfg": args.image_cfg,
        "known_start": args.known_start,
        "seconds": args.seconds,
        "sampler": args.sampler,
        **control_args(args),
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
            if name != stage[0] or total != bar.total:  # a new stage (decode counts latent frames)
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
