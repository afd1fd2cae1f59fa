"""The training loop: one function for the VAE and the DiT, the step in plain sight.

    zero_grad -> forward (bf16 autocast) -> backward -> clip -> AdamW step -> EMA

Logging, evaluation and checkpoints are inline `if` blocks. The task (tasks.py) supplies the model,
the batches and the loss; distribution (parallel.py) is applied from outside. Run it in one process
or under `torchrun --nproc_per_node N`: batch k is the same global batch either way.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from mutoscope.config import (
    DiTConfig,
    InterpConfig,
    ModelConfig,
    TrainConfig,
    UpscaleConfig,
    from_dict,
    load_json,
    to_dict,
)
from mutoscope.hardware import bf16_default
from mutoscope.train import checkpoint, parallel, tasks
from mutoscope.train.peak import matmul_peak

# The file each task's weights ship in (train/export.py writes them, `init` reads them back).
WEIGHTS_FILE = {"vae": "vae.safetensors", "dit": "dit.safetensors", "interp": "interp.safetensors",
                "sr": "upscale.safetensors"}  # fmt: skip


def _worker_ignores_sigterm(_worker_id: int) -> None:
    """A scheduler's SIGTERM (or `pkill -f`) reaches the whole process group: the workers must leave
    it to the main process, which checkpoints and then stops them. A worker that died of it made
    the loop raise mid-step instead, losing everything since the last checkpoint."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, constant, then the cool-down of the last cfg.decay_steps steps."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_steps <= 0:
        return cfg.lr * warm
    into_decay = max(0, step - (cfg.max_steps - cfg.decay_steps))
    return cfg.lr * warm * (1.0 - math.sqrt(min(1.0, into_decay / cfg.decay_steps)))


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """EMA decay ramped up from 0 (as in many diffusion codebases), so a short run's EMA is not
    dominated by the random initialisation."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


def count_flops(task, model: torch.nn.Module, batch: dict[str, Any], autocast) -> int:
    """FLOPs of one forward + backward on this rank's batch, counted on a throwaway copy of the model
    (counting the real step would run it under a dispatch mode, off the exact-resume path).

    A first, uncounted forward fills what the task keeps between steps (the DiT's latents of a
    later epoch, which a resumed run encodes again once): the count is then a steady step's."""
    with torch.no_grad(), autocast:
        task.loss(model, batch)
    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss, _ = task.loss(model, batch)
        loss.backward()
    return counter.get_total_flops()


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _dit_format(source: Path | DiTConfig) -> tuple | None:
    """What a DiT's token layers are shaped by: (patch size, latent channels); None for a model
    directory without a config.json."""
    if isinstance(source, Path):
        if not (source / "config.json").is_file():
            return None
        source = load_json(ModelConfig, source / "config.json").dit
    return tuple(source.patch_size), source.in_channels


def train(
    model_cfg: ModelConfig | InterpConfig | UpscaleConfig,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    init: str | Path | None = None,
    **task_kw: Any,
) -> dict[str, Any]:
    """Train `cfg.what` ("vae" | "dit" | "interp" | "sr") to cfg.max_steps in run_dir, resuming from
    its checkpoint. `model_cfg` is the task's config: a ModelConfig, or the post stage's own.

    `init`, an exported model directory, starts a new run from its weights (WEIGHTS_FILE[what]):
    how training continues in a session that no longer has the last one's run directory, only the
    weights it shipped. A run that has a checkpoint resumes from it and ignores `init`.
    Returns the last logged scalars. Extra keywords go to the task (the DiT task's `vae_path`)."""
    if not 0 <= cfg.decay_steps <= cfg.max_steps:
        raise ValueError(f"decay steps {cfg.decay_steps} must lie in [0, {cfg.max_steps}] (the run's steps)")
    d = parallel.init(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.load(run_dir)
    if ckpt is not None:
        if ckpt.get("what", cfg.what) != cfg.what:
            raise ValueError(f"{run_dir} holds a run of task {ckpt['what']!r}; use a new --run directory")
        saved = from_dict(type(model_cfg), ckpt["model_cfg"])
        if saved != model_cfg:
            raise ValueError(f"{run_dir} holds a run of another model config; use a new --run directory")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    task = tasks.build(cfg.what, model_cfg, cfg, d.rank, d.world_size, run_dir=run_dir, **task_kw)
    model = task.to(d.device).model
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        checkpoint.set_rng_state(ckpt["rng"])
        step = ckpt["step"]
    elif init is not None:
        from safetensors.torch import load_file

        weights = load_file(Path(init) / WEIGHTS_FILE[cfg.what])
        if cfg.what == "dit" and _dit_format(Path(init)) not in (None, _dit_format(model.cfg)):
            weights = model.transplant_state(weights)  # a new VAE's latents: the transformer carries over
        elif hasattr(model, "widen_state"):  # a DiT gaining control inputs keeps its function
            weights = model.widen_state(weights)
        model.load_state_dict(weights)  # widened to the model's dtype where stored narrower (bf16)
        ema.load_state_dict(weights)
    if cfg.activation_checkpointing:
        parallel.activation_checkpointing(model)
    net = parallel.wrap(model, d)

    # Batch k is item k: starting the sampler at `step` is the whole of "restore the data position".
    loader = DataLoader(task.data, batch_size=None, sampler=range(step, cfg.max_steps),
                        num_workers=cfg.num_workers, persistent_workers=False,
                        worker_init_fn=_worker_ignores_sigterm if cfg.num_workers else None)  # fmt: skip
    use_bf16 = cfg.bf16 and bf16_default(d.device)
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    autocast = torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=use_bf16)
    peak = matmul_peak(d.device, dtype)  # this host's, at this run's threads: MFU's denominator
    log = open(run_dir / "log.jsonl", "a") if d.main else None  # noqa: SIM115 (closed below)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (progress and d.main), dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 60.0)  # fmt: skip
    # SIGTERM (kill, a scheduler's preemption): finish the step, checkpoint, return.
    stop = []
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    # FLOPs per step, by the batch's kind: a DiT batch with frames (their VAE encode counted) or
    # one of a later epoch over the same clips (their latents kept: tasks.py).
    flops_per_step: dict[tuple[str, ...], int] = {}
    flops_since_log, sums, n_sum = 0, {}, 0
    t_log = t_ckpt = time.time()
    steps_since_log, last = 0, {}

    for batch in loader:
        batch = _to(batch, d.device)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        kind = tuple(sorted(batch))
        if kind not in flops_per_step:
            flops_per_step[kind] = count_flops(task, copy.deepcopy(net if d.world_size == 1 else model),
                                               batch, autocast) * d.world_size  # fmt: skip
        flops_since_log += flops_per_step[kind]
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss, metrics = task.loss(net, batch)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, ema_decay_at(step, cfg))
        step += 1
        steps_since_log += 1
        bar.update(1)

        for k, v in {"loss": loss.item(), "grad_norm": grad_norm.item(), **metrics}.items():
            sums[k] = sums.get(k, 0.0) + v
        n_sum += 1
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            dt = time.time() - t_log
            last = {k: parallel.all_mean(v / n_sum, d) for k, v in sums.items()}
            sps = steps_since_log * cfg.batch_size / dt
            last.update(step=step, lr=lr, samples_per_s=sps, time=time.time())
            last["mfu"] = flops_since_log / dt / peak
            if d.main:
                log.write(json.dumps(last) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{last['loss']:.4f}", sps=f"{sps:.1f}")
                if not sys.stderr.isatty():  # a log file: one readable line per log step
                    short = {k: float(f"{v:.5g}") if k != "time" and isinstance(v, float) else v
                             for k, v in last.items()}  # fmt: skip
                    print(json.dumps(short), flush=True)
            sums, n_sum, steps_since_log, flops_since_log, t_log = {}, 0, 0, 0, time.time()

        if d.main and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            t_eval = time.time()
            scores = {f"eval_{k}": v for k, v in task.evaluate(ema, autocast).items()}
            # The raw weights too: at the end of a cool-down they may beat the EMA's longer average.
            scores.update({f"eval_raw_{k}": v for k, v in task.evaluate(model, autocast).items()})
            scores.update(step=step, eval_s=time.time() - t_eval)
            log.write(json.dumps(scores) + "\n")
            log.flush()
            print(json.dumps(scores), flush=True)
            t_log += time.time() - t_eval  # evaluation time is not training throughput

        if time.time() - t_ckpt >= cfg.ckpt_every_s or step == cfg.max_steps or stop:
            if d.main:
                checkpoint.save(run_dir, {
                    "what": cfg.what, "model_cfg": to_dict(model_cfg), "train_cfg": to_dict(cfg),
                    "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                    "optimizer": opt.state_dict(), "rng": checkpoint.rng_state(),
                    "frozen": task.frozen_state(),  # e.g. the DiT's VAE: a run is self-contained
                })  # fmt: skip
            t_ckpt = time.time()
        if stop:
            break

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    if log is not None:
        log.close()
    del net, loader  # DDP's reducer and its pending work go before the process group does
    parallel.shutdown()
    return {"step": step, **last}
