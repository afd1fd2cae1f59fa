"""bf16 only on CPUs with bf16 matmuls: oneDNN calls any AVX512 CPU bf16-capable and emulates it."""

from __future__ import annotations

import torch

from mutoscope.hardware import bf16_default, native_bf16


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw avx512vl avx512_vnni\n")  # Ice Lake
    assert not native_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")  # Zen 4, Cooper Lake
    assert native_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")  # Sapphire Rapids
    assert native_bf16(cpuinfo)
    assert not native_bf16(tmp_path / "missing")  # not Linux: fp32


def test_the_cpu_default_follows_the_flags_not_onednn():
    cpu = bf16_default(torch.device("cpu"))
    assert cpu == native_bf16()
    assert not bf16_default(torch.device("meta"))
