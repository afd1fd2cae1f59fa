"""`mutoscope eval --suite dev`: generate a suite's prompts, judge them, write a report with plots.

    mutoscope eval --suite dev --out out/eval                 # the shipped model + both baselines
    mutoscope eval --suite quick --model runs/dit-tiny/export --no-baselines
    mutoscope eval --suite dev --baselines vae --vae candidates/vae-s2  # a VAE's ceiling alone

Writes OUT/rows.jsonl (one judged clip per line), OUT/report.md (the table) and OUT/claims.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mutoscope.errors import UserError

BASELINES = ("truth", "vae", "untrained")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="benchmark a model on a prompt suite with the judge",
                              description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--suite", default="dev",
                   help="prompt suite: dev (240 novel prompts), familiar (240 of training's kind: the "
                        "control for dev) or quick (16 novel)")  # fmt: skip
    p.add_argument("--n", type=int, default=None, help="only the first N prompts of the suite")
    p.add_argument("--skip", type=int, default=0,
                   help="start after the suite's first SKIP prompts (with --n: a slice, so that processes "
                        "can share a suite; bench/eval_rows.py merges their rows)")  # fmt: skip
    p.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument(
        "--continue-cfg",
        type=float,
        default=None,
        help="guidance from a known frame, as --first-frame gives (default: the model's)",
    )
    p.add_argument("--baselines", default=",".join(BASELINES),
                   help="comma list of baselines to run beside the model: truth, vae (the truth through "
                        "the model's VAE: the ceiling of its DiT), untrained")  # fmt: skip
    p.add_argument("--no-baselines", dest="baselines", action="store_const", const="")
    p.add_argument("--vae", default=None,
                   help="the vae baseline through this VAE (a VAE run or a model directory) "
                        "instead of the model's, and no model generated: a VAE's ceiling")  # fmt: skip
    p.add_argument("--first-frame", action="store_true",
                   help="image-to-video: each prompt's ground-truth first frame is given as the first "
                        "keyframe, so the suite measures what the model makes of a known frame")  # fmt: skip
    p.add_argument("--image-first", action=argparse.BooleanOptionalAction, default=None,
                   help="text-to-image, then image-to-video (default: the model's sample.json)")  # fmt: skip
    p.add_argument("--image-cfg", type=float, default=None,
                   help="guidance of the image stage (default: the model's sample.json)")  # fmt: skip
    p.add_argument("--known-start", type=float, default=None,
                   help="time a segment from a first keyframe starts at (default: sample.json)")  # fmt: skip
    p.add_argument("--out", default="out/eval", help="report directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mutoscope.eval.report import markdown, novelty_markdown, plot, summarise
    from mutoscope.eval.runner import run_ground_truth, run_model, run_vae
    from mutoscope.eval.suites import suite
    from mutoscope.generate import load_model

    baselines = [b for b in args.baselines.split(",") if b]
    if args.vae is not None and "vae" not in baselines:
        raise UserError("eval.vae", "--vae measures a VAE's ceiling: add vae to --baselines")
    if args.vae is not None and args.model is not None:
        raise UserError("eval.vae", "--vae measures a VAE's ceiling alone: give --vae or --model, not both")
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise UserError(
            "eval.baselines", f"unknown baseline(s) {', '.join(sorted(unknown))}; use {', '.join(BASELINES)}"
        )
    if args.skip < 0:
        raise UserError("eval.skip", f"--skip must be at least 0, got {args.skip}")
    if args.n is not None and args.n < 1:
        raise UserError("eval.n", f"--n must be at least 1, got {args.n}")
    prompts = suite(args.suite)[args.skip :][: args.n]
    if not prompts:
        raise UserError("eval.skip", f"--skip {args.skip} leaves no prompt of suite {args.suite}")
    # The model (or a candidate VAE alone) before the report is opened: a bad path costs nothing.
    if args.vae is None:
        pipe = load_model(args.model)
        cfg, vae = pipe.config, pipe.vae
    else:
        cfg, vae = _candidate_vae(args.vae)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with open(out / "rows.jsonl", "w") as log:

        def keep(row: dict) -> None:
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            score = f"{sum(v['passed'] for v in row['verdicts'])}/{len(row['verdicts'])}"
            print(f"[{row['source']}] {row['index'] + 1}/{len(prompts)} {score} {row['prompt']}")

        if "truth" in baselines:
            run_ground_truth(prompts, out / "truth", cfg.width, cfg.height, cfg.fps, keep)
        if "vae" in baselines:
            run_vae(prompts, vae, (cfg.width, cfg.height), cfg.fps, out / "vae", keep)
        if args.vae is None:  # a candidate VAE's ceiling is measured alone
            given = {"first_frame": args.first_frame, "continue_cfg": args.continue_cfg,
                     "image_first": args.image_first, "image_cfg": args.image_cfg,
                     "known_start": args.known_start}  # fmt: skip
            run_model(prompts, pipe, "model", out / "model", args.steps, args.cfg, keep, **given)
            if "untrained" in baselines:
                fresh = load_model(preset=cfg.name)
                run_model(prompts, fresh, "untrained", out / "untrained", args.steps, args.cfg, keep, **given)
    summary = summarise(rows)
    table = markdown(summary)
    what = f"VAE {args.vae}" if args.vae else f"model {args.model or 'shipped default'}"
    keyed = ", the truth's first frame given" if args.first_frame else ""
    keyed += {True: ", image first", False: ", not image first", None: ""}[args.image_first]
    keyed += "" if args.image_cfg is None else f", image guidance {args.image_cfg:g}"
    keyed += "" if args.known_start is None else f", the keyframe's segment from t = {args.known_start:g}"
    title = f"# eval: suite {args.suite}, {len(prompts)} prompts{keyed}, {what}\n\n"
    novel = novelty_markdown(summary)
    (out / "report.md").write_text(title + table + "\n" + novel + "\n![claims](claims.png)\n")
    plot(summary, out / "claims.png")
    print(table)
    print(novel)
    print(f"report: {out / 'report.md'}")
    return 0


def _candidate_vae(path: str):
    """(model config, VAE) of a VAE run's EMA weights or a model directory's VAE, in the dtype a
    model's VAE runs in on this machine (generate.load_model's rule), without loading a whole model."""
    import torch

    from mutoscope.generate import bf16_default
    from mutoscope.train.dit_task import load_vae_with_config

    try:
        cfg, vae = load_vae_with_config(path)
    except (ValueError, FileNotFoundError) as e:
        raise UserError("eval.vae", str(e)) from None
    return cfg, vae.to(torch.bfloat16) if bf16_default(torch.device("cpu")) else vae
