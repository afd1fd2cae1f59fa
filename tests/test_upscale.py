"""Super-resolution: an untrained model is bicubic, crops keep the target's aspect, the stream's
shapes and chunking, training lowers the loss, and the shipped weights beat bicubic by 2 dB."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mutoscope.config import TrainConfig, UpscaleConfig
from mutoscope.post.upscale import (
    Upscaler,
    bicubic,
    crop_to_aspect,
    load_upscaler,
    upscale,
    upscale_stream,
)
from mutoscope.train import checkpoint
from mutoscope.train.loop import train
from mutoscope.train.post_tasks import UpscaleTask, held_out_pairs, psnr

TINY = UpscaleConfig(channels=8, blocks=1, crop=8, frames_per_clip=4, width=16, height=16)
ONE_SCENE = dataclasses.replace(TINY, frames_per_clip=10**6)  # every sample a crop of scene 0


pytestmark = pytest.mark.usefixtures("one_thread")


def clip(frames: int = 5, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def test_untrained_model_is_bicubic():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(Upscaler(TINY)(x), bicubic(x, 4))


@pytest.mark.parametrize(("size", "crop"), [((1920, 1080), (36, 64)), ((1080, 1920), (64, 36)),
                                            ((1080, 1080), (64, 64))])  # fmt: skip
def test_center_crop_to_the_target_aspect(size, crop):
    frames = clip(frames=2, size=64)
    out = crop_to_aspect(frames, size)
    assert out.shape == (2, *crop, 3)
    y0, x0 = (64 - crop[0]) // 2, (64 - crop[1]) // 2
    np.testing.assert_array_equal(out, frames[:, y0 : y0 + crop[0], x0 : x0 + crop[1]])


def test_stream_shapes_and_chunks():
    model, video = Upscaler(TINY).eval(), clip(frames=5)
    parts = list(upscale_stream([video[:2], video[2:]], size=(48, 27), model=model, batch=1))
    assert len(parts) == 5 and all(p.shape == (1, 27, 48, 3) and p.dtype == np.uint8 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), upscale(video, (48, 27), model))
    assert upscale(video, None, model).shape == (5, 64, 64, 3)


def test_a_few_steps_lower_the_loss(tmp_path):
    tcfg = TrainConfig(what="sr", batch_size=8, lr=3e-3, warmup_steps=2, max_steps=30, log_every=10,
                       eval_every=0, num_workers=0, ckpt_every_s=1e9, bf16=False)  # fmt: skip
    task = UpscaleTask(ONE_SCENE, tcfg, 0, 1)
    batch = task.data[0]
    assert batch["low"].shape == (8, 3, 8, 8) and batch["high"].shape == (8, 3, 32, 32)
    before = task.loss(task.model, batch)[0].item()
    train(ONE_SCENE, tcfg, tmp_path, progress=False)
    task.model.load_state_dict(checkpoint.load(tmp_path)["model"])
    assert task.loss(task.model, batch)[0].item() < 0.95 * before


@pytest.mark.slow
def test_shipped_weights_beat_bicubic_by_2_db_on_held_out_scenes():
    model = load_upscaler()
    data = held_out_pairs(model.cfg, clips=3)
    with torch.no_grad():
        pred = model(data["low"])
    assert psnr(pred, data["high"]) > psnr(bicubic(data["low"], 4), data["high"]) + 2.0


def test_a_new_sr_run_starts_from_the_shipped_weights(tmp_path):
    """`mutoscope train sr --init src/mutoscope/weights/post` continues the shipped stage (it ships as
    upscale.safetensors, not sr.safetensors)."""
    from safetensors.torch import load_file

    from mutoscope.cli import main
    from mutoscope.post.interpolate import WEIGHTS as POST_DIR

    args = ["--steps", "1", "--lr", "0", "--batch", "2", "--workers", "0", "--eval-every", "0"]
    assert main(["train", "sr", "--run", str(tmp_path / "sr"), "--init", str(POST_DIR), *args]) in (0, None)
    shipped = load_file(POST_DIR / "upscale.safetensors")
    state = checkpoint.load(tmp_path / "sr")["model"]
    assert all(torch.equal(state[k].float(), v.float()) for k, v in shipped.items())
