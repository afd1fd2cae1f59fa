"""The dense matmul peak of the device as training runs it (its threads, its dtype): MFU's denominator.

Measured when a run starts, not assumed: the sessions of this project have run on three kinds of
2-core host (Zen 4 with AVX512-BF16, Zen 3 without it, a Xeon with AMX), whose bf16 peaks differ
several-fold, so a table written on one host reports a wrong MFU on the next. Each (device, dtype,
thread count) is timed once per process, best of a few short windows (a busy neighbour lowers it).
"""

from __future__ import annotations

import time

import torch

_MEASURED: dict[tuple[str, torch.dtype, int], float] = {}


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """FLOP/s of a large square matmul on `device` in `dtype` with torch's current thread count."""
    key = (str(device), dtype, torch.get_num_threads())
    if key not in _MEASURED:
        n = 4096 if device.type == "cuda" else 2048  # large enough to reach the peak, small enough to time
        a = torch.randn(n, n, device=device).to(dtype)
        b, out = torch.randn_like(a), torch.empty_like(a)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        torch.mm(a, b, out=out)  # warm-up: kernel choice, page faults
        sync()
        best = 0.0
        for _ in range(3):
            reps, start, elapsed = 0, time.perf_counter(), 0.0
            while elapsed < seconds / 3:
                torch.mm(a, b, out=out)
                sync()
                reps += 1
                elapsed = time.perf_counter() - start
            best = max(best, 2 * n**3 * reps / elapsed)
        _MEASURED[key] = best
    return _MEASURED[key]
