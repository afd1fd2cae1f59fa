"""Shared test set-up: marker policy for hardware the machine may not have."""

from __future__ import annotations

import os

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
