"""The causal video autoencoder: encoder, decoder, KL bottleneck, streamed decoding, the loss.

Compression: `spatial_down` in space and `temporal_down` in time (powers of two, each applied by the
first downsamplers; there are len(channel_mult) - 1 of them, so a stage may halve time alone).
Every layer is causal in time (see layers.py), so latent frame k sees frames < temporal_down * (k + 1),
and decode(z[:, :, :k]) == decode(z)[:, :, :temporal_down * k].
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mutoscope.config import VAEConfig
from mutoscope.vae.layers import Cache, CausalConv3d, ChannelNorm, Downsample, ResBlock, Upsample


def _resample_flags(cfg: VAEConfig) -> list[tuple[bool, bool]]:
    """(space, time): what each of the (len(channel_mult) - 1) resolution changes halves/doubles.
    The first ones do both; the deeper factor goes on alone (4x time over 2x space: 2x2x2, then 2x1x1)."""
    steps = len(cfg.channel_mult) - 1
    spatial, temporal = cfg.spatial_down.bit_length() - 1, cfg.temporal_down.bit_length() - 1
    for name, factor, halvings in (("spatial_down", cfg.spatial_down, spatial),
                                   ("temporal_down", cfg.temporal_down, temporal)):  # fmt: skip
        if factor < 1 or 2**halvings != factor:
            raise ValueError(f"{name} {factor} must be a power of two")
    if max(spatial, temporal) != steps:
        raise ValueError(
            f"len(channel_mult) - 1 = {steps} resolution changes, but spatial_down {cfg.spatial_down} and "
            f"temporal_down {cfg.temporal_down} need {max(spatial, temporal)}"
        )
    return [(i < spatial, i < temporal) for i in range(steps)]


def decoder_blocks(cfg: VAEConfig) -> int:
    return cfg.decoder_blocks_per_stage or cfg.blocks_per_stage


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        flags = _resample_flags(cfg)
        self.conv_in = CausalConv3d(cfg.in_channels, chans[0])
        self.blocks = nn.ModuleList()
        cin = chans[0]
        for i, ch in enumerate(chans):
            for _ in range(cfg.blocks_per_stage):
                self.blocks.append(ResBlock(cin, ch))
                cin = ch
            if i < len(chans) - 1:
                self.blocks.append(Downsample(ch, ch, *flags[i]))
        self.norm_out = ChannelNorm(cin)
        self.conv_out = CausalConv3d(cin, 2 * cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, 2*Cz, T/4, H/4, W/4)
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        flags = _resample_flags(cfg)
        self.conv_in = CausalConv3d(cfg.latent_channels, chans[-1])
        self.blocks = nn.ModuleList()
        cin = chans[-1]
        for i in reversed(range(len(chans))):
            for _ in range(decoder_blocks(cfg)):
                self.blocks.append(ResBlock(cin, chans[i]))
                cin = chans[i]
            if i > 0:
                self.blocks.append(Upsample(cin, chans[i - 1], *flags[i - 1]))
                cin = chans[i - 1]
        self.norm_out = ChannelNorm(cin)
        self.conv_out = CausalConv3d(cin, cfg.in_channels)

    def forward(self, z: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        h = self.conv_in(z, cache)  # (B, C, Tz, Hz, Wz)
        for block in self.blocks:
            h = block(h, cache)
        return self.conv_out(F.silu(self.norm_out(h)), cache)  # (B, 3, 4*Tz, H, W)


class CausalVAE(nn.Module):
    """Video autoencoder: x (B, 3, T, H, W) in [-1, 1] <-> z (B, Cz, T/4, H/4, W/4)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of the posterior, each (B, Cz, T/4, H/4, W/4); T must divide by 4."""
        if x.shape[2] % self.cfg.temporal_down:
            raise ValueError(f"frames {x.shape[2]} not a multiple of {self.cfg.temporal_down}")
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, 4*Tz, H, W), roughly in [-1, 1] (not clamped)."""
        return self.decoder(z)

    def iter_decode(self, z: torch.Tensor, chunk: int = 1) -> Iterator[torch.Tensor]:
        """Decode `chunk` latent frames at a time, yielding (B, 3, 4*chunk, H, W) pieces; the causal
        convs carry their last frames across chunks, so memory stays flat in the video length."""
        cache: Cache = {}
        for start in range(0, z.shape[2], chunk):
            yield self.decoder(z[:, :, start : start + chunk], cache)

    def decode_streamed(self, z: torch.Tensor, chunk: int = 1) -> torch.Tensor:
        """The same frames as decode(z), computed chunk by chunk."""
        return torch.cat(list(self.iter_decode(z, chunk)), dim=2)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction from the posterior sample mean + std * noise, plus (mean, logvar) for the KL."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z), mean, logvar

    def widen_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of a VAE with fewer res blocks per stage, made to fit this one: each stage of
        the encoder and of the decoder keeps its trained blocks first and gains blocks whose last
        conv is zero, residual identities, so the deeper VAE starts as the trained one and only adds
        capacity."""
        for half, want in (("encoder", self.cfg.blocks_per_stage), ("decoder", decoder_blocks(self.cfg))):
            state = self._deepen(state, f"{half}.blocks.", want)
        return self._finer_space(self._more_latents(state))

    def _more_latents(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """More latent channels than the trained VAE: the decoder's input columns for the new ones are
        zero (it decodes what it did), the encoder's new means start as its own random features and
        their log-variances at -10, near-deterministic, so the decoder can learn to use them. Fewer:
        the two latent projections start afresh (a new latent space on the trained features)."""
        w_in = state["decoder.conv_in.conv.weight"]
        have, want = w_in.shape[1], self.cfg.latent_channels
        if have == want:
            return state
        own = self.state_dict()
        if have > want:
            fresh = (
                "decoder.conv_in.conv.weight",
                "encoder.conv_out.conv.weight",
                "encoder.conv_out.conv.bias",
            )
            return {**state, **{k: own[k] for k in fresh}}
        grown = own["decoder.conv_in.conv.weight"].clone()
        grown[:, have:] = 0
        grown[:, :have] = w_in
        out = {**state, "decoder.conv_in.conv.weight": grown}
        for name in ("weight", "bias"):  # encoder output rows: [means, log-variances]
            old, new = state[f"encoder.conv_out.conv.{name}"], own[f"encoder.conv_out.conv.{name}"].clone()
            new[:have], new[want : want + have] = old[:have], old[have:]  # new means keep their own init
            new[want + have :] = -10.0 if name == "bias" else 0.0
            out[f"encoder.conv_out.conv.{name}"] = new
        return out

    def _finer_space(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A trained VAE of twice this one's spatial factor (4x -> 2x, the same stages): its convs
        fit as they are (a stride is not a shape) except the decoder's upsampler that now doubles
        time alone, whose depth-to-space rows are 4x too many; it keeps each output channel's
        top-left sub-position, i.e. starts as the trained one read at one pixel of every 2x2."""
        own = self.state_dict()
        out = dict(state)
        for key, v in state.items():
            mine = own.get(key)
            if mine is None or mine.shape == v.shape or not key.startswith("decoder.blocks."):
                continue
            if v.shape[0] != 4 * mine.shape[0] or v.shape[1:] != mine.shape[1:]:
                raise ValueError(f"cannot fit {key} of shape {tuple(v.shape)} to {tuple(mine.shape)}")
            # rows are (c pt ph pw) with ph = pw = 2 in the trained VAE, 1 here
            out[key] = v.reshape(-1, 2, 2, *v.shape[1:])[:, 0, 0].reshape(mine.shape).clone()
        return out

    def _deepen(self, state: dict[str, torch.Tensor], prefix: str, want: int) -> dict[str, torch.Tensor]:
        # Both halves are stages of [res blocks..., a resampler], the last stage without resampler.
        stages = len(self.cfg.channel_mult)
        indices = {k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)}
        have = (len(indices) - (stages - 1)) // stages
        if have == want:
            return state
        if not 0 < have < want:
            raise ValueError(f"cannot deepen {prefix[:-1]} of {have} blocks per stage to {want}")
        own = self.state_dict()
        out = {k: v for k, v in state.items() if not k.startswith(prefix)}
        for stage in range(stages):
            old0, new0 = stage * (have + 1), stage * (want + 1)
            for j in range(want + (stage < stages - 1)):
                new = f"{prefix}{new0 + j}."
                if j < have or j == want:  # trained blocks, then the resampler
                    old = f"{prefix}{old0 + min(j, have)}."
                    out.update({new + k[len(old) :]: v for k, v in state.items() if k.startswith(old)})
                else:
                    for k, v in own.items():
                        if k.startswith(new):
                            out[k] = torch.zeros_like(v) if k.startswith(new + "conv2.") else v
        return out

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(Cz, Tz, Hz, Wz) of a clip of that size."""
        c, s, t = self.cfg, self.cfg.spatial_down, self.cfg.temporal_down
        return c.latent_channels, frames // t, height // s, width // s

    def normalize(self, mean: torch.Tensor) -> torch.Tensor:
        """Latents as the DiT sees them: roughly zero mean, unit variance."""
        return (mean - self.cfg.latent_mean) / self.cfg.latent_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.cfg.latent_std + self.cfg.latent_mean


def channels_last(model: nn.Module) -> nn.Module:
    """Conv weights in channels-last-3d: oneDNN's fast path for conv3d on CPU (several times faster
    in bf16 here). Only the 5-D weights move; norms and biases stay as they are."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def saturation_ramp(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, H, W) in [0, 1]: 0 on the desaturated backgrounds, 1 on the palette's objects.

    Saturation = max - min over RGB, in [-1, 1] units; the palette's objects sit above ~100/255 and
    the textured backgrounds below ~60/255, with a linear ramp between (antialiased edges)."""
    sat = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)
    return ((sat - 0.47) / 0.31).clamp(0.0, 1.0)


def object_weights(x: torch.Tensor, weight: float, painted: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, T, H, W): 1 on the background, 1 + weight on saturated pixels.

    With `painted` (the reconstruction, no gradient), a pixel the decoder paints saturated weighs as
    much as one it should have: weighting the truth's objects alone makes a colored fringe cost 1 and
    a lost edge pixel 1 + weight, so an uncertain edge is drawn as object and every object comes out
    larger than it is (+11% of the frame's object cover on one decode, more after each re-encode)."""
    ramp = saturation_ramp(x)
    if painted is not None:
        ramp = torch.maximum(ramp, saturation_ramp(painted))
    return 1.0 + weight * ramp


def vae_loss(
    model: nn.Module,
    x: torch.Tensor,
    noise: torch.Tensor,
    kl_weight: float,
    object_weight: float = 0.0,
    weight_painted: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + L2 reconstruction and an L1 edge term (keeps small objects' outlines), weighted up on
    saturated object pixels (and, with weight_painted, on the pixels the reconstruction paints
    saturated: object_weights), plus a small KL.

    `model` is a CausalVAE, possibly wrapped (DDP); `noise` the posterior noise, drawn by the caller
    per sample so that a batch split across ranks draws the same numbers as one process."""
    xhat, mean, logvar = model(x, noise)
    recon = xhat.float()
    err = recon - x
    w = object_weights(x, object_weight, recon.detach() if weight_painted else None)
    l1, l2 = (w * err.abs()).mean(), (w * err.pow(2)).mean()
    # Finite differences in x and y: flat colors on textured backgrounds live and die by edges.
    edge = (
        (w[..., 1:] * err.diff(dim=-1).abs()).mean() + (w[..., 1:, :] * err.diff(dim=-2).abs()).mean()
    ) / 2
    kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).mean()
    loss = l1 + l2 + 0.5 * edge + kl_weight * kl
    psnr = 10 * torch.log10(4.0 / err.detach().clamp(-2, 2).pow(2).mean().clamp_min(1e-10))
    return loss, {"l1": l1.item(), "l2": l2.item(), "kl": kl.item(), "psnr": psnr.item()}
