"""Rectified flow on one screen: interpolation, target, time sampling, time shift, loss, time grid.

Convention (shared by training and sampling): t = 0 is data, t = 1 is noise, the path is the straight
line x_t = (1 - t) x0 + t noise and the model predicts its velocity dx_t/dt = noise - x0. Sampling
integrates from t = 1 down to t = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Velocity = Callable[..., torch.Tensor]  # model(x_t, t, text, mask) -> v


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast against x."""
    return t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise: the straight path of rectified flow (Liu et al. 2022, arXiv:2209.03003)."""
    t = _bcast(t, x0)
    return (1 - t) * x0 + t * noise


def target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Velocity of the straight path, d x_t / dt = noise - x0 (Lipman et al. 2023, flow matching)."""
    return noise - x0


def sample_t(
    n: int,
    generator: torch.Generator | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Logit-normal t = sigmoid(N(mean, std)), (n,): weights mid-path times (Esser et al. 2024, SD3)."""
    u = torch.randn(n, generator=generator, device=generator.device if generator else device)
    return torch.sigmoid(mean + std * u).to(device)


def shift_t(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t' = s t / (1 + (s - 1) t): more time near noise for larger inputs (Esser et al. 2024, SD3 eq. 23)."""
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(tokens: int, base_tokens: int = 256) -> float:
    """Shift s = sqrt(tokens / base_tokens) that keeps the noise level per token alike (SD3, sec. 5.3.2)."""
    return math.sqrt(tokens / base_tokens)


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from 1 (noise) to 0 (data), uniform then shifted (SD3's sampling schedule)."""
    return shift_t(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()


def loss(
    model: Velocity,
    x0: torch.Tensor,
    text: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
    shift: float = 1.0,
    **model_kwargs,
) -> torch.Tensor:
    """Conditional flow-matching loss E ||model(x_t, t) - (noise - x0)||^2 (Lipman et al. 2023)."""
    gen_device = generator.device if generator is not None else x0.device
    noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    t = shift_t(sample_t(x0.shape[0], generator, device=gen_device), shift).to(x0.device)
    v = model(interpolate(x0, noise, t), t, text, mask, **model_kwargs)
    return torch.mean((v.float() - target(x0, noise).float()) ** 2)
