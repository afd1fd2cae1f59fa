"""What the hardware does fast: bf16 only where it has bf16 matmuls.

oneDNN reports bf16 "supported" on any AVX512 CPU (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`)
and emulates it there: on an Ice Lake Xeon without AVX512-BF16, a bf16 matmul ran at 15 GFLOP/s a
core against 59 in fp32, and a training run under bf16 autocast took 22 s a step instead of 7. So
every bf16 default (training, export, inference, the post stages) asks the CPU's own flags."""

from __future__ import annotations

from pathlib import Path

import torch


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU does bf16 matmuls natively (AVX512-BF16 / AMX), from its flags in `cpuinfo`."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_default(device: torch.device) -> bool:
    """bf16 where the hardware has bf16 matmuls (AVX512-BF16 / AMX on CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16()
