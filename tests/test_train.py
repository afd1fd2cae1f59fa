"""The training loop: it learns, it resumes exactly, torchrun with 2 ranks equals 1 process, and
exported weights load back."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mutoscope.cli import main as cli_main
from mutoscope.config import ModelConfig, TrainConfig, from_dict, load_json, preset
from mutoscope.train import checkpoint
from mutoscope.train.export import export
from mutoscope.train.loop import lr_at, train
from mutoscope.train.tasks import VAETask
from mutoscope.vae import CausalVAE

CFG = preset("test")  # 32x32, 8 frames; a VAE of a few thousand parameters
TCFG = TrainConfig(what="vae", batch_size=4, lr=2e-3, warmup_steps=2, max_steps=6, log_every=2,
                   eval_every=0, eval_clips=2, crop_size=16, crop_frames=8, num_workers=0,
                   ckpt_every_s=1e9)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine: a second OpenMP thread costs more in wake-ups than it
    computes (the busy other core makes every parallel region wait for a scheduler tick)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def vae_loss_on_batch0(state: dict | None) -> float:
    torch.manual_seed(TCFG.seed)
    task = VAETask(CFG, TCFG, 0, 1)
    if state is not None:
        task.model.load_state_dict(state)
    with torch.no_grad():
        loss, _ = task.loss(task.model, task.data[0])
    return loss.item()


DIT_TCFG = TrainConfig(what="dit", batch_size=4, lr=1e-3, warmup_steps=1, max_steps=1, log_every=1,
                       eval_every=0, eval_clips=2, num_workers=0, ckpt_every_s=1e9)  # fmt: skip


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    before = vae_loss_on_batch0(None)
    train(CFG, dataclasses.replace(TCFG, max_steps=30), tmp_path, progress=False)
    after = vae_loss_on_batch0(checkpoint.load(tmp_path)["model"])
    assert after < 0.9 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 30 and {"loss", "lr", "grad_norm", "samples_per_s"} <= set(log[-1])


def test_resume_gives_the_same_parameters_as_a_straight_run(tmp_path):
    train(CFG, TCFG, tmp_path / "straight", progress=False)
    train(CFG, dataclasses.replace(TCFG, max_steps=3), tmp_path / "resumed", progress=False)
    assert checkpoint.load(tmp_path / "resumed")["step"] == 3
    train(CFG, TCFG, tmp_path / "resumed", progress=False)
    a, b = checkpoint.load(tmp_path / "straight"), checkpoint.load(tmp_path / "resumed")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)
    exp_a = a["optimizer"]["state"][0]["exp_avg_sq"]
    assert torch.equal(exp_a, b["optimizer"]["state"][0]["exp_avg_sq"])


def test_resume_refuses_another_model_config(tmp_path):
    train(CFG, dataclasses.replace(TCFG, max_steps=1), tmp_path, progress=False)
    other = dataclasses.replace(CFG, vae=dataclasses.replace(CFG.vae, latent_channels=8))
    with pytest.raises(ValueError, match="another model config"):
        train(other, TCFG, tmp_path, progress=False)


def cli_args(run: Path, steps: int) -> list[str]:
    return ["train", "vae", "--preset", "test", "--run", str(run), "--steps", str(steps), "--batch", "4",
            "--crop", "16", "--crop-frames", "8", "--lr", "1e-3", "--warmup", "2", "--workers", "0",
            "--no-bf16", "--eval-every", "0", "--log-every", "1", "--threads", "1"]  # fmt: skip


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    # "--": torchrun would otherwise take our `--run` for an abbreviation of its `--run-path`.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mutoscope.cli", "--", *cli_args(tmp_path / "ddp", 3)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert cli_main(cli_args(tmp_path / "one", 3)) == 0
    a, b = checkpoint.load(tmp_path / "ddp"), checkpoint.load(tmp_path / "one")
    assert a["step"] == b["step"] == 3
    for name, value in b["model"].items():
        assert torch.allclose(a["model"][name], value, atol=1e-5), name
    init = CausalVAE(CFG.vae).state_dict()
    assert any(not torch.allclose(init[n], v, atol=1e-4) for n, v in b["model"].items())  # it trained


def test_the_learning_rate_warms_up_holds_then_cools_down():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=100, decay_steps=40)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9:61] == [1.0] * 52
    assert lrs[70] == pytest.approx(1 - 0.5) and lrs[99] == pytest.approx(1 - (39 / 40) ** 0.5)
    assert all(a > b for a, b in itertools.pairwise(lrs[60:]))  # falling to the end
    assert lr_at(99, dataclasses.replace(cfg, decay_steps=0)) == 1.0


def test_mfu_is_against_this_hosts_measured_peak_timed_once_per_thread_count(tmp_path, monkeypatch):
    from mutoscope.train import peak

    monkeypatch.setattr(peak, "_MEASURED", {})
    cpu = torch.device("cpu")
    fp32 = peak.matmul_peak(cpu, torch.float32, seconds=0.03)
    assert 1e8 < fp32 < 1e14  # between a slow core and a rack: a plausible FLOP/s
    calls, mm = [], torch.mm
    monkeypatch.setattr(peak.torch, "mm", lambda *a, **k: calls.append(1) or mm(*a, **k))
    assert peak.matmul_peak(cpu, torch.float32) == fp32 and not calls  # kept, not timed again
    # The loop times the peak of its own (dtype, threads) when this process has not: none is kept now.
    # (Which dtype it trains in depends on the host's bf16, so the fp32 entry above may be its own.)
    peak._MEASURED.clear()
    train(CFG, dataclasses.replace(TCFG, max_steps=2, log_every=1), tmp_path / "run", progress=False)
    assert calls and len(peak._MEASURED) == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(entry["mfu"] > 0 for entry in log if "loss" in entry)


def test_cli_cools_the_learning_rate_down_over_the_last_steps(tmp_path, capsys):
    assert cli_main([*cli_args(tmp_path / "run", 6), "--decay-steps", "4"]) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [round(entry["lr"] / 1e-3, 4) for entry in log] == [0.5, 1.0, 1.0, 0.5, 0.2929, 0.134]
    capsys.readouterr()
    assert cli_main([*cli_args(tmp_path / "bad", 6), "--decay-steps", "7"]) == 2
    err = capsys.readouterr().err
    assert "decay steps 7 must lie in [0, 6]" in err and err.count("\n") == 1


def test_cli_reports_a_bad_preset_in_one_line(tmp_path, capsys):
    assert cli_main(["train", "vae", "--preset", "nope", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown preset" in err and err.count("\n") == 1


def test_export_writes_loadable_weights_and_latent_statistics(tmp_path):
    train(CFG, dataclasses.replace(TCFG, max_steps=2), tmp_path / "run", progress=False)
    out = export(tmp_path / "weights", vae_run=tmp_path / "run", stats_clips=8)
    cfg = load_json(ModelConfig, out / "config.json")
    assert cfg.vae.latent_std > 0 and cfg.vae.latent_mean != 0.0
    assert dataclasses.replace(cfg.vae, latent_mean=0.0, latent_std=1.0) == CFG.vae
    vae = CausalVAE(cfg.vae)
    vae.load_state_dict(load_file(out / "vae.safetensors"))
    ema = checkpoint.load(tmp_path / "run")["ema"]
    assert all(torch.equal(v, ema[k].contiguous()) for k, v in vae.state_dict().items())


def test_dit_trains_on_the_frozen_vae_and_exports_a_loadable_model(tmp_path, trained_test_vae):
    from mutoscope.generate import load_model

    vae, cfg = trained_test_vae.export, trained_test_vae.cfg  # the VAE with its statistics
    dit_cfg = dataclasses.replace(DIT_TCFG, max_steps=3, eval_every=3)
    out = train(cfg, dit_cfg, tmp_path / "dit", progress=False, vae_path=vae)
    assert out["step"] == 3 and torch.isfinite(torch.tensor(out["loss"]))
    log = [json.loads(line) for line in (tmp_path / "dit" / "log.jsonl").read_text().splitlines()]
    assert any({"eval_loss", "eval_raw_loss"} <= set(entry) for entry in log)  # the EMA and the raw weights
    model_dir = export(tmp_path / "model", dit_run=tmp_path / "dit")  # the DiT run carries its VAE
    pipe = load_model(model_dir)
    assert pipe.config == cfg
    # load_model may keep bf16 copies for fast CPU inference: compare in the pipeline's dtype
    vae_ema = checkpoint.load(trained_test_vae.run)["ema"]
    assert all(torch.equal(v, vae_ema[k].to(v.dtype)) for k, v in pipe.vae.state_dict().items())
    ckpt = checkpoint.load(tmp_path / "dit")  # the DiT ships in bf16
    bf16 = torch.bfloat16
    assert all(torch.equal(v.to(bf16), ckpt["ema"][k].to(bf16)) for k, v in pipe.dit.state_dict().items())
    raw = load_file(export(tmp_path / "raw", dit_run=tmp_path / "dit", raw_dit=True) / "dit.safetensors")
    assert all(torch.equal(v, ckpt["model"][k].to(bf16)) for k, v in raw.items())
    assert any(not torch.equal(v, ckpt["ema"][k].to(bf16)) for k, v in raw.items())  # not the EMA
    with pytest.raises(ValueError, match="raw weights need a run"):
        export(tmp_path / "refused", dit_run=model_dir, raw_dit=True)


def test_a_dit_run_over_fixed_clips_resumes_in_a_later_epoch_as_a_straight_run(tmp_path, trained_test_vae):
    """8 clips in batches of 4: steps 2 and 3 reuse the latents of steps 0 and 1, which the resumed
    process (no cache) encodes again."""
    vae, cfg = trained_test_vae.export, trained_test_vae.cfg
    dit_cfg = dataclasses.replace(DIT_TCFG, max_steps=4, unique_clips=8)
    train(cfg, dit_cfg, tmp_path / "straight", progress=False, vae_path=vae)
    train(cfg, dataclasses.replace(dit_cfg, max_steps=3), tmp_path / "resumed", progress=False, vae_path=vae)
    train(cfg, dit_cfg, tmp_path / "resumed", progress=False, vae_path=vae)
    a, b = checkpoint.load(tmp_path / "straight"), checkpoint.load(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_cli_reports_unique_clips_that_do_not_fill_batches_in_one_line(tmp_path, capsys, trained_test_vae):
    vae = trained_test_vae.export
    args = ["train", "dit", "--preset", "test", "--run", str(tmp_path / "dit"), "--vae", str(vae),
            "--batch", "4", "--unique-clips", "6", "--workers", "0", "--steps", "1"]  # fmt: skip
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "not a multiple of the batch 4" in err and err.count("\n") == 1


def test_a_deeper_decoder_trained_alone_ships_with_the_dit_of_its_encoder(tmp_path, trained_test_vae):
    from mutoscope.generate import load_model

    vae_dir, cfg = trained_test_vae.export, trained_test_vae.cfg
    train(cfg, DIT_TCFG, tmp_path / "dit", progress=False, vae_path=vae_dir)
    # a deeper decoder, trained with another loss weighting: neither touches the latents
    deep = dataclasses.replace(
        CFG, vae=dataclasses.replace(CFG.vae, decoder_blocks_per_stage=2, weight_painted=True)
    )
    decoder_only = dataclasses.replace(TCFG, max_steps=2, freeze_encoder=True)
    train(deep, decoder_only, tmp_path / "decoder", progress=False, init=vae_dir)
    model = load_model(export(tmp_path / "model", dit_run=tmp_path / "dit", vae_run=tmp_path / "decoder"))
    assert model.config.vae == dataclasses.replace(cfg.vae, decoder_blocks_per_stage=2, weight_painted=True)
    shipped, trained = load_file(vae_dir / "vae.safetensors"), checkpoint.load(tmp_path / "decoder")["ema"]
    for k, v in model.vae.state_dict().items():
        assert torch.equal(
            v.float(), (shipped if k.startswith("encoder.") else trained)[k].to(v.dtype).float()
        )
    assert any(not torch.equal(v, shipped[k]) for k, v in trained.items() if k in shipped)  # it trained
    train(deep, dataclasses.replace(TCFG, max_steps=2), tmp_path / "both", progress=False, init=vae_dir)
    with pytest.raises(ValueError, match="trained the encoder"):
        export(tmp_path / "refused", dit_run=tmp_path / "dit", vae_run=tmp_path / "both")
    # A VAE trained on, encoder included, ships only when asked: its statistics are measured anew
    model = load_model(export(tmp_path / "whole", dit_run=tmp_path / "dit", vae_run=tmp_path / "both",
                              new_encoder=True, stats_clips=4))  # fmt: skip
    both = checkpoint.load(tmp_path / "both")["ema"]
    assert all(torch.equal(v.float(), both[k].to(v.dtype).float()) for k, v in model.vae.state_dict().items())
    assert model.config.vae.latent_std not in (1.0, cfg.vae.latent_std)


def test_cli_decoder_only_keeps_the_init_encoder_whatever_the_preset(tmp_path):
    train(CFG, dataclasses.replace(TCFG, max_steps=2), tmp_path / "vae", progress=False)
    shipped = export(tmp_path / "shipped", vae_run=tmp_path / "vae", stats_clips=4)
    args = cli_args(tmp_path / "decoder", 2)
    args[args.index("--preset") + 1] = "tiny"  # a deeper encoder and decoder than the init's
    assert cli_main([*args, "--decoder-only", "--weight-painted", "--init", str(shipped)]) == 0
    ckpt = checkpoint.load(tmp_path / "decoder")
    vae_cfg = from_dict(ModelConfig, ckpt["model_cfg"]).vae
    assert vae_cfg == dataclasses.replace(CFG.vae, decoder_blocks_per_stage=3, weight_painted=True)
    weights = load_file(shipped / "vae.safetensors")
    assert all(torch.equal(ckpt["ema"][k], v) for k, v in weights.items() if k.startswith("encoder."))


def test_a_new_run_starts_from_exported_weights(tmp_path):
    """A later session has the shipped weights, not the run directory: --init starts from them."""
    train(CFG, dataclasses.replace(TCFG, max_steps=2), tmp_path / "first", progress=False)
    shipped = export(tmp_path / "shipped", vae_run=tmp_path / "first", stats_clips=4)
    frozen = dataclasses.replace(TCFG, max_steps=1, lr=0.0, seed=1)  # lr 0: the step moves nothing
    train(CFG, frozen, tmp_path / "next", progress=False, init=shipped)
    weights = load_file(shipped / "vae.safetensors")
    state = checkpoint.load(tmp_path / "next")
    assert all(
        torch.equal(state["model"][k], v) and torch.equal(state["ema"][k], v) for k, v in weights.items()
    )
    fresh = dataclasses.replace(frozen, seed=2)
    train(CFG, fresh, tmp_path / "scratch", progress=False)
    assert not torch.equal(checkpoint.load(tmp_path / "scratch")["model"]["encoder.conv_in.conv.weight"],
                           weights["encoder.conv_in.conv.weight"])  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_checkpoints_and_exits_cleanly(tmp_path, workers):
    """SIGTERM to the whole process group, as a scheduler (or `pkill -f`) sends it: the data workers
    receive it too."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    args = cli_args(tmp_path, 100_000)
    args[args.index("--workers") + 1] = str(workers)
    cmd = [sys.executable, "-m", "mutoscope.cli", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        assert '"step": 2' in "".join(proc.stdout.readline() for _ in range(2))  # two steps logged
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    ckpt = checkpoint.load(tmp_path)
    assert 2 <= ckpt["step"] < 100_000
