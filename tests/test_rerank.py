"""The model's own reading of which candidate a prompt explains best (diffusion/rerank.py)."""

from __future__ import annotations

import torch

from mutoscope.diffusion.rerank import EVIDENCE_TIMES, prompt_evidence


def _denoiser(means: dict[int, torch.Tensor], calls: list[int]):
    """A velocity model that believes prompt p (its text's first feature) means the sample means[p]:
    from x_t it predicts x0 = means[p], so v = (x_t - means[p]) / t, exact for that sample."""

    def model(x, t, text, mask):
        calls.append(x.shape[0])
        x0 = torch.stack([means[int(p)] for p in text[:, 0, 0]])
        return (x - x0) / t.reshape(-1, 1, 1, 1, 1)

    return model


def test_the_candidate_the_prompt_means_has_the_most_evidence():
    g = torch.Generator().manual_seed(0)
    asked, other = torch.randn(2, 3, 1, 4, 4, generator=g)
    calls: list[int] = []
    model = _denoiser({1: asked, 0: torch.zeros_like(asked)}, calls)  # the negative: the mean, zero
    prompt, negative = torch.ones(1, 2, 8), torch.zeros(1, 3, 8)  # first feature: 1 the prompt, 0 none
    candidates = torch.stack([other, asked, 0.5 * asked + 0.5 * other, torch.zeros_like(asked)])
    masks = torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    evidence = prompt_evidence(
        model, candidates, prompt, masks[0], negative, masks[1], torch.Generator().manual_seed(1)
    )
    assert evidence.shape == (4,)
    assert int(evidence.argmax()) == 1
    assert evidence[1] > evidence[2] > evidence[0]  # nearer what the prompt means, more evidence
    assert evidence[3] < 0  # what the negative means: the prompt explains it worse
    assert calls == [2 * 4 * len(EVIDENCE_TIMES)]  # one forward for every candidate, time and prompt


def test_every_candidate_is_asked_with_the_same_noise():
    """Equal candidates get equal evidence: the draws are shared, not per candidate."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 1, 4, 4, generator=g)
    model = _denoiser({1: 0.3 * x[0], 0: torch.zeros_like(x[0])}, [])
    mask = torch.ones(1, 2, dtype=torch.bool)
    prompt, negative = torch.ones(1, 2, 8), torch.zeros(1, 2, 8)
    evidence = prompt_evidence(
        model, x.repeat(3, 1, 1, 1, 1), prompt, mask, negative, mask, torch.Generator().manual_seed(3)
    )
    assert torch.allclose(evidence, evidence[:1].expand(3))
