"""Frame interpolation: 8 fps base clips to 30 fps, by a small trained network.

The network sees two consecutive frames and a fraction t in (0, 1) and predicts the frame at t.
Motion comes from matching, not from learning alone: at half resolution, cost volumes score every
motion within +-3 pixels (+-6 at full resolution) between the two frames, and their soft arg-mins
are the flows frame 0 -> 1 and 1 -> 0. A small U-Net over the frames and the costs gates those
flows, corrects them and predicts a blending mask; both frames are warped to time t and blended, and
a full-resolution head adds a residual. Untrained (zero head), it warps by the matched flows and
cross-fades, which already beats the plain cross-fade; training goes on from there. The 30 fps
frames need the model 3360 times for 2 minutes of video at 64x64, so it is kept small (~0.45M
parameters, ~120 MFLOP a frame).

Public API (what generate() calls):

    model = load_interpolator()            # None: the shipped weights in weights/post/
    for frames in interpolate_stream(chunks, src_fps=8, dst_fps=30, model=model):
        ...                                # (N, H, W, 3) uint8, in order, N <= batch

`chunks` is any iterable of (T_i, H, W, 3) uint8 arrays (a long video as it is decoded, clip by
clip); the stream never holds more than one input chunk and one batch of output frames. Output
frame k is at time k / dst_fps, for every k whose time lies within the clip's duration T / src_fps,
so 960 frames at 8 fps become 3600 at 30 fps. Frames that fall exactly on a base frame are that
base frame, bit for bit; times after the last base frame (the last 1 / src_fps of the clip, where
there is nothing to interpolate towards) hold it. `interpolate(video, src_fps, dst_fps, model)` is
the same on a whole clip at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mutoscope.config import InterpConfig, from_dict
from mutoscope.hardware import native_bf16
from mutoscope.post.mp4 import frame_rate

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "post"


# ---------------------------------------------------------------- layers


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = conv(channels, channels), conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out[p] = image[p + flow[p]], flow in pixels (x, y); (B, C, H, W), (B, 2, H, W)."""
    _, _, h, w = image.shape
    flow = flow.float()  # coordinates in bf16 would be off by up to 1/8 pixel at 64 px
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device), torch.arange(w, device=flow.device),
                            indexing="ij")  # fmt: skip
    x = (xs + flow[:, 0] + 0.5) * (2 / w) - 1  # pixel centres -> grid_sample's [-1, 1]
    y = (ys + flow[:, 1] + 0.5) * (2 / h) - 1
    grid = torch.stack([x, y], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def cost_volume(frame0: torch.Tensor, frame1: torch.Tensor, radius: int) -> torch.Tensor:
    """Matching cost of each integer motion v, |v| <= radius, at each pixel p of frame 0:
    |frame0[p] - frame1[p + v]|, channel-mean, 3x3 box-filtered (patches); edges replicated.

    frames (B, C, H, W) -> (B, K, H, W), K = (2 radius + 1)^2, v in `motion_grid(radius)` order."""
    h, w = frame0.shape[-2:]
    r = radius
    padded = F.pad(frame1, (r, r, r, r), mode="replicate")
    cost = torch.stack(
        [
            (padded[..., r + dy : r + dy + h, r + dx : r + dx + w] - frame0).abs().mean(1)
            for dx, dy in motion_grid(r).int().tolist()
        ],
        dim=1,
    )  # (B, K, H, W)
    return F.avg_pool2d(cost, 3, stride=1, padding=1, count_include_pad=False)


def motion_grid(radius: int) -> torch.Tensor:
    """The candidate motions (dx, dy), |dx|, |dy| <= radius: (K, 2) float."""
    g = torch.arange(-radius, radius + 1, dtype=torch.float32)
    return torch.stack(torch.meshgrid(g, g, indexing="xy"), dim=-1).reshape(-1, 2)


# ---------------------------------------------------------------- the model


class FrameInterpolator(nn.Module):
    """(frame0, frame1, t) -> frame at t; frames float (B, 3, H, W) in [-1, 1], t (B,) in (0, 1).

    At half resolution, cost volumes score every integer motion within `radius` pixels, from frame 0
    to frame 1 and back; the soft arg-min of each (a softmax over the candidates at a learned
    temperature) gives the flows F01 and F10. A U-Net over the frames and the costs decides the rest.
    The flows from time t are Super SloMo's quadratic estimates from them (Jiang et al. 2018),
    weighted per pixel by a learned gate, plus learned corrections; both frames are warped to t and
    blended by a learned mask, and a small full-resolution head adds a residual."""

    def __init__(self, cfg: InterpConfig):
        super().__init__()
        self.cfg = cfg
        chans, k = cfg.channels, (2 * cfg.radius + 1) ** 2
        self.register_buffer("motions", motion_grid(cfg.radius), persistent=False)
        self.log_temp = nn.Parameter(torch.zeros(2))  # per cost volume
        # Encoder: the frames and t (a constant plane), halving the resolution per level; the costs
        # join at the first level (half resolution, where they are computed).
        self.down = nn.ModuleList(
            conv(c_in, c_out, stride=2) for c_in, c_out in zip((7, *chans), chans, strict=False)
        )
        self.cost_in = nn.Conv2d(2 * k, chans[0], 1)
        self.mid = nn.Sequential(*(ResBlock(chans[-1]) for _ in range(cfg.blocks)))
        # Decoder back to half resolution, adding each level's encoder features (U-Net skips).
        self.up = nn.ModuleList(
            conv(c_in, c_out) for c_in, c_out in zip(chans[:0:-1], chans[-2::-1], strict=True)
        )
        # Per half-resolution pixel: the gate on the matched flows (1), flow corrections t->0 and
        # t->1 (4), the mask (1).
        self.head = conv(chans[0], 6)
        n = cfg.refine_channels
        self.refine = nn.Sequential(conv(3 * 3 + 2, n), nn.LeakyReLU(0.1), conv(n, 3))
        self.init_weights()

    def init_weights(self) -> None:
        # Cost-volume temperature: a matched patch costs ~0.01, a mismatch on texture ~0.1 or more;
        # 0.02 was the best of 0.02, 0.05, 0.1 for the untrained model (41.2 dB vs 38.9 and 39.2).
        nn.init.constant_(self.log_temp, math.log(0.02))
        # A zero head and residual but for the gate's bias (1: the matched flows as they are), mask
        # weights (1 - t, t), no residual: the untrained model warps both frames by the matched flows
        # and cross-fades them, which already beats the plain cross-fade (41.2 vs 38.0 dB, 8 clips).
        for layer in (self.head, self.refine[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.ones_(self.head.bias[:1])

    def flow(self, cost: torch.Tensor, log_temp: torch.Tensor) -> torch.Tensor:
        """Soft arg-min: the mean motion under softmax(-cost / temperature); (B, K, h, w) -> (B, 2, h, w)."""
        p = torch.softmax(-cost / log_temp.exp(), dim=1)
        return torch.einsum("bkhw,kd->bdhw", p, self.motions.to(p.dtype))

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = frame0.shape
        t = t.to(frame0.dtype).view(b, 1, 1, 1)
        half0, half1 = F.avg_pool2d(frame0, 2), F.avg_pool2d(frame1, 2)
        r = self.cfg.radius
        cost = torch.cat(
            [cost_volume(half0, half1, r), cost_volume(half1, half0, r)], dim=1
        )  # (B, 2K, H/2, W/2)
        x = torch.cat([frame0, frame1, t.expand(b, 1, h, w)], dim=1)  # (B, 7, H, W)
        skips = []
        for i, layer in enumerate(self.down):
            x = F.leaky_relu(layer(x) + (self.cost_in(cost) if i == 0 else 0), 0.1)
            skips.append(x)  # (B, C_i, H / 2^(i+1), W / 2^(i+1))
        x = self.mid(x)
        for layer, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.leaky_relu(layer(x), 0.1) + skip
        head = self.head(x).float()  # (B, 6, H/2, W/2)
        # An fp32 island from here on: under bf16 autocast the motions and the sampling coordinates
        # would be off by up to 1/8 pixel (trained that way, the model lost ~1.5 dB on held-out clips).
        with torch.autocast(frame0.device.type, enabled=False):
            return self.synthesize(frame0, frame1, t, cost, head)  # (B, 3, H, W)

    def synthesize(self, frame0, frame1, t, cost, head) -> torch.Tensor:
        """Flows from the costs and the head's outputs; warp, blend, refine. t (B, 1, 1, 1)."""
        b, _, h, w = frame0.shape
        k = len(self.motions)
        gate, delta, mask_logit = head.split([1, 4, 1], dim=1)  # (B, 1 | 4 | 1, H/2, W/2)
        f01 = self.flow(cost[:, :k], self.log_temp[0])  # (B, 2, H/2, W/2), half-res pixels
        f10 = self.flow(cost[:, k:], self.log_temp[1])
        ft0 = -(1 - t) * t * f01 + t * t * f10  # Super SloMo, eq. 4: linear motion, either direction
        ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
        flows = gate * torch.cat([ft0, ft1], dim=1) + delta
        flows = 2 * F.interpolate(flows, size=(h, w), mode="bilinear", align_corners=False)  # full-res px
        mask_logit = F.interpolate(mask_logit, size=(h, w), mode="bilinear", align_corners=False)
        mask = torch.sigmoid(mask_logit + torch.logit(1 - t))  # blend weight of frame 0 (B, 1, H, W)
        warped0, warped1 = warp(frame0, flows[:, :2]), warp(frame1, flows[:, 2:])
        merged = mask * warped0 + (1 - mask) * warped1
        refine_in = torch.cat([warped0, warped1, merged, mask, t.expand(b, 1, h, w)], dim=1)
        return merged + self.refine(refine_in)  # (B, 3, H, W)


def blend(frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The baseline: linear cross-fade (1 - t) * frame0 + t * frame1."""
    t = t.to(frame0.dtype).view(-1, 1, 1, 1)
    return (1 - t) * frame0 + t * frame1


# ---------------------------------------------------------------- loading


def load_stage(
    path: str | Path | None, key: str, cfg_cls: type, model_cls: type, bf16: bool | None
) -> nn.Module:
    """A post stage from `path`: an exported directory (config.json's `key` entry + `<key>.safetensors`)
    or a training run (its EMA weights); None is the shipped one. In eval mode, on the CPU; `bf16`
    (None: where native) runs its convolutions under bf16 autocast."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else WEIGHTS
    if (path / "ckpt.pt").exists():
        from mutoscope.train import checkpoint

        ckpt = checkpoint.load(path)
        cfg, state = from_dict(cfg_cls, ckpt["model_cfg"]), ckpt["ema"]
    else:
        cfg = from_dict(cfg_cls, json.loads((path / "config.json").read_text())[key])
        state = load_file(path / f"{key}.safetensors")
    model = model_cls(cfg)
    model.load_state_dict(state)
    model.bf16 = native_bf16() if bf16 is None else bf16
    return model.eval().requires_grad_(False)


def load_interpolator(path: str | Path | None = None, *, bf16: bool | None = None) -> FrameInterpolator:
    """The interpolator (load_stage; warping stays fp32 under bf16)."""
    return load_stage(path, "interp", InterpConfig, FrameInterpolator, bf16)


# ---------------------------------------------------------------- inference


def to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return torch.as_tensor(np.ascontiguousarray(frames)).movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def predict(model: nn.Module, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The model on frames of any size: padded (edge) to a multiple of its total stride, cropped back."""
    m = 2 ** len(model.cfg.channels)
    h, w = frame0.shape[-2:]
    pad = (0, -w % m, 0, -h % m)
    if any(pad):
        frame0, frame1 = F.pad(frame0, pad, mode="replicate"), F.pad(frame1, pad, mode="replicate")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=getattr(model, "bf16", False)):
        return model(frame0, frame1, t)[..., :h, :w].float().clamp(-1, 1)


def schedule(
    src_fps: float | Fraction, dst_fps: float | Fraction, k0: int, k1: int
) -> list[tuple[int, Fraction]]:
    """(base index j, fraction t in [0, 1)) of output frames k0 <= k < k1: time k / dst is base j + t."""
    ratio = frame_rate(src_fps) / frame_rate(dst_fps)  # base frames per output frame, exact
    return [(math.floor(k * ratio), k * ratio - math.floor(k * ratio)) for k in range(k0, k1)]


def interpolate_stream(
    chunks: Iterable[np.ndarray],
    src_fps: float | Fraction,
    dst_fps: float | Fraction,
    model: nn.Module | None = None,
    *,
    batch: int = 64,
) -> Iterator[np.ndarray]:
    """Frames at dst_fps from base frames at src_fps, streamed: (N, H, W, 3) uint8 arrays, N <= batch.

    `model` None loads the shipped weights. See the module docstring for which times are output."""
    model = load_interpolator() if model is None else model
    ratio = frame_rate(src_fps) / frame_rate(dst_fps)  # base frames per output frame, exact
    k = seen = 0  # the next output frame; base frames received so far
    frames: np.ndarray | None = None  # the previous chunk's last frame, then the current chunk
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 4 or chunk.shape[-1] != 3 or chunk.dtype != np.uint8:
            raise ValueError(f"chunks must be (T, H, W, 3) uint8, got {chunk.shape} {chunk.dtype}")
        if len(chunk) == 0:
            continue
        frames = chunk if frames is None else np.concatenate([frames[-1:], chunk])
        seen += len(chunk)
        base = seen - len(frames)  # base index of frames[0]
        # Every output at or before the last frame here has both its neighbours (or lies on one).
        k_end = math.floor((seen - 1) / ratio) + 1
        for start in range(k, k_end, batch):
            times = schedule(src_fps, dst_fps, start, min(k_end, start + batch))
            yield _frames(model, frames, base, times)
        k = max(k, k_end)
    if frames is None:
        return
    # The clip's last 1 / src_fps, past its last base frame: nothing to interpolate towards.
    for start in range(k, math.ceil(seen / ratio), batch):
        yield np.repeat(frames[-1:], min(math.ceil(seen / ratio), start + batch) - start, axis=0)


def _frames(model: nn.Module, frames: np.ndarray, base: int, times: list[tuple[int, Fraction]]) -> np.ndarray:
    """Output frames at `times` (base index j, fraction t) from `frames`, whose first is base `base`."""
    out = np.empty((len(times), *frames.shape[1:]), np.uint8)
    between = [i for i, (_, t) in enumerate(times) if t != 0]
    for i, (j, t) in enumerate(times):
        if t == 0:
            out[i] = frames[j - base]  # on a base frame: passed through
    if between:
        idx = np.array([times[i][0] - base for i in between])
        t = torch.tensor([float(times[i][1]) for i in between])
        pred = predict(model, to_float(frames[idx]), to_float(frames[idx + 1]), t)
        out[between] = to_uint8(pred)
    return out


def interpolate(video: np.ndarray, src_fps: float | Fraction, dst_fps: float | Fraction,
                model: nn.Module | None = None) -> np.ndarray:  # fmt: skip
    """A whole (T, H, W, 3) uint8 clip at src_fps -> (K, H, W, 3) uint8 at dst_fps, at once."""
    return np.concatenate(list(interpolate_stream([video], src_fps, dst_fps, model)))
