"""The DiT: shapes, zero-init identity, 3-D RoPE's relative positions, the text mask, presets."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mutoscope.config import DiTConfig, preset
from mutoscope.model import DiT, DiTBlock, controls
from mutoscope.model.attention import (
    apply_rope,
    attention,
    rope_angles,
    rope_positions,
    rope_split,
    rope_tables,
)

CFG = DiTConfig(in_channels=4, dim=32, depth=3, heads=2)  # odd depth: a middle block without a skip


def _inputs(b=2, t=2, h=4, w=6, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, t, h, w, generator=g)
    tt = torch.rand(b, generator=g)
    text = torch.randn(b, length, 384, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False  # the first prompt has 3 real tokens, 2 padding
    return x, tt, text, mask


def _perturbed(model: DiT, seed=1) -> DiT:
    """The model with every weight moved off its (partly zero) init, so each path contributes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("long_skip", [False, True])
def test_forward_shape(long_skip):
    model = _perturbed(DiT(dataclasses.replace(CFG, long_skip=long_skip)))
    x, t, text, mask = _inputs()
    v = model(x, t, text, mask)
    assert v.shape == x.shape and v.dtype == x.dtype
    assert torch.isfinite(v).all() and v.abs().mean() > 0


def test_block_shapes_and_fresh_block_is_identity():
    model = DiT(dataclasses.replace(CFG, long_skip=True))
    *_, mask = _inputs()
    h = torch.randn(2, 2 * 2 * 3, 32)  # (B, N, D) for a (2, 2, 3) token grid
    c, ctx = torch.randn(2, 1, 32), torch.randn(2, 5, 32)  # c per sample (one frame)
    rope = rope_tables(rope_angles((2, 2, 3), 16), torch.float32)
    first, last = model.blocks[0], model.blocks[-1]
    assert isinstance(first, DiTBlock) and first.skip is None and last.skip is not None
    assert torch.equal(first(h, c, ctx, mask, rope), h)  # adaLN-Zero: exactly the identity
    # A fresh U-ViT block also ignores its skip input at first ([I | 0] fusion).
    assert torch.allclose(last(h, c, ctx, mask, rope, skip=torch.randn_like(h)), h, atol=1e-6)
    _perturbed(first)
    out = first(h, c, ctx, mask, rope)
    assert out.shape == h.shape and not torch.allclose(out, h)


@pytest.mark.parametrize("long_skip", [False, True])
def test_fresh_model_predicts_zero(long_skip):
    model = DiT(dataclasses.replace(CFG, long_skip=long_skip))
    x, t, text, mask = _inputs()
    assert torch.equal(model(x, t, text, mask), torch.zeros_like(x))


def test_rope_relative_positions():
    """q.k after RoPE depends only on the offset between positions, on each of the t, h, w axes."""
    head_dim, grid = 16, (3, 5, 7)
    rope = rope_tables(rope_angles(grid, head_dim), torch.float64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, head_dim, generator=g, dtype=torch.float64)
    n = grid[0] * grid[1] * grid[2]
    qr = apply_rope(q.expand(1, 1, n, head_dim), rope)[0, 0].reshape(*grid, head_dim)
    kr = apply_rope(k.expand(1, 1, n, head_dim), rope)[0, 0].reshape(*grid, head_dim)
    score = torch.einsum("abcd,efgd->abcefg", qr, kr)  # every query position with every key position
    assert torch.allclose(score[0, 1, 2, 1, 3, 4], score[1, 2, 3, 2, 4, 5])  # both shifted by (1, 1, 1)
    assert torch.allclose(score[2, 4, 6, 0, 1, 0], score[2, 3, 6, 0, 0, 0])  # offset (-2, -3, -6) twice
    for axis in range(3):  # shifting only one axis also keeps the score
        a, b = [0, 1, 2], [1, 2, 3]
        a2, b2 = list(a), list(b)
        a2[axis] += 1
        b2[axis] += 1
        assert torch.allclose(score[(*a, *b)], score[(*a2, *b2)])
    # ...and the score does change with the offset on every axis (each axis owns channels).
    for axis in range(3):
        b2 = [1, 2, 3]
        b2[axis] += 1
        assert not torch.allclose(score[(0, 1, 2, 1, 2, 3)], score[(0, 1, 2, *b2)])
    # Rotation keeps norms.
    assert torch.allclose(qr.norm(dim=-1), q.norm().expand(*grid))


def test_rope_at_given_positions():
    """Per-sample positions: the grid's own indices give the grid's angles; each sample of a batch is
    rotated by its own table; a fractional shift on one axis turns only that axis's channels."""
    head_dim, grid = 16, (2, 3, 4)
    base = rope_angles(grid, head_dim)
    pos = rope_positions(grid)
    shifted = pos.clone()
    shifted[:, 2] += 0.5  # half a token along w
    angles = rope_angles(grid, head_dim, positions=torch.stack([pos, shifted]))
    assert angles.shape == (2, *base.shape) and torch.equal(angles[0], base)
    t_ch, h_ch, _ = (d // 2 for d in rope_split(head_dim))
    assert torch.equal(angles[1, :, : t_ch + h_ch], base[:, : t_ch + h_ch])
    assert not torch.allclose(angles[1, :, t_ch + h_ch :], base[:, t_ch + h_ch :])

    x = torch.randn(2, 5, 24, head_dim)  # (B, heads, N, d)
    both = apply_rope(x, rope_tables(angles, torch.float32))
    for b in range(2):
        alone = apply_rope(x[b : b + 1], rope_tables(angles[b], torch.float32))
        assert torch.allclose(both[b : b + 1], alone, atol=1e-6)


def test_camera_rope_is_the_grid_without_a_camera_and_moves_with_one():
    """A model with scene-anchored positions computes what the screen-anchored one does when no camera
    is given (flow zero), and something else when the camera moves."""
    cfg = dataclasses.replace(CFG, cond_channels=controls.cond_channels(4))
    screen = _perturbed(DiT(cfg))
    scene = DiT(dataclasses.replace(cfg, camera_rope=True)).eval()
    scene.load_state_dict(screen.state_dict())
    x, t, text, mask = _inputs(t=3)
    cond = torch.zeros(2, cfg.cond_channels, 3, 4, 6)
    with torch.no_grad():
        assert torch.equal(scene(x, t, text, mask, cond), screen(x, t, text, mask, cond))
        cond[1, 5, 1:] = 0.5  # sample 1: the scene slides right in latent frames 1 and 2
        cond[1, 7] = 1.0
        a, b = scene(x, t, text, mask, cond), screen(x, t, text, mask, cond)
    assert torch.allclose(a[0], b[0], atol=1e-6)  # sample 0 has no camera: as before
    assert not torch.allclose(a[1], b[1], atol=1e-3)


def test_self_attention_matches_the_textbook_form():
    """The fast layout (q and k normalized together, RoPE as a matmul) computes the plain formula:
    per-head RMS norm with each its own gain, then the pair rotation
    (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)."""
    from einops import rearrange

    from mutoscope.model.attention import SelfAttention

    torch.manual_seed(0)
    attn = SelfAttention(32, 2, qk_norm=True).double()
    with torch.no_grad():
        attn.q_norm.weight.uniform_(0.5, 1.5)
        attn.k_norm.weight.uniform_(0.5, 1.5)
    grid = (2, 2, 3)
    x = torch.randn(2, 12, 32, dtype=torch.float64)
    angles = rope_angles(grid, 16).double()
    rope = rope_tables(angles, torch.float64)

    def rotate(v):  # pairs turned by their angles, written out
        c, s = angles.cos(), angles.sin()
        v0, v1 = v[..., 0::2], v[..., 1::2]
        return torch.stack([v0 * c - v1 * s, v1 * c + v0 * s], dim=-1).flatten(-2)

    def rms(v, w):
        return v / v.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * w

    q, k, v = rearrange(attn.qkv(x), "b n (three h d) -> three b h n d", three=3, h=2)
    q, k = rotate(rms(q, attn.q_norm.weight)), rotate(rms(k, attn.k_norm.weight))
    ref = attn.out(rearrange(torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v, "b h n d -> b n (h d)"))
    with torch.no_grad():
        assert torch.allclose(attn(x, rope), ref, atol=1e-10)


def test_rope_split():
    for head_dim in (16, 64, 72, 128):
        split = rope_split(head_dim)
        assert sum(split) == head_dim and all(s % 2 == 0 and s > 0 for s in split)
    with pytest.raises(ValueError):
        rope_split(15)


def test_padding_tokens_are_ignored():
    model = _perturbed(DiT(CFG))
    x, t, text, mask = _inputs()
    v = model(x, t, text, mask)
    noisy = text.clone()
    noisy[0, 3:] = 100 * torch.randn(2, 384)  # change only the padding of prompt 0
    assert torch.allclose(model(x, t, noisy, mask), v, atol=1e-5)
    noisy[0, 1] += 1.0  # a real token does matter
    assert not torch.allclose(model(x, t, noisy, mask)[0], v[0], atol=1e-4)


def test_conditioning_matters():
    model = _perturbed(DiT(CFG))
    x, t, text, mask = _inputs()
    v = model(x, t, text, mask)
    assert not torch.allclose(model(x, t + 0.1, text, mask), v, atol=1e-4)
    assert torch.allclose(model(x[:1], t[:1], text[:1, :3], mask[:1, :3]), v[:1], atol=1e-5)  # batch-free


def test_bf16_weights_stay_close():
    model = _perturbed(DiT(CFG))
    x, t, text, mask = _inputs()
    v = model(x, t, text, mask)
    v16 = model.to(torch.bfloat16)(x, t, text, mask)
    assert v16.dtype == torch.float32  # the output comes back in x's dtype
    assert ((v16 - v).norm() / v.norm()).item() < 0.03


def test_cpu_bf16_attention_matches_sdpa():
    """The plain bf16 path used on the CPU computes what F.scaled_dot_product_attention does."""
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 10, 16, generator=g)
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)
    mask[1, ..., 6:] = False
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask)
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), ref, atol=0.03)
    assert torch.equal(attention(q, k, v, mask), ref)  # fp32: SDPA itself


def test_grid_must_divide_by_patch():
    with pytest.raises(ValueError, match="divisible"):
        DiT(CFG)(
            torch.randn(1, 4, 2, 5, 6), torch.rand(1), torch.randn(1, 2, 384), torch.ones(1, 2, dtype=bool)
        )


@pytest.mark.parametrize(
    ("name", "millions"), [("tiny", 12.2), ("small", 134), ("base", 593), ("large", 1156)]
)
def test_preset_parameter_counts(name, millions):
    """The sizes stated beside PRESETS in config.py, counted on the meta device (no memory)."""
    with torch.device("meta"):
        model = DiT(preset(name).dit)
    assert abs(model.num_params() / 1e6 - millions) / millions < 0.01


def test_a_deeper_dit_grown_from_a_trained_one_computes_what_it_did():
    """DiT.deepen: the trained blocks spread over the new depth, fresh (identity) blocks between."""
    shallow = _perturbed(DiT(CFG))
    deep = DiT(dataclasses.replace(CFG, depth=5)).eval()
    deep.load_state_dict(deep.widen_state(shallow.state_dict()))
    x, t, text, mask = _inputs()
    assert torch.allclose(deep(x, t, text, mask), shallow(x, t, text, mask), atol=1e-6)
    assert torch.equal(deep.blocks[3].attn.qkv.weight, shallow.blocks[2].attn.qkv.weight)  # 2 * 5 // 3
    _perturbed(deep.blocks[2])  # a new block (2 and 4 are new) trained off the identity changes it
    assert not torch.allclose(deep(x, t, text, mask), shallow(x, t, text, mask), atol=1e-4)
    with pytest.raises(ValueError, match="long skips"):
        DiT(dataclasses.replace(CFG, depth=5, long_skip=True)).deepen(shallow.state_dict())
