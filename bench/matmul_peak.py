"""This host's dense matmul peak, fp32 and bf16, per thread count: the denominator of training MFU.

    .venv/bin/python bench/matmul_peak.py [--threads 1 2] [--seconds 1.0]

The training loop measures the same number when a run starts (mutoscope.train.peak); this prints it
on an idle machine for docs/BENCHMARKS.md. Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see tests/conftest.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement")
    args = ap.parse_args()

    from mutoscope.allocator import reexec_tuned

    reexec_tuned()  # glibc's malloc as the `mutoscope` command has it, before torch loads
    import torch

    from mutoscope.train.peak import matmul_peak

    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.bfloat16):
            gflops = matmul_peak(torch.device("cpu"), dtype, seconds=args.seconds) / 1e9
            row = {
                "threads": threads,
                "dtype": str(dtype).removeprefix("torch."),
                "gflop_s": round(gflops, 1),
            }
            print(json.dumps(row))


if __name__ == "__main__":
    main()
