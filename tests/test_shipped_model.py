"""The shipped default model: it loads offline from the package, and it passes a judge subset, so that
a broken or untrained checkpoint cannot land."""

from __future__ import annotations

import pytest

from mutoscope.eval.report import summarise
from mutoscope.eval.runner import run_model
from mutoscope.eval.suites import per_background, suite
from mutoscope.generate import DEFAULT_MODEL, load_model
from mutoscope.world.lexicon import BACKGROUNDS

# What the shipped weights must pass of the quick suite (16 novel prompts, 101 claims), so that a
# broken or untrained checkpoint cannot land. Measured (docs/MODEL_CARD.md, `mutoscope eval --suite
# quick --no-baselines`): the shipped weights (2026-12-07: the decoder retrained without colored
# fringes) pass 28.7% of all claims and 14/14 background claims, and 34.7% and 14/14 since the
# image stage (image_first, 2026-12-07, fifth session) (its first 2400 steps 33.7%; the weights
# before them 31.7%, 14/14, same host: 16 prompts move by several claims, the dev suite decides).
# Earlier weights: 32.7%, 29.7%, 33.7% (13/14), 29.7%, 20.8%, all 14/14 background but one;
# a fresh DiT on the same VAE passes 8.9% and 3/14. These floors sit between the two. The issue's
# goal, >= 70% of all claims, is not reached yet: the checkpoint draws the backgrounds, the objects
# a third of the time.
OVERALL_FLOOR = 0.2
BACKGROUND_FLOOR = 0.8


def test_shipped_weights_are_complete_and_load():
    for name in ("config.json", "dit.safetensors", "vae.safetensors"):
        assert (DEFAULT_MODEL / name).is_file(), name
    pipe = load_model()
    assert pipe.config.name == "tiny" and pipe.model_id.startswith("tiny-")
    assert (pipe.config.width, pipe.config.height, pipe.config.frames, pipe.config.fps) == (64, 64, 16, 8.0)


@pytest.mark.slow
def test_shipped_model_passes_the_quick_judge_subset(tmp_path):
    rows: list[dict] = []
    run_model(suite("quick"), load_model(), "model", tmp_path, None, None, rows.append)
    summary = summarise(rows)["model"]
    passed, total = summary["overall"]
    assert total >= 90
    assert passed / total >= OVERALL_FLOOR, f"{passed}/{total} claims pass"
    bg_passed, bg_total = summary["types"]["background"]
    assert bg_passed / bg_total >= BACKGROUND_FLOOR, f"{bg_passed}/{bg_total} background claims pass"


@pytest.mark.slow
def test_shipped_model_draws_every_background(tmp_path):
    """Three dev prompts for each of the six backgrounds: the quick suite names no night sky and no
    dunes, and a short fine-tune once drew 10 of 35 night skies as clouds (docs/BENCHMARKS.md, "a flat
    loss for keyed samples") while every other measure held. At most one miss in 18, none twice."""
    rows: list[dict] = []
    run_model(per_background("dev", 3), load_model(), "model", tmp_path, None, None, rows.append)
    misses = [v["text"] for r in rows for v in r["verdicts"] if v["type"] == "background" and not v["passed"]]
    assert len(rows) == 3 * len(BACKGROUNDS)
    assert len(misses) <= 1, f"backgrounds drawn wrong: {misses}"
