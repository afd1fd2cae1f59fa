"""The DiT task: world clips -> frozen VAE latents (normalized), captions -> frozen text states,
rectified-flow loss on the velocity.

Caption dropout (for classifier-free guidance), the flow noise and the time t are drawn per sample
from (seed, index), as every random choice in tasks.py, so that torchrun ranks and resumed runs draw
the same numbers as one straight process. That is why the loss below composes flow.interpolate and
flow.target itself rather than calling flow.loss, which draws noise and t for the local batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mutoscope.config import ModelConfig, TrainConfig, from_dict, load_json
from mutoscope.data.world_stream import to_model
from mutoscope.diffusion import flow
from mutoscope.model import DiT
from mutoscope.text import TextEncoder
from mutoscope.train import checkpoint
from mutoscope.train.tasks import HELD_OUT_SEED, Batches, sample_seed, world
from mutoscope.vae import CausalVAE, channels_last


def load_vae(path: str | Path) -> CausalVAE:
    """A frozen VAE from an exported model directory (config.json + vae.safetensors, with its latent
    statistics) or from a VAE run directory (its EMA weights; latent statistics as in the run)."""
    path = Path(path)
    if (path / "vae.safetensors").is_file():
        from safetensors.torch import load_file

        cfg = load_json(ModelConfig, path / "config.json").vae
        vae = CausalVAE(cfg)
        vae.load_state_dict(load_file(path / "vae.safetensors"))
    else:
        ckpt = checkpoint.load(path)
        if ckpt is None or ckpt.get("what") != "vae":
            raise ValueError(f"{path} is neither an exported model nor a VAE run")
        vae = CausalVAE(from_dict(ModelConfig, ckpt["model_cfg"]).vae)
        vae.load_state_dict(ckpt["ema"])
    return channels_last(vae.eval().requires_grad_(False))


class DiTSample:
    """A world clip, its caption (or "" with probability caption_dropout), flow noise and time."""

    def __init__(
        self, cfg: ModelConfig, tcfg: TrainConfig, seed: int, latent: tuple[int, ...], dropout: float
    ):
        self.stream, self.seed, self.latent, self.dropout = world(cfg, seed), seed, latent, dropout

    def __call__(self, index: int) -> dict[str, Any]:
        item = self.stream.sample(index)
        rng = np.random.default_rng(sample_seed(self.seed, index, 3))
        text = "" if rng.random() < self.dropout else item["caption"]
        gen = torch.Generator().manual_seed(sample_seed(self.seed, index, 4))
        t = flow.sample_t(1, gen)[0]
        noise = torch.randn(self.latent, generator=gen)
        return {"video": to_model(item["video"]), "caption": text, "t": t, "noise": noise}


class DiTTask:
    def __init__(self, cfg: ModelConfig, tcfg: TrainConfig, rank: int, world_size: int, vae_path: str | Path):
        self.vae = load_vae(vae_path)
        if self.vae.cfg != cfg.vae:
            raise ValueError("the model config's VAE differs from the VAE at --vae (use its config.json)")
        if cfg.dit.in_channels != cfg.vae.latent_channels:
            raise ValueError(f"DiT in_channels {cfg.dit.in_channels} != VAE latent channels")
        self.cfg, self.tcfg = cfg, tcfg
        self.text = TextEncoder(cfg.text)
        self.model = DiT(cfg.dit)
        latent = self.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
        make = DiTSample(cfg, tcfg, tcfg.seed, latent, tcfg.caption_dropout)
        self.data = Batches(make, tcfg.batch_size, rank, world_size)
        self.held_out = Batches(DiTSample(cfg, tcfg, HELD_OUT_SEED, latent, 0.0), tcfg.eval_clips, 0, 1)[0]

    def to(self, device: torch.device) -> DiTTask:
        self.model.to(device)
        self.vae.to(device)
        if device != self.text.device:
            self.text = TextEncoder(self.cfg.text, device=device)
        return self

    def frozen_state(self) -> dict[str, Any]:
        """The VAE this DiT learns the latents of, saved in every checkpoint for export."""
        return {"vae": {k: v.contiguous() for k, v in self.vae.state_dict().items()}}

    @torch.no_grad()
    def latents(self, video: torch.Tensor) -> torch.Tensor:
        """Normalized posterior means (B, Cz, T/4, H/4, W/4) of the frozen VAE."""
        mean, _ = self.vae.encode(video.contiguous(memory_format=torch.channels_last_3d))
        return self.vae.normalize(mean.float())

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        x0 = self.latents(batch["video"])
        text, mask = self.text.encode(batch["caption"])
        noise, t = batch["noise"].to(x0), batch["t"].to(x0)
        v = model(flow.interpolate(x0, noise, t), t, text, mask)
        loss = torch.mean((v.float() - flow.target(x0, noise)) ** 2)
        return loss, {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast) -> dict[str, float]:
        """Flow loss on a fixed held-out batch with fixed noise and t (comparable across steps)."""
        model.eval()
        batch = {k: v.to(next(model.parameters()).device) if torch.is_tensor(v) else v
                 for k, v in self.held_out.items()}  # fmt: skip
        with autocast:
            loss, _ = self.loss(model, batch)
        model.train()
        return {"loss": loss.item()}
