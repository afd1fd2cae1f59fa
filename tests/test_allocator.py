"""A command-line process re-executes itself once with glibc's malloc tuned: a large tensor allocated
again reuses the freed pages instead of faulting in (and the kernel zeroing) new ones, and child
processes get the caller's environment back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PAGES = (256 << 20) // 4096  # a 256 MiB tensor, the size of the VAE's activations in a training step

# Allocates and frees a 256 MiB tensor 12 times (float32: a page per 1024 elements) and reports each
# one's minor page faults, with the environment a child process would get.
CHILD = """
import json, os, resource, sys
from mutoscope.allocator import reexec_tuned
reexec_tuned()
import torch
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(PAGES * 1024)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults, "tunables": os.environ.get("GLIBC_TUNABLES")}))
""".replace("PAGES", str(PAGES))


def child(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MUTOSCOPE_")}
    done = subprocess.run([sys.executable, "-c", CHILD], env={**environ, **env}, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's tunables: Linux only")
def test_a_tuned_process_reuses_freed_pages_and_children_get_the_callers_environment():
    tuned = child(GLIBC_TUNABLES="glibc.malloc.perturb=0")
    # The first two extend the heap; from then on the same pages serve the tensor.
    assert all(f < PAGES // 10 for f in tuned["faults"][2:]), tuned["faults"]
    assert tuned["tunables"] == "glibc.malloc.perturb=0"  # the caller's, not ours
    system = child(MUTOSCOPE_MALLOC="system")
    assert all(f >= PAGES for f in system["faults"]), system["faults"]  # glibc's mmap for each one
    assert system["tunables"] is None
