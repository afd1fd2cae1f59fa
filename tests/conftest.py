"""Shared test set-up: marker policy for hardware the machine may not have."""

from __future__ import annotations

import os
from typing import NamedTuple

import pytest

# OpenMP threads that wait by spinning stall badly when another process holds the other core (a
# 30-step training test: 12 s instead of 0.2 s here); read once, when torch loads, so set it first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_collection_modifyitems(config, items):
    # GPU tests run only where CUDA exists; everywhere else they are reported as skipped, by name.
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker: gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run faster on one thread (no cross-core wake-ups)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TrainedVAE(NamedTuple):
    export: object  # Path: the exported model directory (weights, config with latent statistics)
    run: object  # Path: its training run (checkpoint with the EMA weights)
    cfg: object  # ModelConfig of the export


@pytest.fixture(scope="session")
def trained_test_vae(tmp_path_factory) -> TrainedVAE:
    """A VAE of the test preset trained 2 steps and exported with its latent statistics, for the DiT
    tests (its weights need not be good). Shared by the session: tests read it and never write it."""
    from mutoscope.config import ModelConfig, TrainConfig, load_json, preset
    from mutoscope.train.export import export
    from mutoscope.train.loop import train

    tmp = tmp_path_factory.mktemp("test_vae")
    tcfg = TrainConfig(what="vae", batch_size=4, lr=2e-3, warmup_steps=2, max_steps=2, eval_every=0,
                       num_workers=0, crop_size=16, crop_frames=8, ckpt_every_s=1e9)  # fmt: skip
    train(preset("test"), tcfg, tmp / "vae", progress=False)
    out = export(tmp / "vae_export", vae_run=tmp / "vae", stats_clips=4)
    return TrainedVAE(out, tmp / "vae", load_json(ModelConfig, out / "config.json"))
