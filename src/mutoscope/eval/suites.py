"""Prompt suites: fixed, seeded lists of (prompt, claims, spec) the benchmark generates and judges.

`dev` is what the engine's bars are measured on: every prompt is novel to the training stream
(world/holdout.py): it shows a held-out (color, shape) pair or uses a held-out word, so training
never saw the prompt nor, for the pairs, the scene. Its scenes cycle through every scene kind.
The spec rides along so that the ground-truth render of each prompt is the suite's ceiling.

`familiar` is its control: prompts of the training stream's own distribution (nothing held out;
new draws, not training's clips). A model's score on it against dev separates what it cannot
draw at all from what it cannot generalise to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutoscope.errors import UserError
from mutoscope.world.caption import caption
from mutoscope.world.claims import Claim, ClaimType
from mutoscope.world.holdout import in_training, is_novel, novelty
from mutoscope.world.lexicon import BACKGROUNDS
from mutoscope.world.sample import KINDS, sample_spec
from mutoscope.world.spec import SceneSpec

SUITE_SIZES = {"dev": 240, "familiar": 240, "quick": 16}
SUITE_SEEDS = {"dev": 20261202, "familiar": 20261206, "quick": 7}
# Which prompts a suite keeps: novel ones for the bars, training's own kind for the control.
_KEEPS = {"dev": is_novel, "familiar": in_training, "quick": is_novel}


@dataclass(frozen=True)
class SuitePrompt:
    index: int
    text: str
    claims: tuple[Claim, ...]
    spec: SceneSpec
    seed: int  # the generation seed: the suite is reproducible end to end
    novelty: tuple[str, ...] = ()  # what training never saw (world/holdout.py's tags)


def _prompt(rng: np.random.Generator, kind: str, keep) -> tuple[SceneSpec, str, tuple[Claim, ...]]:
    """A scene of `kind` and a caption of it that `keep(spec, text)` accepts: redrawn until it does."""
    while True:
        spec = sample_spec(rng, kind=kind)
        for _ in range(8):  # a few captions of one scene before drawing another scene
            cap = caption(spec, rng)
            if cap.claims and keep(spec, cap.text):
                return spec, cap.text, cap.claims


def suite(name: str, n: int | None = None) -> list[SuitePrompt]:
    """The named suite's prompts (the first `n` of them when given)."""
    if name not in SUITE_SIZES:
        raise UserError("eval.suite", f"unknown suite {name!r}; choose from {', '.join(SUITE_SIZES)}")
    size = SUITE_SIZES[name] if n is None else n
    if size < 1:
        raise UserError("eval.n", f"--n must be at least 1, got {size}")
    rng = np.random.default_rng(SUITE_SEEDS[name])
    out = []
    for i in range(size):
        spec, text, claims = _prompt(rng, KINDS[i % len(KINDS)], _KEEPS[name])
        out.append(SuitePrompt(i, text, claims, spec, SUITE_SEEDS[name] + i, novelty(spec, text)))
    return out


def per_background(name: str, per: int) -> list[SuitePrompt]:
    """The first `per` prompts of a suite that name each of the world's backgrounds, in BACKGROUNDS'
    order: a small set that shows every background, where the first prompts of a suite may miss some
    (the quick suite names no night sky and no dunes)."""
    picked: dict[str, list[SuitePrompt]] = {b: [] for b in BACKGROUNDS}
    for p in suite(name):
        named = [c.value for c in p.claims if c.type == ClaimType.BACKGROUND]
        if named and len(picked[named[0]]) < per:
            picked[named[0]].append(p)
    short = [b for b, ps in picked.items() if len(ps) < per]
    if short:
        raise UserError("eval.n", f"the {name} suite names {', '.join(short)} fewer than {per} times")
    return [p for b in BACKGROUNDS for p in picked[b]]
