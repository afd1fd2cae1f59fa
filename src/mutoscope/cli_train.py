"""Train the VAE, the DiT or the post stages on the world (resuming from checkpoints), export them.

`mutoscope train vae|dit --preset tiny --run DIR` trains or resumes; `mutoscope train export` ships a
run's EMA weights as safetensors + config.json; `mutoscope train eval-vae` prints reconstruction PSNR.
`mutoscope train interp|sr --run DIR` trains the frame interpolator or the x4 upscaler (issue 4), and
`mutoscope train export-post` ships them to weights/post/.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mutoscope.errors import UserError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the VAE, the DiT or the post stages; export weights",
                                   description=__doc__.splitlines()[0])  # fmt: skip
    sub = parser.add_subparsers(dest="train_command", metavar="WHAT", parser_class=type(parser))
    names = dict(vae="VAE", dit="DiT", interp="frame interpolator", sr="x4 upscaler")
    for what in ("vae", "dit", "interp", "sr"):
        p = sub.add_parser(what, help=f"train the {names[what]} (resumes from --run's checkpoint)")
        if what in ("vae", "dit"):  # the post stages' configs are InterpConfig() and UpscaleConfig()
            p.add_argument("--preset", default="tiny", help="model preset from mutoscope.config.PRESETS")
        p.add_argument("--run", required=True, type=Path, help="run directory: checkpoint, log.jsonl")
        p.add_argument("--steps", type=int, help="train until this step (default: TrainConfig.max_steps)")
        p.add_argument("--batch", type=int, help="global batch size")
        p.add_argument("--lr", type=float)
        p.add_argument("--warmup", type=int, help="linear warm-up steps")
        p.add_argument("--decay-steps", type=int,
                       help="cool the LR down over the last N steps before --steps (0: none)")  # fmt: skip
        p.add_argument("--ema", type=float, help="EMA decay")
        p.add_argument("--seed", type=int)
        p.add_argument("--workers", type=int, help="DataLoader workers rendering the world")
        p.add_argument("--log-every", type=int)
        p.add_argument("--eval-every", type=int)
        p.add_argument("--eval-clips", type=int, help="held-out clips per evaluation")
        p.add_argument("--ckpt-every", type=float, help="seconds between checkpoints")
        p.add_argument("--no-bf16", action="store_true", help="train in float32")
        p.add_argument("--act-ckpt", action="store_true", help="activation checkpointing")
        p.add_argument("--threads", type=int, help="torch CPU threads (per process)")
        p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
        p.add_argument("--init", type=Path, help="a new run starts from this exported model's weights")
        if what == "vae":
            p.add_argument("--crop", type=int, help="train on random crops of this size (0: full frame)")
            p.add_argument("--crop-frames", type=int, help="frames per crop (a multiple of 4; 0: full clip)")
            p.add_argument("--decoder-only", action="store_true",
                           help="train the decoder alone (with --init: the latent space, and so every DiT "
                                "trained on it, stays valid)")  # fmt: skip
            p.add_argument("--weight-painted", action="store_true",
                           help="weight the pixels the reconstruction paints saturated as the objects' "
                                "(no colored fringes)")  # fmt: skip
        elif what == "dit":
            p.add_argument("--vae", type=Path, help="exported VAE directory or VAE run directory (frozen)")
            p.add_argument("--caption-dropout", type=float)
            p.add_argument("--object-weight", type=float, help="extra loss weight on the objects' latents")
            p.add_argument("--object-weight-power", type=float,
                           help="the object weight fades as (1 - t) ** this")  # fmt: skip
            p.add_argument("--object-weight-keyed", type=float,
                           help="the object weight of samples given frames")  # fmt: skip
            p.add_argument("--extend-trip", action="store_true",
                           help="extension samples see their known latents after generation's decode-encode "
                                "trip")  # fmt: skip
            p.add_argument(
                "--t-shift",
                type=float,
                help="draw training times shifted towards noise by this factor (SD3's shift)",
            )
            p.add_argument("--unique-clips", type=int,
                           help="epochs over this many clips, encoded once (0: every clip new)")  # fmt: skip
            p.add_argument("--images-per-sample", type=int,
                           help="text-to-image samples (first latent frames of other fixed clips) added per "
                                "video sample (needs --unique-clips)")  # fmt: skip
            p.add_argument("--image-only", action="store_true", default=None,
                           help="train a text-to-image model for the image stage: every sample the first "
                                "latent frame of a clip, without controls")  # fmt: skip
        p.set_defaults(func=run_train, what=what)
    p = sub.add_parser("export", help="write EMA weights as safetensors + config.json")
    p.add_argument("--vae-run", type=Path, help="a VAE run: its weights, latent statistics measured")
    p.add_argument(
        "--dit-run",
        type=Path,
        help="a DiT run (or an exported model): its weights with the VAE "
        "it was trained on, or with --vae-run's decoder when that run trained the decoder alone",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output directory (e.g. src/mutoscope/weights/tiny)"
    )
    p.add_argument("--new-encoder", action="store_true",
                   help="with both runs: ship --vae-run's whole VAE, encoder included (the DiT was trained "
                        "on another encoder: measure before shipping)")  # fmt: skip
    p.add_argument("--raw-dit", action="store_true",
                   help="the DiT run's raw weights, not its EMA (where eval_raw_loss is lower)")  # fmt: skip
    p.add_argument("--image-run", type=Path,
                   help="with --dit-run: a text-to-image run (train dit --image-only) of the same DiT "
                        "config, shipped as image.safetensors for the image stage")  # fmt: skip
    p.add_argument("--stats-clips", type=int, default=256, help="clips for the latent mean/std")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=run_export)
    p = sub.add_parser("export-post", help="write the post stages' EMA weights + config.json")
    p.add_argument("--interp-run", type=Path, help="an interp run: interp.safetensors")
    p.add_argument("--sr-run", type=Path, help="an sr run: upscale.safetensors")
    p.add_argument("--out", type=Path, required=True, help="output directory (src/mutoscope/weights/post)")
    p.set_defaults(func=run_export_post)
    p = sub.add_parser("eval-vae", help="reconstruction PSNR of a VAE on held-out world clips")
    p.add_argument("vae", type=Path, help="an exported model directory or a VAE run directory")
    p.add_argument("--clips", type=int, default=64, help="held-out clips (full size, e.g. 64x64x16)")
    p.add_argument("--no-bf16", action="store_true", help="run the VAE in float32")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=run_eval_vae)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


ARG_FIELDS = {"steps": "max_steps", "batch": "batch_size", "lr": "lr", "warmup": "warmup_steps",
              "decay_steps": "decay_steps",
              "ema": "ema_decay", "seed": "seed", "workers": "num_workers", "log_every": "log_every",
              "eval_every": "eval_every", "eval_clips": "eval_clips", "ckpt_every": "ckpt_every_s",
              "crop": "crop_size", "crop_frames": "crop_frames",
              "caption_dropout": "caption_dropout", "object_weight": "object_weight",
              "object_weight_power": "object_weight_power", "object_weight_keyed": "object_weight_keyed",
              "unique_clips": "unique_clips", "t_shift": "t_shift",
              "images_per_sample": "images_per_sample", "image_only": "image_only"}  # fmt: skip

# Defaults per task where TrainConfig's (DiT-minded) defaults do not fit the task.
TASK_DEFAULTS = {"vae": dict(lr=6e-4, warmup_steps=200, batch_size=8, eval_every=250), "dit": {},
                 "interp": dict(lr=1e-3, warmup_steps=100, batch_size=16, eval_every=250, eval_clips=8,
                                ema_decay=0.998),
                 "sr": dict(lr=1e-3, warmup_steps=100, batch_size=32, eval_every=250, eval_clips=8,
                            ema_decay=0.998)}  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    import torch

    from mutoscope.config import InterpConfig, TrainConfig, UpscaleConfig, preset
    from mutoscope.train.loop import WEIGHTS_FILE, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        post = {"interp": InterpConfig, "sr": UpscaleConfig}.get(args.what)
        model_cfg = post() if post is not None else preset(args.preset)
    except ValueError as e:
        raise UserError("train.preset", str(e)) from None
    values = dict(what=args.what, **TASK_DEFAULTS[args.what])
    values.update({f: getattr(args, a) for a, f in ARG_FIELDS.items() if getattr(args, a, None) is not None})
    if args.no_bf16:
        values["bf16"] = False
    if getattr(args, "extend_trip", False):
        values["extend_trip"] = True
    if args.act_ckpt:
        values["activation_checkpointing"] = True
    if getattr(args, "decoder_only", False):
        values["freeze_encoder"] = True
        if args.init is not None and (args.init / "config.json").is_file():
            from mutoscope.config import ModelConfig, load_json

            # The encoder stays the init's, shape included; only the decoder takes the preset's depth.
            from mutoscope.vae.model import decoder_blocks

            init_vae = load_json(ModelConfig, args.init / "config.json").vae
            depth = decoder_blocks(model_cfg.vae)
            vae = dataclasses.replace(
                init_vae, decoder_blocks_per_stage=depth, latent_mean=0.0, latent_std=1.0
            )
            model_cfg = dataclasses.replace(model_cfg, vae=vae)
    if getattr(args, "weight_painted", False):
        painted = dataclasses.replace(model_cfg.vae, weight_painted=True)
        model_cfg = dataclasses.replace(model_cfg, vae=painted)
    cfg = dataclasses.replace(TrainConfig(), **values)
    kw = {}
    if args.what == "dit":
        from mutoscope.train.dit_task import load_vae

        if args.vae is None:
            raise UserError("train.vae", "DiT training needs --vae (an exported VAE or a VAE run directory)")
        try:  # the DiT trains on this VAE's latents: its config (with latent statistics) is the model's
            model_cfg = dataclasses.replace(model_cfg, vae=load_vae(args.vae).cfg)
        except (ValueError, FileNotFoundError) as e:
            raise UserError("train.vae", str(e)) from None
        kw["vae_path"] = args.vae
    try:
        init = args.init
        if init is not None and not (init / WEIGHTS_FILE[args.what]).is_file():
            raise UserError("train.init", f"no {WEIGHTS_FILE[args.what]} in {init}")
        train(model_cfg, cfg, args.run, device=args.device, init=init, **kw)
    except ValueError as e:
        raise UserError("train.config", str(e)) from None
    return 0


def run_export(args: argparse.Namespace) -> int:
    import torch

    from mutoscope.train.export import export

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.vae_run is None and args.dit_run is None:
        raise UserError("train.export", "give --vae-run, --dit-run or both")
    if args.vae_run is not None and not (args.vae_run / "ckpt.pt").exists():
        raise UserError("train.export", f"{args.vae_run} has no checkpoint (ckpt.pt)")
    if args.dit_run is not None and not any(
        (args.dit_run / f).exists() for f in ("ckpt.pt", "dit.safetensors")
    ):
        raise UserError("train.export", f"{args.dit_run} has no checkpoint (ckpt.pt) or exported DiT")
    try:
        path = export(args.out, vae_run=args.vae_run, dit_run=args.dit_run, stats_clips=args.stats_clips,
                      new_encoder=args.new_encoder, raw_dit=args.raw_dit,
                      image_run=args.image_run)  # fmt: skip
    except ValueError as e:
        raise UserError("train.export", str(e)) from None
    print(path)
    return 0


def run_export_post(args: argparse.Namespace) -> int:
    from mutoscope.train.export import export_post

    if args.interp_run is None and args.sr_run is None:
        raise UserError("train.export", "give --interp-run, --sr-run or both")
    for run in (args.interp_run, args.sr_run):
        if run is not None and not (run / "ckpt.pt").exists():
            raise UserError("train.export", f"{run} has no checkpoint (ckpt.pt)")
    try:
        print(export_post(args.out, interp_run=args.interp_run, sr_run=args.sr_run))
    except ValueError as e:
        raise UserError("train.export", str(e)) from None
    return 0


def run_eval_vae(args: argparse.Namespace) -> int:
    import json
    import time

    import torch

    from mutoscope.config import preset
    from mutoscope.data.world_stream import to_model
    from mutoscope.hardware import bf16_default
    from mutoscope.train.dit_task import load_vae
    from mutoscope.train.tasks import HELD_OUT_SEED, eval_vae, world

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        vae = load_vae(args.vae)
    except (ValueError, FileNotFoundError) as e:
        raise UserError("train.vae", str(e)) from None
    geometry = preset("tiny")  # the clip size the VAE serves (64x64, 16 frames at 8 fps)
    stream = world(geometry, HELD_OUT_SEED)
    clips = torch.stack([to_model(stream.sample(i)["video"]) for i in range(args.clips)])
    clips = clips.contiguous(memory_format=torch.channels_last_3d)
    bf16 = not args.no_bf16 and bf16_default(torch.device("cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    start = time.perf_counter()
    scores = eval_vae(vae, clips, autocast)
    scores["encode_decode_s_per_clip"] = (time.perf_counter() - start) / args.clips
    scores.update(clips=args.clips, bf16=bf16, threads=torch.get_num_threads())
    print(json.dumps(scores))
    return 0
