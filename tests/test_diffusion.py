"""Rectified flow and its samplers: closed forms, exactness on linear fields, CFG, the loss."""

from __future__ import annotations

import math

import pytest
import torch

from mutoscope.config import DiTConfig
from mutoscope.diffusion import flow
from mutoscope.diffusion.sampling import ancestral, cfg_wrapper, euler, heun
from mutoscope.model import DiT, controls


def test_interpolation_endpoints_and_velocity():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    assert torch.equal(flow.interpolate(x0, noise, torch.zeros(2)), x0)
    assert torch.equal(flow.interpolate(x0, noise, torch.ones(2)), noise)
    t, h = torch.tensor([0.3, 0.7]), 1e-3
    slope = (flow.interpolate(x0, noise, t + h) - flow.interpolate(x0, noise, t)) / h
    assert torch.allclose(slope, flow.target(x0, noise), atol=1e-3)  # the target is d x_t / dt


def test_logit_normal_time_sampling():
    t = flow.sample_t(20_000, torch.Generator().manual_seed(0))
    assert ((t > 0) & (t < 1)).all()
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean().item()) < 0.03 and abs(logit.std().item() - 1) < 0.03
    again = flow.sample_t(20_000, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


def test_time_shift():
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(flow.shift_t(t, 1.0), t)
    shifted = flow.shift_t(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and (shifted[1:-1] > t[1:-1]).all()  # more time near noise
    assert torch.allclose(flow.shift_t(torch.tensor(0.5), 3.0), torch.tensor(0.75))  # 1.5 / 2
    assert (shifted.diff() > 0).all()
    assert flow.resolution_shift(1024, 256) == 2.0


def test_time_grid():
    ts = flow.time_grid(8, shift=2.0)
    assert ts.shape == (9,) and ts[0] == 1 and ts[-1] == 0 and (ts.diff() < 0).all()


def test_euler_step_is_x_plus_dt_v():
    a, b = 0.7, torch.tensor([1.0, -2.0])

    def model(x, t):  # a field depending on x and t
        return a * x + b * t[:, None]

    x = torch.tensor([[0.5, 1.5]])
    ts = torch.tensor([1.0, 0.6])
    expected = x + (0.6 - 1.0) * (a * x + b * 1.0)
    assert torch.allclose(euler(model, x, ts), expected)


def test_euler_constant_field_reaches_x_minus_v():
    v = torch.randn(1, 3)
    out = euler(lambda x, t: v.expand_as(x), torch.zeros(1, 3), flow.time_grid(7, shift=3.0))
    assert torch.allclose(out, -v, atol=1e-6)  # integral of v from 1 to 0 on any grid


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_heun_exact_on_field_linear_in_t(steps):
    a, b = torch.tensor([0.3, -1.0]), torch.tensor([2.0, 0.5])
    x1 = torch.tensor([[1.0, 2.0]])
    out = heun(lambda x, t: (a + b * t[:, None]).expand_as(x), x1, flow.time_grid(steps, shift=2.0))
    assert torch.allclose(out, x1 - a - b / 2, atol=1e-6)  # x(0) = x(1) - int_0^1 (a + b t) dt


def test_heun_is_second_order():
    """On dx/dt = x (x(0) = x(1) / e), halving the step cuts Heun's error ~4x and Euler's ~2x."""
    x1 = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(-1.0)

    def err(sampler, steps):
        ts = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
        return abs(sampler(lambda x, t: x, x1, ts).item() - exact)

    assert 3.5 < err(heun, 8) / err(heun, 16) < 4.5
    assert 1.8 < err(euler, 8) / err(euler, 16) < 2.2


def test_callback_counts_and_can_stop():
    seen = []
    euler(lambda x, t: x, torch.ones(1), flow.time_grid(4), callback=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    class Stop(Exception):
        pass

    calls = []

    def model(x, t):
        calls.append(1)
        return x

    def stop_at_two(done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        heun(model, torch.ones(1), flow.time_grid(10), callback=stop_at_two)
    assert len(calls) == 4  # two Heun steps, nothing after


def _seeded(sampler):
    """The sampler with a fresh generator of seed 1 each call: runs to compare draw the same noise."""
    return lambda *args, **kw: sampler(*args, **kw, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("sampler", [euler, heun, _seeded(ancestral)])
def test_a_projection_holds_its_region_on_the_path_to_its_target_and_leaves_the_rest(sampler):
    g = torch.Generator().manual_seed(0)
    noise, target = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    region = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0, 0.0])

    def field(x, t):  # elementwise: the free coordinates do not see the held ones
        return torch.sin(x) + t[:, None]

    ts = flow.time_grid(6, shift=2.0)
    held = sampler(field, noise, ts, project=controls.held_path(target, noise, region))
    free = sampler(field, noise, ts)
    assert torch.allclose(held[:, :2], target[:, :2])  # ends on the target (t = 0 there)
    assert torch.allclose(held[:, 3:], free[:, 3:])
    seen = []
    project = controls.held_path(target, noise, region)
    x = torch.zeros(2, 6)
    on_path = 0.25 * noise + 0.75 * target  # the path at t = 0.25
    assert torch.allclose(project(x, torch.tensor(0.25))[:, 2], 0.5 * on_path[:, 2])  # a soft edge blends
    sampler(field, noise, ts, project=lambda x, t: seen.append(float(t)) or project(x, t))
    assert seen[0] == 1.0 and seen[-1] == 0.0  # from the start to the end


def test_ancestral_at_eta_0_is_euler():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g)

    def field(x, t):
        return torch.sin(x) * t[:, None] + x

    ts = flow.time_grid(7, shift=3.0)
    assert torch.allclose(ancestral(field, x, ts, eta=0.0), euler(field, x, ts), atol=1e-6)


def test_ancestral_keeps_every_state_on_the_flow_marginal_and_ends_on_the_data():
    """Data all at one point c: the exact field is v = (x - c) / t, and the marginal at t is
    (1 - t) c + t N(0, 1). Each step draws fresh noise, yet every state the sampler reaches has that
    distribution (DDPM's posterior keeps the marginals), and t = 0 is c."""
    c, n = 0.7, 40_000
    x = torch.randn(n, generator=torch.Generator().manual_seed(0))
    states = []

    def watch(x, t):
        states.append((float(t), x.clone()))
        return x

    ts = flow.time_grid(8)
    end = ancestral(lambda x, t: (x - c) / t, x, ts, project=watch,
                    generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.allclose(end, torch.full_like(end, c), atol=1e-5)
    for t, state in states[1:-1]:
        implied = (state - (1 - t) * c) / t  # the noise each state is made of
        assert abs(implied.mean()) < 0.02 and abs(implied.std() - 1) < 0.02, t
        assert abs(torch.corrcoef(torch.stack([implied, x]))[0, 1]) < 0.99  # not just the start's noise
    first = (states[1][1] - (1 - states[1][0]) * c) / states[1][0]
    last = (states[-2][1] - (1 - states[-2][0]) * c) / states[-2][0]
    assert abs(torch.corrcoef(torch.stack([first, last]))[0, 1]) < 0.5  # fresh noise over the path


def test_ancestral_draws_its_noise_from_the_generator():
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))

    def field(x, t):
        return x * 0.5

    ts = flow.time_grid(5)
    a, b, c = (ancestral(field, x, ts, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def _text_model(x, t, text, mask):
    """A toy conditional field: depends on x, t and the masked mean of the text."""
    pooled = (text * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return x * (1 + t.reshape(-1, 1, 1)) + pooled[:, :1, None] * torch.ones_like(x)


def test_cfg_wrapper_equals_guidance_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, generator=g)
    t = torch.tensor([0.4, 0.4])
    text, mask = torch.randn(2, 5, 8, generator=g), torch.ones(2, 5, dtype=torch.bool)
    neg, neg_mask = torch.randn(1, 2, 8, generator=g), torch.ones(1, 2, dtype=torch.bool)  # shorter, batch 1
    cond = _text_model(x, t, text, mask)
    uncond = _text_model(x, t, neg.expand(2, -1, -1), neg_mask.expand(2, -1))
    for scale in (0.0, 1.0, 4.5):
        guided = cfg_wrapper(_text_model, text, mask, neg, neg_mask, scale)(x, t)
        assert torch.allclose(guided, uncond + scale * (cond - uncond), atol=1e-6)


def test_cfg_batches_both_prompts_in_one_forward():
    batches = []

    def model(x, t, text, mask):
        batches.append(x.shape[0])
        return _text_model(x, t, text, mask)

    text, mask = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    cfg_wrapper(model, text, mask, text, mask, 5.0)(torch.randn(1, 2, 2), torch.tensor([0.5]))
    cfg_wrapper(model, text, mask, text, mask, 1.0)(torch.randn(1, 2, 2), torch.tensor([0.5]))
    assert batches == [2, 1]  # guided: one forward of batch 2; scale 1: the conditional model only


def test_loss_zero_for_the_exact_velocity():
    """With x0 = 0 the path is x_t = t noise, so v = x_t / t is exact and the loss vanishes."""
    x0 = torch.zeros(4, 2, 3)
    loss = flow.loss(
        lambda x, t, text, mask: x / t.reshape(-1, 1, 1),
        x0,
        None,
        None,
        generator=torch.Generator().manual_seed(0),
    )
    assert loss.item() < 1e-10


def test_loss_of_the_zero_model_is_the_target_energy():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 2, 3, generator=g)
    loss = flow.loss(
        lambda x, t, text, mask: torch.zeros_like(x),
        x0,
        None,
        None,
        generator=torch.Generator().manual_seed(1),
    )
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))  # the same draw
    assert torch.allclose(loss, ((noise - x0) ** 2).mean())


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = DiT(DiTConfig(in_channels=4, dim=32, depth=2, heads=2))
    x0 = torch.randn(4, 4, 2, 4, 4)
    text, mask = torch.randn(4, 3, 384), torch.ones(4, 3, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def fixed_loss():
        return flow.loss(model, x0, text, mask, generator=torch.Generator().manual_seed(0))

    before = fixed_loss().item()
    for _ in range(30):
        opt.zero_grad()
        fixed_loss().backward()
        opt.step()
    assert fixed_loss().item() < 0.8 * before
