"""Which of several samples the prompt explains best, asked of the model that drew them.

A conditional diffusion model is also a classifier (Li et al. 2023, "Your Diffusion Model is
Secretly a Zero-Shot Classifier"; Clark & Jaini 2023): a sample x0 fits a prompt as much as the
prompt helps the model recover it from noise. Noised to x_t on the straight path, the model's
velocity error with the prompt against without it (the negative prompt, "" for none),

    evidence(x0) = E_{t, noise} [ |v_neg(x_t) - v*|^2 - |v_cond(x_t) - v*|^2 ],   v* = noise - x0,

is the prompt's log-likelihood ratio up to the ELBO's weighting. Every candidate is asked at the same
times with the same noise (common random numbers), so that their differences are not the draws'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mutoscope.diffusion.flow import interpolate, target
from mutoscope.diffusion.sampling import paired_prompts

# Times the evidence is read at: the middle of the path, where the layout the prompt asks for is
# decided (from the truth noised to t0 <= 0.5 the model redraws it; docs/BENCHMARKS.md, "Where the
# claims are lost"), and neither end, where the prompt changes little.
EVIDENCE_TIMES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@torch.no_grad()
def prompt_evidence(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    text: torch.Tensor,
    mask: torch.Tensor,
    neg_text: torch.Tensor,
    neg_mask: torch.Tensor,
    generator: torch.Generator,
    times: tuple[float, ...] = EVIDENCE_TIMES,
) -> torch.Tensor:
    """(N,) evidence for each of N candidates x0 (N, ...) under one prompt (1, L, D) against the
    negative (1, L', D); `model(x, t, text, mask)` is the raw velocity model (no guidance), called once
    on a batch of 2 N len(times)."""
    n, k = x0.shape[0], len(times)
    noise = torch.randn((k, *x0.shape[1:]), generator=generator).to(x0)  # shared by the candidates
    t = torch.tensor(times, dtype=x0.dtype, device=x0.device).repeat(n)  # (n k): candidate-major
    x0k = x0.repeat_interleave(k, dim=0)
    noisek = noise.repeat(n, *([1] * (x0.ndim - 1)))
    xt = interpolate(x0k, noisek, t)
    both_text, both_mask = paired_prompts(text, mask, neg_text, neg_mask, n * k)
    v_cond, v_neg = model(torch.cat([xt, xt]), torch.cat([t, t]), both_text, both_mask).chunk(2)
    want = target(x0k, noisek)
    dims = tuple(range(1, x0.ndim))
    gain = (v_neg - want).square().mean(dims) - (v_cond - want).square().mean(dims)  # (n k)
    return gain.reshape(n, k).mean(1)
