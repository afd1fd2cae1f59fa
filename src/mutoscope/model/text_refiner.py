"""A token refiner: trainable self-attention over the prompt's tokens before the DiT reads them
(HunyuanVideo's "individual token refiner"), so that each token can take in its neighbours.

Why: the DiT's cross-attention reads the frozen MiniLM's token states one by one, so "the blue square"
is found only if the state of "square" says it is blue. It does not: a linear read-out of a color from
MiniLM's state of the first shape word in "a {color} {shape} and a {color} {shape} ..." names its own
color in 21% of prompts with held-out color-shape pairs and the other object's in 31% (chance 11%;
bench/text_binding.py, 2026-12-07). The model drew the right color in a wrong shape in 43-45% of the
dev suite's shape claims. A refiner block with 1-D RoPE can learn "take in the color word before me"
in one attention head.

Each block is pre-norm self-attention (qk-norm, RoPE over token positions, padding never attended)
and an MLP, each gated by the time-and-prompt vector c. The gates start at zero (adaLN-Zero): a fresh
refiner is the identity, so a trained DiT gains one and computes what it did.
"""

from __future__ import annotations

import torch
from torch import nn

from mutoscope.model.attention import ROPE_THETA, SelfAttention, rope_tables


def token_rope(
    length: int, head_dim: int, dtype: torch.dtype, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (L, head_dim) of 1-D RoPE over token positions 0..L-1, every channel pair rotating."""
    inv_freq = ROPE_THETA ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq
    return rope_tables(angles.float(), dtype)


class RefinerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, qk_norm=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))  # the two gates, from c

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """x (B, L, D), c (B, 1, D), mask (B, L) True where tokens exist -> x."""
        gate_msa, gate_mlp = self.ada(c).chunk(2, dim=-1)
        x = x + gate_msa * self.attn(self.norm1(x), rope, mask=mask)
        return x + gate_mlp * self.mlp(self.norm2(x))


class TokenRefiner(nn.Module):
    """`forward(text, mask, c) -> text`: text (B, L, D) at the model width, c (B, 1, D)."""

    def __init__(self, dim: int, heads: int, depth: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.head_dim = dim // heads
        self.blocks = nn.ModuleList(RefinerBlock(dim, heads, mlp_ratio) for _ in range(depth))

    def zero_gates(self) -> None:
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)

    def forward(self, text: torch.Tensor, mask: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        rope = token_rope(text.shape[1], self.head_dim, text.dtype, text.device)
        for block in self.blocks:
            text = block(text, c, mask, rope)
        return text
