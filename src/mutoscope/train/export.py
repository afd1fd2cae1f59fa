"""Ship a run: the EMA weights as safetensors plus config.json (the ModelConfig), the layout that
mutoscope.generate.load_model reads.

The VAE's latent mean and std are measured here, over a few hundred world clips, and written into
the config: the DiT trains on, and samples, latents standardised by them. A DiT run was trained with
the VAE export it was given; its checkpoints hold that VAE and its config, so a DiT run exports alone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mutoscope.config import ModelConfig, VAEConfig, from_dict, load_json, save_json
from mutoscope.data.world_stream import to_model
from mutoscope.hardware import bf16_default
from mutoscope.train import checkpoint
from mutoscope.train.loop import WEIGHTS_FILE
from mutoscope.train.tasks import world
from mutoscope.vae import CausalVAE, channels_last


def _run(run_dir: str | Path, what: str) -> dict:
    ckpt = checkpoint.load(run_dir)
    if ckpt is None or ckpt.get("what") != what:
        raise ValueError(f"{run_dir} holds no {what} checkpoint")
    return ckpt


@torch.no_grad()
def latent_stats(vae: CausalVAE, cfg: ModelConfig, clips: int = 256, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the posterior means over `clips` world clips (the training world's first)."""
    vae = channels_last(vae.eval())
    stream = world(cfg, seed)
    bf16 = bf16_default(torch.device("cpu"))
    total = total_sq = count = 0.0
    for start in range(0, clips, 8):
        x = torch.stack([to_model(stream.sample(i)["video"]) for i in range(start, min(clips, start + 8))])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            mean, _ = vae.encode(x.contiguous(memory_format=torch.channels_last_3d))
        mean = mean.double()
        total, total_sq, count = (
            total + mean.sum().item(),
            total_sq + mean.pow(2).sum().item(),
            count + mean.numel(),
        )
    mu = total / count
    return mu, max(total_sq / count - mu * mu, 1e-12) ** 0.5


def _save(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype = torch.float32) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().to(dtype).contiguous() for k, v in state.items()}, tmp)
    tmp.chmod(0o644)  # shipped in the repository: readable like any other file
    tmp.replace(path)


def _with_latent_stats(vae_cfg: VAEConfig, weights: dict[str, torch.Tensor], geometry: ModelConfig,
                       clips: int) -> tuple[VAEConfig, dict[str, torch.Tensor]]:  # fmt: skip
    """A VAE's config with its latent mean and std measured over `clips` world clips of `geometry`,
    and its weights as the model holds them."""
    vae = CausalVAE(vae_cfg)
    vae.load_state_dict(weights)
    mean, std = latent_stats(vae, geometry, clips)
    return dataclasses.replace(vae_cfg, latent_mean=mean, latent_std=std), vae.state_dict()


def _dit(
    source: str | Path, raw: bool = False
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(config, DiT weights, VAE weights) of a DiT run (its EMA, or its raw weights, and the VAE it
    trained on) or of an exported model directory."""
    source = Path(source)
    if (source / "dit.safetensors").is_file():
        if raw:
            raise ValueError(f"{source} is an exported model (one set of weights): raw weights need a run")
        cfg = load_json(ModelConfig, source / "config.json")
        return cfg, load_file(source / "dit.safetensors"), load_file(source / "vae.safetensors")
    dck = _run(source, "dit")
    return from_dict(ModelConfig, dck["model_cfg"]), dck["model" if raw else "ema"], dck["frozen"]["vae"]


def _with_vae(cfg: ModelConfig, vae_state: dict, vae_run: str | Path, new_encoder: bool,
              stats_clips: int) -> tuple[ModelConfig, dict]:  # fmt: skip
    """The model with the VAE of `vae_run`. By default only its decoder, and only from a run that
    kept the encoder the DiT was trained on (`train vae --decoder-only`), i.e. the DiT's latent
    space. `new_encoder`: the whole VAE, its latent statistics measured anew, for a VAE trained on
    from the DiT's (the DiT then sees latents it was not trained on: the dev suite must say whether
    it still works, before anything ships)."""
    vck = _run(vae_run, "vae")
    new = vck["ema"]
    vae_cfg = from_dict(ModelConfig, vck["model_cfg"]).vae
    if new_encoder:
        if vae_cfg.latent_channels != cfg.dit.in_channels:
            raise ValueError(
                f"{vae_run} has {vae_cfg.latent_channels} latent channels, the DiT {cfg.dit.in_channels}"
            )
        vae_cfg, state = _with_latent_stats(vae_cfg, new, cfg, stats_clips)
        return dataclasses.replace(cfg, vae=vae_cfg), state
    vae_cfg = dataclasses.replace(vae_cfg, latent_mean=cfg.vae.latent_mean, latent_std=cfg.vae.latent_std)

    # The decoder's depth and how it was trained may differ; the encoder and the latents may not.
    def encoder_side(v: VAEConfig) -> VAEConfig:
        return dataclasses.replace(v, decoder_blocks_per_stage=0, weight_painted=False)

    if encoder_side(vae_cfg) != encoder_side(cfg.vae):
        raise ValueError(f"{vae_run} has another encoder or latent shape than the DiT's VAE")
    for k, v in vae_state.items():
        if k.startswith("encoder.") and not torch.allclose(new[k].float(), v.float(), atol=1e-6):
            raise ValueError(f"{vae_run} trained the encoder ({k} differs): its latents are not the DiT's")
    state = {**{k: v for k, v in new.items() if k.startswith("decoder.")},
             **{k: v for k, v in vae_state.items() if k.startswith("encoder.")}}  # fmt: skip
    return dataclasses.replace(cfg, vae=vae_cfg), state


def export(out: str | Path, *, vae_run: str | Path | None = None, dit_run: str | Path | None = None,
           stats_clips: int = 256, new_encoder: bool = False, raw_dit: bool = False,
           image_run: str | Path | None = None) -> Path:  # fmt: skip
    """Write out/config.json and out/vae.safetensors, plus out/dit.safetensors given a DiT run.

    With a VAE run alone: its EMA weights, with latent statistics measured here. With a DiT run (or
    an exported model directory): its EMA weights, the frozen VAE it was trained on (saved in its
    checkpoint) and its config. With both: the DiT with the VAE run's decoder, or its whole VAE
    (`new_encoder`; see _with_vae). `raw_dit`: the DiT run's raw weights instead of its EMA (at the
    end of a learning-rate cool-down they can be the better ones: the log's eval_raw_loss says). An
    exported model's sample.json is kept. `image_run`: a text-to-image run (`train dit --image-only`)
    of the same DiT config and VAE, its EMA written as out/image.safetensors (pipeline.py)."""
    if image_run is not None and dit_run is None:
        raise ValueError("an image DiT ships beside a video DiT: give --dit-run too")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dit_run is not None:
        cfg, dit_state, vae_state = _dit(dit_run, raw_dit)
        if image_run is not None:  # on the latents the video DiT was trained on
            image_cfg, image_state, image_vae = _dit(image_run)
            same_vae = all(torch.equal(image_vae[k], v) for k, v in vae_state.items())
            if image_cfg.dit != cfg.dit or not same_vae:
                raise ValueError(f"{image_run} is not a DiT of {dit_run}'s config on its VAE")
            _save(image_state, out / "image.safetensors", torch.bfloat16)
        if vae_run is not None:
            cfg, vae_state = _with_vae(cfg, vae_state, vae_run, new_encoder, stats_clips)
        sample = Path(dit_run) / "sample.json"
        if sample.is_file() and sample.resolve() != (out / "sample.json").resolve():
            shutil.copyfile(sample, out / "sample.json")
        # The DiT ships in bf16: half the bytes in the repository, and what inference runs in on a
        # CPU with bf16 matmuls anyway (load_model widens it to fp32 where it runs in fp32).
        _save(dit_state, out / "dit.safetensors", torch.bfloat16)
    elif vae_run is not None:
        vck = _run(vae_run, "vae")
        cfg = from_dict(ModelConfig, vck["model_cfg"])
        vae_cfg, vae_state = _with_latent_stats(cfg.vae, vck["ema"], cfg, stats_clips)
        cfg = dataclasses.replace(cfg, vae=vae_cfg)
    else:
        raise ValueError("export needs a VAE run or a DiT run")
    _save(vae_state, out / "vae.safetensors")
    save_json(cfg, out / "config.json")
    return out


def export_post(out: str | Path, *, interp_run: str | Path | None = None,
                sr_run: str | Path | None = None) -> Path:  # fmt: skip
    """Write the post stages (issue 4) to `out`: interp.safetensors and/or upscale.safetensors (EMA
    weights, fp32: they are small) and their configs under "interp" / "upscale" in out/config.json,
    keeping the other stage's entry when only one run is given."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    configs = json.loads(config_path.read_text()) if config_path.exists() else {}
    for run, what in ((interp_run, "interp"), (sr_run, "sr")):
        if run is not None:
            ckpt = _run(run, what)
            name = WEIGHTS_FILE[what]
            _save(ckpt["ema"], out / name)
            configs[name.removesuffix(".safetensors")] = ckpt["model_cfg"]
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(configs, indent=2) + "\n")
    tmp.replace(config_path)
    return out
