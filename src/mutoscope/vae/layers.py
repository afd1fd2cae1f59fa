"""Causal video layers: convs padded only on the past, a per-voxel norm, resblocks, down/up samplers.

Causality rule: output frame t may depend on input frames <= t only. Every layer here keeps it, so
the whole autoencoder does: decoding a prefix of the latents gives exactly the prefix of the frames.

Streaming: a `cache` dict (module -> the last frames it saw) lets a causal conv continue where the
previous chunk stopped, so a long video can be decoded chunk by chunk in flat memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

Cache = dict[nn.Module, torch.Tensor]


class ChannelNorm(nn.Module):
    """RMS norm over channels at every voxel (LTX-Video's pixel norm).

    Why not GroupNorm: its statistics span time (breaking causality) or at least the whole frame
    (making tiled decoding and crop training differ from full-frame inference). Per-voxel norms are
    causal, tile-exact and crop-exact.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps) * self.weight[:, None, None, None]


class CausalConv3d(nn.Module):
    """A 3-D conv, zero-padded only on the past in time ('same' in space).

    With temporal stride s and kernel k the past pad is k - s, so output frame j covers input frames
    [s*j + s - k, s*j + s - 1]: it never sees the future of its own group of s frames.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.past = kernel - stride[0]
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        if self.past > 0:
            prev = None if cache is None else cache.get(self)
            if prev is None:  # the start of the video: zeros, the same in full and streamed decoding
                prev = x.new_zeros(*x.shape[:2], self.past, *x.shape[3:])
            x = torch.cat([prev, x], dim=2)
            if cache is not None:
                cache[self] = x[:, :, -self.past :].detach()
        return self.conv(x)


class ResBlock(nn.Module):
    """norm -> SiLU -> conv, twice, plus a (1x1 projected) skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(cin), CausalConv3d(cin, cout)
        self.norm2, self.conv2 = ChannelNorm(cout), CausalConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve H and W (when `spatial`) and T (when `temporal`) with a strided causal conv."""

    def __init__(self, cin: int, cout: int, spatial: bool, temporal: bool):
        super().__init__()
        s = 2 if spatial else 1
        self.conv = CausalConv3d(cin, cout, 3, stride=(2 if temporal else 1, s, s))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        return self.conv(x, cache)


class Upsample(nn.Module):
    """Double H and W (when `spatial`) and T (when `temporal`): a causal conv to (factor x cout)
    channels, then depth-to-space. Input frame j becomes output frames 2j and 2j+1, so causality holds."""

    def __init__(self, cin: int, cout: int, spatial: bool, temporal: bool):
        super().__init__()
        self.pt, self.ps = (2 if temporal else 1), (2 if spatial else 1)
        factor = self.pt * self.ps**2
        self.conv = CausalConv3d(cin, cout * factor)
        # ICNR: every sub-position starts with the same kernel, i.e. as nearest-neighbour upsampling
        # followed by a conv, which avoids the checkerboard artefacts of a random depth-to-space init.
        w, b = self.conv.conv.weight, self.conv.conv.bias
        with torch.no_grad():
            w.copy_(w[:cout].repeat_interleave(factor, dim=0))
            b.copy_(b[:cout].repeat_interleave(factor, dim=0))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = self.conv(x, cache)  # (B, C*pt*ps*ps, T, H, W)
        return rearrange(
            x, "b (c pt ph pw) t h w -> b c (t pt) (h ph) (w pw)", pt=self.pt, ph=self.ps, pw=self.ps
        )
