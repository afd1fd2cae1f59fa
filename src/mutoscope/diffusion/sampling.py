"""Pure-function samplers for the flow x_t = (1 - t) x0 + t noise, from t = 1 (noise) to t = 0: the ODE
dx/dt = v(x, t) (Euler, Heun) and its stochastic counterpart (ancestral).

`model(x, t) -> v` here has its conditioning already bound; `cfg_wrapper` binds a prompt and a negative
prompt and applies classifier-free guidance (Ho & Salimans 2022). No scheduler objects: the time grid
is a tensor (flow.time_grid), the state is x. `callback(done, total)` runs after each step and may
raise to stop sampling. `project(x, t) -> x`, where given, maps every state the sampler reaches (the
start, each step's result, Heun's predictor) onto a constraint: replacement inpainting, a region held
on a known path to known latents (model.controls.held_path). `generator` draws the fresh noise of a
stochastic sampler (on the CPU, so that a seed gives the same video on any device); the ODE samplers
draw none.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mutoscope.text import pad_to

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, ...), t (B,)) -> v
Callback = Callable[[int, int], None]
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, t (0-d)) -> x on the constraint


def _t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.device, torch.float32).expand(x.shape[0])


def _unconstrained(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x


def euler(model: Field, x: torch.Tensor, ts: torch.Tensor, callback: Callback | None = None,
          project: Projection | None = None,
          generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Euler: x <- x + (t_next - t) v(x, t), one model call per step."""
    project = project or _unconstrained
    steps = len(ts) - 1
    x = project(x, ts[0])
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        x = project(x + (t_next - t).item() * model(x, _t(t, x)), t_next)
        if callback is not None:
            callback(i + 1, steps)
    return x


def heun(model: Field, x: torch.Tensor, ts: torch.Tensor, callback: Callback | None = None,
         project: Projection | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Heun (trapezoid predictor-corrector, Karras et al. 2022 alg. 1): second order, two calls per step.

    The correction runs on the last step too: a flow model is defined at t = 0, unlike an EDM denoiser.
    """
    project = project or _unconstrained
    steps = len(ts) - 1
    x = project(x, ts[0])
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        dt = (t_next - t).item()
        v = model(x, _t(t, x))
        x_euler = project(x + dt * v, t_next)
        x = project(x + dt * 0.5 * (v + model(x_euler, _t(t_next, x))), t_next)
        if callback is not None:
            callback(i + 1, steps)
    return x


def ancestral(model: Field, x: torch.Tensor, ts: torch.Tensor, callback: Callback | None = None,
              project: Projection | None = None, generator: torch.Generator | None = None,
              eta: float = 1.0) -> torch.Tensor:  # fmt: skip
    """DDIM with stochasticity eta on the straight path (Song et al. 2021): each step predicts x0 and
    the noise from v, then lands on the next time's marginal (1 - s) x0 + s noise with part of that
    noise drawn fresh. eta = 0 is Euler exactly; eta = 1 draws as much as the posterior
    q(x_s | x_t, x0) does (DDPM's ancestral sampling). The fresh noise lets later steps correct what
    earlier ones drew (Karras et al. 2022, sec. 4): the tiny model, sampled from noise by the ODE,
    passes a quarter of dev's claims, and 60-70% from the truth noised to t = 0.3-0.5
    (docs/BENCHMARKS.md). One model call per step."""
    project = project or _unconstrained
    steps = len(ts) - 1
    x = project(x, ts[0])
    for i in range(steps):
        t, s = float(ts[i]), float(ts[i + 1])
        v = model(x, _t(ts[i], x))
        x0, noise = x - t * v, x + (1 - t) * v
        fresh = 0.0
        if s > 0:  # the posterior's std at s: s sqrt(1 - (alpha_t sigma_s / (alpha_s sigma_t))^2)
            ratio = (1 - t) * s / ((1 - s) * t)
            fresh = eta * s * max(0.0, 1 - ratio * ratio) ** 0.5
        z = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x) if fresh else 0.0
        x = project((1 - s) * x0 + (s * s - fresh * fresh) ** 0.5 * noise + fresh * z, ts[i + 1])
        if callback is not None:
            callback(i + 1, steps)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"euler": euler, "heun": heun, "ancestral": ancestral}


def paired_prompts(
    text: torch.Tensor, mask: torch.Tensor, neg_text: torch.Tensor, neg_mask: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt and the negative for one forward of batch 2 `batch`: both padded to one length, each
    expanded to `batch` rows where it has one (one negative for the whole batch), the prompt first."""
    length = max(text.shape[1], neg_text.shape[1])
    text, mask = pad_to(text, mask, length)
    neg_text, neg_mask = pad_to(neg_text, neg_mask, length)
    text, mask = text.expand(batch, -1, -1), mask.expand(batch, -1)
    neg_text, neg_mask = neg_text.expand(batch, -1, -1), neg_mask.expand(batch, -1)
    return torch.cat([text, neg_text]), torch.cat([mask, neg_mask])


def cfg_wrapper(
    model: Callable[..., torch.Tensor],
    text: torch.Tensor,
    mask: torch.Tensor,
    neg_text: torch.Tensor,
    neg_mask: torch.Tensor,
    scale: float,
) -> Field:
    """Classifier-free guidance: v = v_neg + scale (v_cond - v_neg), both in one forward of batch 2B.

    `model(x, t, text, mask)` is the DiT; the negative prompt ("" for plain CFG) takes the place of the
    unconditional embedding. scale = 1 is the conditional model alone (one forward of batch B).
    """
    if scale == 1.0:
        return lambda x, t: model(x, t, text, mask)
    both_text, both_mask = paired_prompts(text, mask, neg_text, neg_mask, text.shape[0])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_cond, v_neg = model(torch.cat([x, x]), torch.cat([t, t]), both_text, both_mask).chunk(2)
        return v_neg + scale * (v_cond - v_neg)

    return guided
