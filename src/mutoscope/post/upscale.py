"""Super-resolution: 64x64 base frames to 1080p, by a small trained x4 network plus resampling.

The network is ESPCN-style: every convolution runs at the low resolution and a pixel shuffle turns
its last layer's 3 * 4^2 channels into the x4 image, added to the bicubic upscale (its head starts
at zero, so an untrained model is bicubic). It is trained on world scenes rendered at 64x64 and at
256x256 (the renderer draws the same scene at any size), some inputs mildly blurred and noised.

Getting to a target size: the source is square and the targets mostly are not, so each frame is
first CENTER-CROPPED to the target's aspect ratio (64x64 -> 64x36 for 1920x1080 landscape, 36x64
for 1080x1920 vertical, kept whole for 1080x1080 square), then upscaled x4 by the network (64x36
-> 256x144), then resized to the target with OpenCV's bicubic filter (256x144 -> 1920x1080, x7.5).
Cropping rather than padding or stretching: no bars, no distortion, the subject (the world centres
its scenes) stays; cropping before the network also saves its work on pixels that would be cut.

Public API (what generate() calls):

    model = load_upscaler()                 # None: the shipped weights in weights/post/
    for frames in upscale_stream(chunks, size=(1920, 1080), model=model):
        ...                                 # (N, 1080, 1920, 3) uint8, in order, N <= batch

`chunks` is any iterable of (T_i, H, W, 3) uint8 arrays; `size=None` keeps the network's x4 output
(no crop, no resize). `upscale(video, size, model)` is the same on a whole clip at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mutoscope.config import UpscaleConfig
from mutoscope.post.interpolate import load_stage, to_float, to_uint8

SIZES = {"landscape": (1920, 1080), "vertical": (1080, 1920), "square": (1080, 1080)}  # (W, H)


class Upscaler(nn.Module):
    """float (B, 3, H, W) in [-1, 1] -> (B, 3, scale * H, scale * W): bicubic plus a learned residual."""

    def __init__(self, cfg: UpscaleConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        layers = [nn.Conv2d(3, c, 5, padding=2), nn.LeakyReLU(0.1)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 3 * cfg.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)
        self.init_weights()

    def init_weights(self) -> None:
        # A zero head: the untrained model is bicubic upscaling.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = bicubic(x, self.cfg.scale)  # (B, 3, sH, sW)
        return base + self.shuffle(self.head(self.body(x)))  # (B, 3, sH, sW)


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline: bicubic upscaling (Keys, a = -0.75, as torch and OpenCV do it)."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def load_upscaler(path: str | Path | None = None, *, bf16: bool | None = None) -> Upscaler:
    """The upscaler (interpolate.load_stage; bf16 is 1.5x faster here)."""
    return load_stage(path, "upscale", UpscaleConfig, Upscaler, bf16)


def crop_to_aspect(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Center crop (..., H, W, 3) frames to the aspect ratio of size = (W, H)."""
    h, w = frames.shape[-3:-1]
    if w * size[1] > h * size[0]:  # too wide: keep the full height
        cw = max(1, round(h * size[0] / size[1]))
        x0 = (w - cw) // 2
        return frames[..., :, x0 : x0 + cw, :]
    ch = max(1, round(w * size[1] / size[0]))
    y0 = (h - ch) // 2
    return frames[..., y0 : y0 + ch, :, :]


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w, 3) uint8 -> (N, H, W, 3) uint8 for size = (W, H): bicubic up, area-averaged down."""
    if frames.shape[1:3] == (size[1], size[0]):
        return frames
    down = size[0] < frames.shape[2] and size[1] < frames.shape[1]
    interp = cv2.INTER_AREA if down else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])


@torch.no_grad()
def upscale_frames(model: nn.Module, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, scale * H, scale * W, 3) uint8 through the network."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=getattr(model, "bf16", False)):
        return to_uint8(model(to_float(frames)).float().clamp(-1, 1))


def upscale_stream(
    chunks: Iterable[np.ndarray],
    size: tuple[int, int] | None = (1920, 1080),
    model: nn.Module | None = None,
    *,
    batch: int = 16,
) -> Iterator[np.ndarray]:
    """Each chunk's frames cropped to the aspect of size = (W, H), upscaled x4, resized to size;
    streamed as (N, H, W, 3) uint8 arrays, N <= batch. `model` None loads the shipped weights."""
    model = load_upscaler() if model is None else model
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 4 or chunk.shape[-1] != 3 or chunk.dtype != np.uint8:
            raise ValueError(f"chunks must be (T, H, W, 3) uint8, got {chunk.shape} {chunk.dtype}")
        if size is not None:
            chunk = crop_to_aspect(chunk, size)
        for start in range(0, len(chunk), batch):
            out = upscale_frames(model, chunk[start : start + batch])
            yield out if size is None else resize(out, size)


def upscale(video: np.ndarray, size: tuple[int, int] | None = (1920, 1080),
            model: nn.Module | None = None) -> np.ndarray:  # fmt: skip
    """A whole (T, H, W, 3) uint8 clip -> (T, H', W', 3) uint8, at once."""
    return np.concatenate(list(upscale_stream([video], size, model)))
