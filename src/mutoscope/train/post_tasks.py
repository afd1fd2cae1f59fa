"""Training tasks for the post stages (issue 4): frame interpolation (`interp`) and super-resolution
(`sr`), both on world scenes with exact ground truth, both through the one training loop.

interp: each world clip is rendered at 120 fps; a triplet is two frames 1 / 8 s apart and one of the
14 frames between them (t = m / 15, which covers every 30 fps time). sr: each scene is rendered at
64x64 and at 256x256 (at 2 fps: 4 frames a clip); a sample is an aligned crop of both. Rendering
dominates the cost, so each rendered clip yields several samples (consecutive indices share it).
Every random choice is a pure function of (seed, sample index), as tasks.py requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mutoscope.config import InterpConfig, TrainConfig, UpscaleConfig
from mutoscope.post.interpolate import FrameInterpolator, blend, to_float
from mutoscope.post.upscale import Upscaler, bicubic
from mutoscope.train.tasks import HELD_OUT_SEED, Batches, sample_seed
from mutoscope.world.render import render
from mutoscope.world.sample import sample_spec

SR_FPS = 2.0  # frames per second of the sr task's renders: 4 well-separated frames per 2 s scene


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB over a whole set of frames in [-1, 1], after rounding both to uint8 levels."""
    a, b = (((x.clamp(-1, 1) + 1) * 127.5).round() for x in (a, b))
    return float(10 * np.log10(255.0**2 / max((a - b).pow(2).mean().item(), 1e-10)))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), edges replicated."""
    r = max(1, int(np.ceil(2.5 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    k = k.repeat(x.shape[1], 1, 1, 1)  # (C, 1, 1, 2r + 1): one kernel per channel
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k, groups=x.shape[1])  # along rows
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=x.shape[1])


class Clips:
    """Clip c rendered at each of `sizes` ((W, H) pairs) at `fps`, the last clip kept: consecutive
    samples share a render. Its scene is drawn as the world stream draws sample c
    (`default_rng([seed, c])`), without a caption."""

    def __init__(self, seed: int, sizes: tuple[tuple[int, int], ...], fps: float):
        self.seed, self.sizes, self.fps, self.cached = seed, sizes, fps, (None, None)

    def __call__(self, clip: int) -> tuple[np.ndarray, ...]:
        if self.cached[0] != clip:
            spec = sample_spec(np.random.default_rng([self.seed, clip]))
            self.cached = (clip, tuple(render(spec, w, h, self.fps) for w, h in self.sizes))
        return self.cached[1]  # (T, H, W, 3) uint8 per size


# --- interpolation ------------------------------------------------------------------------------


class InterpSample:
    """Sample i: triplet (i % pairs_per_clip) of clip (i // pairs_per_clip), rendered at truth_fps."""

    def __init__(self, cfg: InterpConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        self.step = round(cfg.truth_fps / cfg.base_fps)  # truth frames per base interval (15)
        self.clips = Clips(seed, ((cfg.width, cfg.height),), cfg.truth_fps)

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        (video,) = self.clips(index // self.cfg.pairs_per_clip)  # (T, H, W, 3) uint8 at truth_fps
        rng = np.random.default_rng(sample_seed(self.seed, index, 1))
        j = int(rng.integers((len(video) - 1) // self.step))  # base interval
        m = int(rng.integers(1, self.step))  # truth frames into it
        frames = to_float(video[[j * self.step, j * self.step + self.step, j * self.step + m]])
        if rng.random() < self.cfg.degrade:
            frames = gaussian_blur(frames, float(rng.uniform(0.4, 1.0)))
        return {"frame0": frames[0], "frame1": frames[1], "target": frames[2],
                "t": torch.tensor(m / self.step)}  # fmt: skip


class InterpTask:
    def __init__(self, cfg: InterpConfig, tcfg: TrainConfig, rank: int, world_size: int):
        self.cfg, self.tcfg = cfg, tcfg
        self.model = FrameInterpolator(cfg)
        self.data = Batches(InterpSample(cfg, tcfg.seed), tcfg.batch_size, rank, world_size)
        self._held_out: dict[str, torch.Tensor] | None = None

    def to(self, device: torch.device) -> InterpTask:
        self.model.to(device)
        return self

    def frozen_state(self) -> dict[str, Any]:
        return {}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        # MSE, not L1: PSNR is the measure, and the errors are sparse (a few moving edges) where L1
        # spends its constant push on the many near-zero static pixels. Fine-tuning an L1-trained
        # model with MSE gained 0.7 dB on held-out clips (41.2 -> 41.9).
        pred = model(batch["frame0"], batch["frame1"], batch["t"])
        return F.mse_loss(pred.float(), batch["target"]), {}

    def held_out(self) -> dict[str, torch.Tensor]:
        """Every 30 fps in-between time of the first eval_clips held-out clips (clean renders)."""
        if self._held_out is None:
            self._held_out = held_out_triplets(self.cfg, self.tcfg.eval_clips)
        return self._held_out

    def evaluate(self, model: nn.Module, autocast) -> dict[str, float]:
        data = self.held_out()
        model.eval()
        with autocast:
            pred = predict_triplets(model, data)
        model.train()
        fade = blend(data["frame0"], data["frame1"], data["t"])
        return {"psnr": psnr(pred, data["target"]), "psnr_blend": psnr(fade, data["target"])}


@torch.no_grad()
def predict_triplets(model: nn.Module, data: dict[str, torch.Tensor], batch: int = 64) -> torch.Tensor:
    """The model's frames for held-out triplets, `batch` at a time: (N, 3, H, W) float."""
    f0, f1, t = (data[k].split(batch) for k in ("frame0", "frame1", "t"))
    return torch.cat([model(*b).float() for b in zip(f0, f1, t, strict=True)])


def held_out_triplets(cfg: InterpConfig, clips: int, out_fps: float = 30.0) -> dict[str, torch.Tensor]:
    """(frame0, frame1, t, target) at every out_fps time strictly between base frames, over the first
    `clips` clips of the held-out world."""
    sample = InterpSample(cfg, HELD_OUT_SEED)
    per_out = round(cfg.truth_fps / out_fps)  # truth frames per output frame (4)
    f0, f1, ts, target = [], [], [], []
    for clip in range(clips):
        video = to_float(sample.clips(clip)[0])
        for k in range(0, len(video) - sample.step, per_out):
            j, m = divmod(k, sample.step)
            if m:
                f0.append(video[j * sample.step])
                f1.append(video[(j + 1) * sample.step])
                ts.append(m / sample.step)
                target.append(video[k])
    return {"frame0": torch.stack(f0), "frame1": torch.stack(f1), "t": torch.tensor(ts),
            "target": torch.stack(target)}  # fmt: skip


# --- super-resolution ---------------------------------------------------------------------------


class UpscaleSample:
    """Sample i: a random aligned crop of frame (i % 4) of scene (i // frames_per_clip)."""

    def __init__(self, cfg: UpscaleConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        sizes = ((cfg.width, cfg.height), (cfg.scale * cfg.width, cfg.scale * cfg.height))
        self.clips = Clips(seed, sizes, SR_FPS)

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        cfg, s = self.cfg, self.cfg.scale
        low, high = self.clips(index // cfg.frames_per_clip)
        rng = np.random.default_rng(sample_seed(self.seed, index, 1))
        f = index % len(low)  # the clip's frames in turn, each at random crops
        y, x = (int(rng.integers(n - cfg.crop + 1)) for n in (cfg.height, cfg.width))
        lo = to_float(low[f, y : y + cfg.crop, x : x + cfg.crop])[None]
        hi = to_float(high[f, s * y : s * (y + cfg.crop), s * x : s * (x + cfg.crop)])
        if rng.random() < cfg.degrade:  # the DiT's frames: a little soft, a little noisy
            lo = gaussian_blur(lo, float(rng.uniform(0.3, 0.9)))
            noise = torch.from_numpy(rng.standard_normal(lo.shape).astype(np.float32))
            lo = lo + noise * float(rng.uniform(0.0, 0.02))
        return {"low": lo[0], "high": hi}


class UpscaleTask:
    def __init__(self, cfg: UpscaleConfig, tcfg: TrainConfig, rank: int, world_size: int):
        self.cfg, self.tcfg = cfg, tcfg
        self.model = Upscaler(cfg)
        self.data = Batches(UpscaleSample(cfg, tcfg.seed), tcfg.batch_size, rank, world_size)
        self._held_out: dict[str, torch.Tensor] | None = None

    def to(self, device: torch.device) -> UpscaleTask:
        self.model.to(device)
        return self

    def frozen_state(self) -> dict[str, Any]:
        return {}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return F.l1_loss(model(batch["low"]).float(), batch["high"]), {}

    def held_out(self) -> dict[str, torch.Tensor]:
        if self._held_out is None:
            self._held_out = held_out_pairs(self.cfg, self.tcfg.eval_clips)
        return self._held_out

    def evaluate(self, model: nn.Module, autocast) -> dict[str, float]:
        data = self.held_out()
        model.eval()
        with torch.no_grad(), autocast:
            pred = torch.cat([model(x).float() for x in data["low"].split(16)])
        model.train()
        return {"psnr": psnr(pred, data["high"]),
                "psnr_bicubic": psnr(bicubic(data["low"], self.cfg.scale), data["high"])}  # fmt: skip


def held_out_pairs(cfg: UpscaleConfig, clips: int) -> dict[str, torch.Tensor]:
    """Whole clean frames (low, high) of the first `clips` scenes of the held-out world."""
    low, high = zip(*(UpscaleSample(cfg, HELD_OUT_SEED).clips(c) for c in range(clips)), strict=True)
    return {"low": to_float(np.concatenate(low)), "high": to_float(np.concatenate(high))}
