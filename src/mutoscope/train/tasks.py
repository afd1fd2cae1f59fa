"""What the one training loop trains: a task is a model, its batches and its loss.

Batches are map-style: item k is this rank's share of global batch k, and every random choice in it
(the clip, the crop, the posterior noise, the caption dropout) is a pure function of (seed, sample
index). So a run resumes exactly from its step alone, and N ranks see the same global batch as one
process: the two facts the resume and torchrun tests check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mutoscope.config import ModelConfig, TrainConfig
from mutoscope.data.world_stream import WorldStream, from_model, to_model
from mutoscope.vae import CausalVAE, channels_last, vae_loss

HELD_OUT_SEED = 1_000_003  # the held-out world: another seed, so other clips than any training run's


def world(cfg: ModelConfig, seed: int) -> WorldStream:
    return WorldStream(
        seed=seed, width=cfg.width, height=cfg.height, fps=cfg.fps, seconds=cfg.frames / cfg.fps
    )


def sample_seed(seed: int, index: int, salt: int) -> int:
    """A 63-bit seed for sample `index`'s random choice number `salt`."""
    return int(np.random.SeedSequence([seed, index, salt]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class Batches(Dataset):
    """Item k: samples [k*B + r*B/R, k*B + (r+1)*B/R) of the world, made by `make(index)`."""

    def __init__(self, make, batch_size: int, rank: int, world_size: int):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} does not split over {world_size} ranks")
        self.make, self.local = make, batch_size // world_size
        self.batch_size, self.rank = batch_size, rank

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, Any]:
        first = step * self.batch_size + self.rank * self.local
        return collate([self.make(i) for i in range(first, first + self.local)])

    def draws(self, index: int) -> bool:
        """Whether this rank makes sample `index` (its place in a batch falls in this rank's share)."""
        return (index % self.batch_size) // self.local == self.rank


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples (dicts with the same keys) into a batch: tensors stacked, anything else listed."""
    stack = {k: torch.is_tensor(v) for k, v in items[0].items()}
    return {k: torch.stack([it[k] for it in items]) if stack[k] else [it[k] for it in items] for k in stack}


# --- VAE ----------------------------------------------------------------------------------------


class VAESample:
    """A random crop of a world clip plus its posterior noise (picklable for DataLoader workers)."""

    def __init__(self, cfg: ModelConfig, tcfg: TrainConfig):
        self.stream, self.seed = world(cfg, tcfg.seed), tcfg.seed
        self.size = tcfg.crop_size or min(cfg.width, cfg.height)
        self.frames = tcfg.crop_frames or cfg.frames
        v = cfg.vae
        self.latent = (v.latent_channels, self.frames // v.temporal_down, self.size // v.spatial_down,
                       self.size // v.spatial_down)  # fmt: skip

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        video = self.stream.sample(index)["video"]  # (T, H, W, 3) uint8
        rng = np.random.default_rng(sample_seed(self.seed, index, 1))
        t0 = int(rng.integers(video.shape[0] - self.frames + 1))
        y0 = int(rng.integers(video.shape[1] - self.size + 1))
        x0 = int(rng.integers(video.shape[2] - self.size + 1))
        crop = video[t0 : t0 + self.frames, y0 : y0 + self.size, x0 : x0 + self.size]
        gen = torch.Generator().manual_seed(sample_seed(self.seed, index, 2))
        return {"video": to_model(crop), "noise": torch.randn(self.latent, generator=gen)}


def psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per clip between two uint8 videos (B, ...), as a viewer of the MP4 would see it."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


SATURATED = 100  # max - min over RGB: the palette's colored objects (backgrounds are desaturated)


@torch.no_grad()
def eval_vae(vae: CausalVAE, clips: torch.Tensor, autocast) -> dict[str, float]:
    """Reconstruction PSNR of the posterior mean on full uint8 clips, one clip at a time: per clip
    (mean, min) and over the saturated (object) pixels only, where small objects lose their color."""
    vae.eval()
    psnrs, obj_err, obj_n = [], 0.0, 0
    for clip in clips.split(1):
        with autocast:
            mean, _ = vae.encode(clip)
            out = vae.decode(mean)
        a, b = from_model(out.float().clamp(-1, 1)), from_model(clip)  # (1, T, H, W, 3) uint8
        psnrs.append(psnr_uint8(a, b))
        mask = (b.amax(-1).int() - b.amin(-1).int()) >= SATURATED
        obj_err += (a.float() - b.float()).pow(2)[mask].sum().item()
        obj_n += int(mask.sum().item()) * 3
    vae.train()
    p = torch.cat(psnrs)
    obj = 10 * math.log10(255.0**2 / max(obj_err / max(obj_n, 1), 1e-10))
    return {"psnr": p.mean().item(), "psnr_min": p.min().item(), "psnr_objects": obj}


class VAETask:
    def __init__(self, cfg: ModelConfig, tcfg: TrainConfig, rank: int, world_size: int):
        self.cfg, self.tcfg = cfg, tcfg
        self.model = channels_last(CausalVAE(cfg.vae))
        if tcfg.freeze_encoder:  # AdamW skips parameters without gradients; DDP does not sync them
            self.model.encoder.requires_grad_(False)
        self.data = Batches(VAESample(cfg, tcfg), tcfg.batch_size, rank, world_size)
        self._held_out: torch.Tensor | None = None

    def to(self, device: torch.device) -> VAETask:
        self.model.to(device)
        return self

    def frozen_state(self) -> dict[str, Any]:
        return {}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["video"].contiguous(memory_format=torch.channels_last_3d)
        v = self.cfg.vae
        return vae_loss(model, x, batch["noise"], v.kl_weight, v.object_weight, v.weight_painted)

    def held_out(self) -> torch.Tensor:
        if self._held_out is None:
            stream = world(self.cfg, HELD_OUT_SEED)
            self._held_out = torch.stack(
                [to_model(stream.sample(i)["video"]) for i in range(self.tcfg.eval_clips)]
            )
        return self._held_out

    def evaluate(self, model: nn.Module, autocast) -> dict[str, float]:
        return eval_vae(model, self.held_out().to(next(model.parameters()).device), autocast)


def build(what: str, cfg: Any, tcfg: TrainConfig, rank: int, world_size: int, run_dir: Any = None,
          **kw: Any):  # fmt: skip
    """The task named `what`: "vae" or "dit" (cfg a ModelConfig), "interp" (an InterpConfig) or "sr"
    (an UpscaleConfig). The DiT task takes the run directory (where it keeps the latents of its fixed
    clips) and the keywords (`vae_path`)."""
    if what == "vae":
        return VAETask(cfg, tcfg, rank, world_size)
    if what == "dit":
        from mutoscope.train.dit_task import DiTTask  # needs text/model/diffusion

        return DiTTask(cfg, tcfg, rank, world_size, run_dir=run_dir, **kw)
    if what in ("interp", "sr"):
        from mutoscope.train.post_tasks import InterpTask, UpscaleTask

        return (InterpTask if what == "interp" else UpscaleTask)(cfg, tcfg, rank, world_size)
    raise ValueError(f"unknown task {what!r}; choose vae, dit, interp or sr")
