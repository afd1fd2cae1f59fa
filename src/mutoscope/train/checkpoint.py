"""Atomic checkpoints with everything needed for an exact resume.

A checkpoint is one `torch.save` file holding: the model and train configs (plain dicts), the step
(= the data position: batch k of a run is a pure function of (seed, k)), the model, EMA and optimizer
states, and the RNG states. It is written to a temporary file and moved into place with os.replace,
so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "ckpt.pt"


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to run_dir/ckpt.pt atomically (tmp file, fsync, os.replace)."""
    path = Path(run_dir) / LATEST
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(run_dir: str | Path) -> dict[str, Any] | None:
    """The latest checkpoint of a run, or None when it has none."""
    path = Path(run_dir) / LATEST
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
