"""Keep freed memory in the process instead of handing it back to the kernel (glibc's malloc).

glibc serves every allocation above 32 MiB (its largest mmap threshold) with a fresh mmap and
unmaps it on free. A training step of the tiny DiT allocates and frees ~270 MB activations of the
frozen VAE a dozen times, so every step faulted in (and the kernel zeroed) gigabytes of new pages:
6.5 million minor faults and 26 s of system time in 89 s of a 4-step benchmark on this machine;
tuned, 0.9 million and 4 s, and 1.45x the samples per second (docs/BENCHMARKS.md, "Where the
kernel's time went"). The price: the process's resident size stays at its peak, which it reaches
again on its next step or clip anyway.

The settings are glibc tunables, read once when a process starts, so the command line re-executes
itself with them (`reexec_tuned`, before torch loads). `mallopt` at run time cannot do all of it:
it has no switch for the per-thread cache (tcache), whose leftovers of torch's 64-byte-aligned
allocations kept a freed 256 MiB block from being reused until 7 of them had piled up (2 GB resident
for a 256 MiB tensor allocated in a loop; 0.75 GB with tcache off). MUTOSCOPE_MALLOC=system keeps
glibc's defaults.
"""

from __future__ import annotations

import os
import platform
import sys

# No mmap at any size, a heap never trimmed, grown 64 MiB beyond each need (fewer brk calls), no
# per-thread cache, and one arena for every thread: another thread's arena is made of 64 MiB heaps,
# and glibc serves a larger request there by mmap whatever mmap_max says (measured: a worker thread
# faulted every time).
TUNABLES = (
    "glibc.malloc.mmap_max=0",
    "glibc.malloc.trim_threshold=17179869184",
    "glibc.malloc.top_pad=67108864",
    "glibc.malloc.tcache_count=0",
    "glibc.malloc.arena_max=1",
)
MARK = "MUTOSCOPE_MALLOC"  # "tuned" once re-executed (so a process re-executes once), or "system"
SAVED = "MUTOSCOPE_GLIBC_TUNABLES"  # the caller's own GLIBC_TUNABLES, given back to child processes


def reexec_tuned() -> None:
    """Re-execute this process (same interpreter, same argv) with TUNABLES, once; in the tuned
    process, give children (ffmpeg, a browser) the environment the caller had. Call it first
    thing, before threads or torch. Does nothing off glibc or with MUTOSCOPE_MALLOC set."""
    if os.environ.get(MARK) == "tuned":
        previous = os.environ.pop(SAVED, None)
        if previous:
            os.environ["GLIBC_TUNABLES"] = previous
        else:
            os.environ.pop("GLIBC_TUNABLES", None)
        return
    if os.environ.get(MARK) or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return
    previous = os.environ.get("GLIBC_TUNABLES", "")
    env = {**os.environ, MARK: "tuned", SAVED: previous,
           "GLIBC_TUNABLES": ":".join(filter(None, (previous, *TUNABLES)))}  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError:  # an interpreter that cannot be run again (embedded): keep going untuned
        return
