"""Prompt suites: fixed, seeded lists of (prompt, claims, spec) the benchmark generates and judges.

`dev` is what the engine's bars are measured on: every prompt is novel to the training stream
(world/holdout.py): it shows a held-out (color, shape) pair or uses a held-out word, so training
never saw the prompt nor, for the pairs, the scene. Its scenes cycle through every scene kind.
The spec rides along so that the ground-truth render of each prompt is the suite's ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutoscope.errors import UserError
from mutoscope.world.caption import caption
from mutoscope.world.claims import Claim
from mutoscope.world.holdout import is_novel
from mutoscope.world.sample import KINDS, sample_spec
from mutoscope.world.spec import SceneSpec

SUITE_SIZES = {"dev": 240, "quick": 16}
SUITE_SEEDS = {"dev": 20261202, "quick": 7}


@dataclass(frozen=True)
class SuitePrompt:
    index: int
    text: str
    claims: tuple[Claim, ...]
    spec: SceneSpec
    seed: int  # the generation seed: the suite is reproducible end to end


def _novel_prompt(rng: np.random.Generator, kind: str) -> tuple[SceneSpec, str, tuple[Claim, ...]]:
    """A scene of `kind` and a caption of it that training never saw: redrawn until novel."""
    while True:
        spec = sample_spec(rng, kind=kind)
        for _ in range(8):  # a few captions of one scene before drawing another scene
            cap = caption(spec, rng)
            if cap.claims and is_novel(spec, cap.text):
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
        spec, text, claims = _novel_prompt(rng, KINDS[i % len(KINDS)])
        out.append(SuitePrompt(i, text, claims, spec, seed=SUITE_SEEDS[name] + i))
    return out
