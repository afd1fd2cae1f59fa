"""The token refiner: a DiT gains one and computes what it did; refined tokens take in their
neighbours, in order, and never the padding."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mutoscope.config import DiTConfig
from mutoscope.model import DiT
from mutoscope.model.text_refiner import TokenRefiner

CFG = DiTConfig(in_channels=4, dim=32, depth=2, heads=2)


def _inputs(b=2, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, 2, 4, 4, generator=g)
    text = torch.randn(b, length, 384, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False  # the first prompt has 3 real tokens, 2 padding
    return x, torch.rand(b, generator=g), text, mask


def _perturb(module: torch.nn.Module, seed=1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_a_trained_dit_gaining_a_refiner_computes_what_it_did():
    plain = DiT(CFG)
    _perturb(plain)
    refined = DiT(dataclasses.replace(CFG, text_refiner=2))
    refined.load_state_dict(refined.widen_state(plain.state_dict()))
    x, t, text, mask = _inputs()
    assert torch.equal(refined(x, t, text, mask), plain(x, t, text, mask))
    _perturb(refined.refiner)  # the gates opened: the tokens change, and so the velocity
    assert not torch.allclose(refined(x, t, text, mask), plain(x, t, text, mask), atol=1e-4)


def _refiner() -> TokenRefiner:
    refiner = TokenRefiner(dim=32, heads=2, depth=2)
    _perturb(refiner)
    return refiner.eval()


def test_a_refined_token_takes_in_its_neighbours_in_order():
    refiner = _refiner()
    g = torch.Generator().manual_seed(2)
    text, c = torch.randn(1, 4, 32, generator=g), torch.randn(1, 1, 32, generator=g)
    mask = torch.ones(1, 4, dtype=torch.bool)
    out = refiner(text, mask, c)
    changed = text.clone()
    changed[0, 1] += torch.randn(32, generator=g)  # the word before token 2 ("blue" before "square")
    assert not torch.allclose(refiner(changed, mask, c)[0, 2], out[0, 2], atol=1e-4)
    # Order matters (RoPE over positions): tokens 0 and 1 swapped do not give token 2 what it had.
    swapped = text[:, [1, 0, 2, 3]]
    assert not torch.allclose(refiner(swapped, mask, c)[0, 2], out[0, 2], atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padding_is_never_attended(dtype):
    refiner = _refiner().to(dtype)
    g = torch.Generator().manual_seed(3)
    text, c = torch.randn(2, 5, 32, generator=g).to(dtype), torch.randn(2, 1, 32, generator=g).to(dtype)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 3:] = False
    out = refiner(text, mask, c)
    noisy = text.clone()
    noisy[0, 3:] = 100
    assert torch.equal(refiner(noisy, mask, c)[0, :3], out[0, :3])
    unpadded = refiner(text[:1, :3], mask[:1, :3], c[:1])[0]
    assert torch.allclose(unpadded.float(), out[0, :3].float(), atol=1e-5 if dtype == torch.float32 else 0.02)
