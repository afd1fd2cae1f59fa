"""The diffusion transformer over video latent patches (DiT; Peebles & Xie 2023, "Scalable Diffusion
Models with Transformers"), text-conditioned, predicting the rectified-flow velocity.

Read top to bottom: embedders, the block, the final layer, the model. Conditioning:
- time and the pooled prompt -> one vector c (B, D) that modulates every block by adaLN-Zero
  (shift, scale, gate per sub-layer, the gates starting at zero so each block starts as the identity);
- the prompt's tokens -> cross-attention in every block (as PixArt-alpha), padding masked out;
- positions -> 3-D RoPE inside self-attention (no absolute position table, so any T x H x W works);
  with `cfg.camera_rope`, a camera control moves them with the scene (controls.camera_positions).
U-ViT long skips (Bao et al. 2023; Vidu's backbone), when `cfg.long_skip`: the first half of the
blocks hands its outputs to the mirrored blocks of the second half, concatenated and projected.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from mutoscope.config import DiTConfig
from mutoscope.model.attention import CrossAttention, SelfAttention, rope_angles, rope_tables
from mutoscope.model.controls import CAMERA_SUMMARY, camera_positions, camera_summary, cond_channels
from mutoscope.model.text_refiner import TokenRefiner
from mutoscope.text import masked_mean

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as t * 1000, the range DiT's frequencies were made for
FREQ_DIM = 256  # sinusoidal channels of the timestep embedding


def per_token(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A conditioning vector per sample and latent frame, v (B, F, D), broadcast over the tokens x
    (B, N, D) of each frame (tokens are ordered (t h w), N = F x tokens per frame; F = 1: per sample)."""
    B, N, D = x.shape
    F = v.shape[1]
    return v.unsqueeze(2).expand(B, F, N // F, D).reshape(B, N, D)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, N, D) scaled and shifted per sample and latent frame by (B, F, D) vectors."""
    return x * (1 + per_token(x, scale)) + per_token(x, shift)


def timestep_embedding(t: torch.Tensor, dim: int = FREQ_DIM, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) as in Vaswani et al. 2017 / DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * TIME_SCALE)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Mlp(nn.Sequential):
    # Exact (erf) GELU, not DiT's tanh approximation: 5x faster on this CPU (0.14 vs 0.7 ms per block).
    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class DiTBlock(nn.Module):
    """Self-attention, cross-attention to text, MLP; adaLN-Zero modulation from the conditioning c."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: bool, long_skip: bool = False):
        super().__init__()
        # U-ViT: a second-half block first fuses its input with the mirrored first-half output.
        self.skip = nn.Linear(2 * dim, dim) if long_skip else None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads, qk_norm)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)  # cross-attention is not time-modulated (PixArt)
        self.cross = CrossAttention(dim, heads, qk_norm)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        text: torch.Tensor,
        mask: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D), c (B, F, D) per latent frame (F = 1: per sample), text (B, L, D), mask (B, L),
        rope (cos, sin), skip (B, N, D) -> x."""
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.ada(c).chunk(6, dim=-1)
        x = x + per_token(x, gate_msa) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)
        x = x + self.cross(self.norm2(x), text, mask)
        x = x + per_token(x, gate_mlp) * self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a linear head from tokens back to patch values."""

    def __init__(self, dim: int, patch_values: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_values)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """`forward(x, t, text, mask) -> v`: latents (B, C, T, H, W), t (B,) in [0, 1], text (B, L, text_dim),
    mask (B, L) bool; returns the velocity, shaped like x."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.cfg = cfg
        pt, ph, pw = cfg.patch_size
        channels = cfg.in_channels + cfg.cond_channels
        self.patch_embed = nn.Linear(channels * pt * ph * pw, cfg.dim)
        self.t_embed = Mlp(FREQ_DIM, cfg.dim, cfg.dim)
        self.text_proj = Mlp(cfg.text_dim, cfg.dim, cfg.dim)  # tokens -> model width, shared by all blocks
        # Tokens take in their neighbours (a shape word its color) before any block reads them.
        self.refiner = TokenRefiner(cfg.dim, cfg.heads, cfg.text_refiner) if cfg.text_refiner else None
        self.pool_embed = Mlp(cfg.text_dim, cfg.dim, cfg.dim)  # pooled prompt -> added to c
        # The camera control per latent frame -> added to c, so c varies by frame (model/controls.py).
        self.camera_embed = Mlp(CAMERA_SUMMARY, cfg.dim, cfg.dim) if cfg.cond_channels else None
        long = [cfg.long_skip and i >= cfg.depth - cfg.depth // 2 for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            DiTBlock(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.qk_norm, long_skip=s) for s in long
        )
        self.final = FinalLayer(cfg.dim, pt * ph * pw * cfg.in_channels)
        self.init_weights()

    def init_weights(self) -> None:
        """All special initialisation, as DiT's `initialize_weights`, one step per comment."""

        # 1. Every linear layer: Xavier-uniform weights, zero bias (the patch embed included, as DiT).
        def _basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

        self.apply(_basic)
        # 2. Time and text embedding MLPs: small normal weights (DiT's choice for its embedders).
        for mlp in (self.t_embed, self.text_proj, self.pool_embed):
            for layer in (mlp[0], mlp[2]):
                nn.init.normal_(layer.weight, std=0.02)
        # 2b. The camera embedding's output starts at zero: the control starts switched off.
        if self.camera_embed is not None:
            nn.init.normal_(self.camera_embed[0].weight, std=0.02)
            nn.init.zeros_(self.camera_embed[2].weight)
            nn.init.zeros_(self.camera_embed[2].bias)
        for block in self.blocks:
            # 3. adaLN-Zero: shift = scale = gate = 0, so attention and MLP residuals start switched off.
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
            # 4. Cross-attention has no gate: its output projection starts at zero instead, so that a
            #    fresh block is exactly the identity.
            nn.init.zeros_(block.cross.out.weight)
            nn.init.zeros_(block.cross.out.bias)
            # 5. U-ViT skip fusion starts as [I | 0]: pass the main path through, learn to use the skip.
            if block.skip is not None:
                d = self.cfg.dim
                nn.init.zeros_(block.skip.weight)
                nn.init.zeros_(block.skip.bias)
                with torch.no_grad():
                    block.skip.weight[:, :d].copy_(torch.eye(d))
        # 5b. The token refiner's gates at zero: a fresh refiner passes the tokens through.
        if self.refiner is not None:
            self.refiner.zero_gates()
        # 6. Final adaLN and head at zero: a fresh model predicts v = 0 everywhere.
        for layer in (self.final.ada[-1], self.final.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        mask: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, T, H, W), t (B,), text (B, L, text_dim), mask (B, L) bool -> v (B, C, T, H, W).

        `cond` (B, cond_channels, T, H, W) are extra input channels for control inputs (issue 4).
        The model computes in its parameters' dtype (bf16 for fast CPU inference; autocast would recast
        every weight on every call, measured at a third of the step time); v comes back in x's dtype.
        """
        pt, ph, pw = self.cfg.patch_size
        _, _, T, H, W = x.shape
        if T % pt or H % ph or W % pw:
            raise ValueError(f"latent grid {(T, H, W)} is not divisible by the patch {self.cfg.patch_size}")
        grid = (T // pt, H // ph, W // pw)
        dtype = self.patch_embed.weight.dtype
        x_in = x if cond is None else torch.cat([x, cond], dim=1)
        tokens = rearrange(
            x_in.to(dtype), "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=pt, ph=ph, pw=pw
        )
        h = self.patch_embed(tokens)  # (B, N, D)
        c, ctx = self.prompt(t, text, mask)  # c (B, 1, D): per sample unless the camera makes it per frame
        if cond is not None and self.camera_embed is not None:
            cam = camera_summary(cond, self.cfg.in_channels)  # (B, T, 5)
            cam = cam.reshape(cam.shape[0], grid[0], pt, -1).mean(2)  # per token frame
            c = c + self.camera_embed(cam.to(dtype))  # (B, T', D)
        positions = None
        if cond is not None and self.cfg.camera_rope:
            positions = camera_positions(cond, self.cfg.in_channels, self.cfg.patch_size)  # (B, N, 3)
        head_dim = self.cfg.dim // self.cfg.heads
        angles = rope_angles(grid, head_dim, device=x.device, positions=positions)  # ([B,] N, head_dim / 2)
        rope = rope_tables(angles, dtype)  # cos, sin (N, head_dim)

        skips = []
        for block in self.blocks:
            h = block(h, c, ctx, mask, rope, skip=skips.pop() if block.skip is not None else None)
            if self.cfg.long_skip and len(skips) < self.cfg.depth // 2 and block.skip is None:
                skips.append(h)
        h = self.final(h, c)  # (B, N, pt*ph*pw*C)
        sizes = dict(t=grid[0], h=grid[1], w=grid[2], pt=pt, ph=ph, pw=pw)
        v = rearrange(h, "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)", **sizes)
        return v.to(x.dtype)  # (B, C, T, H, W)

    def prompt(
        self, t: torch.Tensor, text: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning of time and prompt: c (B, 1, D), time and the pooled prompt, and the prompt's
        tokens at the model width (B, L, D), refined where the model has a token refiner."""
        dtype = self.patch_embed.weight.dtype
        text = text.to(dtype)
        c = self.t_embed(timestep_embedding(t).to(dtype)) + self.pool_embed(masked_mean(text, mask))
        c = c[:, None]
        ctx = self.text_proj(text)
        if self.refiner is not None:
            ctx = self.refiner(ctx, mask, c)
        return c, ctx

    def widen_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of this DiT without control inputs (or with fewer), trained on fewer latent
        channels or fewer text features (the color features), made to fit this one: the patch
        embedding's columns for the new input channels, the text projections' columns for the new
        features and the final layer's rows for the new latent channels are zero, and a missing camera
        embedding or token refiner takes this model's initial one (zero output; the identity). The model
        computes what it did on the channels it knew; the controls start switched off (as adaLN-Zero
        starts each block off) and the new latent channels at zero velocity, to be learned. A shallower
        DiT's blocks are spread over this one's depth (deepen)."""
        own = self.state_dict()
        state = self.deepen(state)
        state = {
            **state,
            **{
                k: v for k, v in own.items() if k.startswith(("camera_embed.", "refiner.")) and k not in state
            },
        }
        for key in ("text_proj.0.weight", "pool_embed.0.weight"):  # more text features: zero columns
            w, want = state[key], own[key].shape[1]
            if w.shape[1] < want:
                state[key] = torch.cat([w, w.new_zeros(w.shape[0], want - w.shape[1])], 1)
        key = "patch_embed.weight"
        w = state[key]
        P = self.cfg.patch_size[0] * self.cfg.patch_size[1] * self.cfg.patch_size[2]
        C, C0 = self.cfg.in_channels, state["final.linear.weight"].shape[0] // P
        have, want = w.shape[1] // P, C + self.cfg.cond_channels
        if (have, C0) == (want, C):
            return state
        cond0 = have - C0
        if C0 == C and C <= have < want:  # fewer control channels: new columns at the end
            columns = list(range(have))
        elif C0 < C and cond0 in (0, cond_channels(C0)) and self.cfg.cond_channels == cond_channels(C):
            # [latents, keyframe latents, extra maps]: each part keeps its first channels' columns
            keyframes = [C + i for i in range(C0)] if cond0 else []
            extras = [2 * C + i for i in range(cond0 - C0)] if cond0 else []
            columns = [*range(C0), *keyframes, *extras]
        else:
            raise ValueError(
                f"cannot widen a DiT of {C0} latent and {cond0} control channels to {C}, {want - C}"
            )
        grown = w.new_zeros(w.shape[0], P, want)
        grown[:, :, columns] = w.reshape(w.shape[0], P, have)  # tokens are (pt ph pw c)
        out = {**state, key: grown.reshape(w.shape[0], -1)}
        for name in ("weight", "bias"):  # the velocity's rows, (pt ph pw c) too
            old = state[f"final.linear.{name}"]
            new = old.new_zeros(P, C, *old.shape[1:])
            new[:, :C0] = old.reshape(P, C0, *old.shape[1:])
            out[f"final.linear.{name}"] = new.reshape(P * C, *old.shape[1:])
        return out

    def deepen(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of a shallower DiT made to fit this one's depth: its block i becomes block
        i * depth // old_depth, and the blocks between start as this model's own fresh ones. A fresh
        block is exactly the identity (adaLN-Zero's gates and the cross-attention's output at zero),
        so the deeper model computes what the shallower one did, and trains on from there (progressive
        stacking, Gong et al. 2019, with identity blocks between the trained ones, not copies)."""
        old = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        depth = self.cfg.depth
        if old >= depth:
            return state
        if self.cfg.long_skip:
            raise ValueError("cannot deepen a DiT with U-ViT long skips (they pair blocks by depth)")
        own = self.state_dict()
        grown = {k: v for k, v in state.items() if not k.startswith("blocks.")}
        grown |= {k: v for k, v in own.items() if k.startswith("blocks.")}  # fresh: the identity
        for k, v in state.items():
            if k.startswith("blocks."):
                _, i, rest = k.split(".", 2)
                grown[f"blocks.{int(i) * depth // old}.{rest}"] = v
        return grown

    def transplant_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A trained DiT over another latent format (other patches or latent channels: a new VAE)
        made to fit this one: the blocks, the time, text and camera paths keep their weights; the
        patch embedding and the final projection, the only layers that speak the latent format,
        start as this model's own (the projection at zero: v = 0, as a fresh DiT starts)."""
        own = self.state_dict()
        fresh = {k for k in own if k.startswith(("patch_embed.", "final.linear."))}
        missing = sorted(k for k in own if k not in state and k not in fresh)
        if missing:
            raise ValueError(f"cannot transplant a DiT without {', '.join(missing[:3])}")
        kept = {k: v for k, v in state.items() if k in own and k not in fresh}
        bad = [k for k, v in kept.items() if v.shape != own[k].shape]
        if bad:
            raise ValueError(f"cannot transplant a DiT of another width or depth ({bad[0]})")
        return {**kept, **{k: own[k] for k in fresh}}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
