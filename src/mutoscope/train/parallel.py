"""Distribution applied from outside the model: process group set-up, DDP wrapping, activation
checkpointing. Model code never imports torch.distributed; the loop calls these.

Under `torchrun` the environment names the rank and world size; without it we are one process.
gloo on CPU (tests, this machine), NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str | None = None) -> Dist:
    """Join the torchrun process group when launched by torchrun; else a single process."""
    want = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if "RANK" not in os.environ:
        return Dist(device=want)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if want.type == "cuda":
        torch.cuda.set_device(local)
        want = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world_size=world, local_rank=local, device=want)


def shutdown() -> None:
    """Leave the process group together. Without the barrier a rank that finishes first (rank 0
    still writing the checkpoint) tears gloo down under its peer's open pairs, and now and then
    dies at exit with "terminate called without an active exception" (SIGABRT)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, d: Dist) -> nn.Module:
    """DDP when there is more than one process; the model itself otherwise."""
    if d.world_size == 1:
        return model
    ids = [d.device.index] if d.device.type == "cuda" else None
    # No buffer sync before each forward: our models hold no running statistics to keep in step (their
    # buffers, e.g. RoPE tables, are equal on every rank, so the sync at init that stays is harmless).
    # torch 2.13 names this forward_sync_buffers; broadcast_buffers is deprecated.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_mean(value: float, d: Dist) -> float:
    """Average a scalar over ranks (for logging)."""
    if d.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / d.world_size


def activation_checkpointing(model: nn.Module) -> nn.Module:
    """Recompute each block of `model.blocks` (encoder/decoder blocks for the VAE) in the backward
    pass instead of storing its activations: ~1/3 more compute for far less memory."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for module in list(model.modules()):
        blocks = getattr(module, "blocks", None)
        if isinstance(blocks, nn.ModuleList):
            for i, block in enumerate(blocks):
                blocks[i] = checkpoint_wrapper(block)
    return model
