"""Frame interpolation: output times and pass-through, streaming equals all at once, the warp and
the cost volume in closed form, training lowers the loss, and the shipped weights beat blending."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from mutoscope.cli import main as cli_main
from mutoscope.config import InterpConfig, TrainConfig
from mutoscope.post.interpolate import (
    FrameInterpolator,
    blend,
    cost_volume,
    interpolate,
    interpolate_stream,
    load_interpolator,
    motion_grid,
    schedule,
    warp,
)
from mutoscope.train import checkpoint
from mutoscope.train.loop import train
from mutoscope.train.post_tasks import InterpTask, held_out_triplets, psnr

TINY = InterpConfig(channels=(8, 8), blocks=1, refine_channels=4, radius=2, pairs_per_clip=8, width=32,
                    height=32)  # fmt: skip
ONE_CLIP = dataclasses.replace(TINY, pairs_per_clip=10**6)  # every triplet from clip 0


pytestmark = pytest.mark.usefixtures("one_thread")


def random_model(cfg: InterpConfig = TINY) -> FrameInterpolator:
    """A model with every weight random (an untrained one is the cross-fade: too easy to pass)."""
    torch.manual_seed(0)
    model = FrameInterpolator(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def clip(frames: int = 9, size: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def test_schedule_8_to_30_fps_is_exact():
    times = schedule(8, 30, 0, 16)
    assert times[0] == (0, 0) and times[15] == (4, 0)  # every 15th output lies on a base frame
    assert [float(t) for _, t in times[1:4]] == pytest.approx([4 / 15, 8 / 15, 12 / 15])
    assert all(0 < t < 1 for _, t in times[1:15])


def test_output_count_keeps_the_duration_and_base_frames_pass_through():
    video = clip(frames=9)  # 9 / 8 s
    out = interpolate(video, 8, 30, random_model())
    assert out.shape == (34, 24, 24, 3)  # ceil(9 / 8 * 30): k / 30 < 9 / 8
    for j in range(0, 9, 4):  # base frame j is output 15 j / 4
        np.testing.assert_array_equal(out[15 * j // 4], video[j])
    np.testing.assert_array_equal(out[31:], np.repeat(video[-1:], 3, 0))  # after the last base frame


@pytest.mark.parametrize("bf16", [False, True])
def test_streamed_in_chunks_equals_all_at_once(bf16):
    video, model = clip(frames=11), random_model()
    model.bf16 = bf16  # as load_interpolator sets it (bf16 autocast where the CPU has it natively)
    whole = interpolate(video, 8, 30, model)
    for sizes in ([1] * 11, [3, 5, 3], [10, 1]):
        chunks = np.split(video, np.cumsum(sizes)[:-1])
        parts = list(interpolate_stream(chunks, 8, 30, model, batch=5))
        assert all(len(p) <= 5 for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_same_rate_is_the_identity_and_odd_sizes_work():
    video = clip(frames=5, size=21)
    np.testing.assert_array_equal(interpolate(video, 8, 8, random_model()), video)
    assert interpolate(video, 8, 24, random_model()).shape == (15, 21, 21, 3)


def test_warp_and_cost_volume_closed_forms():
    frames = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(warp(frames, torch.zeros(2, 2, 16, 16)), frames)
    shifted = warp(frames, torch.ones(2, 2, 16, 16))  # out[y, x] = in[y + 1, x + 1]
    torch.testing.assert_close(shifted[..., :-1, :-1], frames[..., 1:, 1:])
    moved = torch.roll(frames, shifts=(1, -2), dims=(2, 3))  # content moves by (dx, dy) = (-2, 1)
    cost = cost_volume(frames, moved, radius=2)[..., 3:-3, 3:-3]  # away from the edges
    best = motion_grid(2)[cost.argmin(1)]  # (B, h, w, 2)
    assert (best == torch.tensor([-2.0, 1.0])).all()


def test_untrained_model_keeps_a_still_frame():
    frame = torch.rand(2, 3, 16, 16) * 2 - 1
    out = FrameInterpolator(TINY)(frame, frame, torch.tensor([0.25, 0.6]))
    # Not exactly: the soft arg-min gives other motions a sliver of weight (random frames: ~1e-2).
    torch.testing.assert_close(out, frame, atol=0.05, rtol=0)


def test_a_few_steps_lower_the_loss(tmp_path):
    tcfg = TrainConfig(what="interp", batch_size=8, lr=3e-3, warmup_steps=2, max_steps=25, log_every=5,
                       eval_every=0, num_workers=0, ckpt_every_s=1e9, bf16=False)  # fmt: skip
    task = InterpTask(ONE_CLIP, tcfg, 0, 1)
    batch = task.data[0]
    before = task.loss(task.model, batch)[0].item()
    train(ONE_CLIP, tcfg, tmp_path, progress=False)
    task.model.load_state_dict(checkpoint.load(tmp_path)["model"])
    after = task.loss(task.model, batch)[0].item()
    assert after < 0.95 * before, (before, after)
    with pytest.raises(ValueError, match="another model config"):
        train(dataclasses.replace(ONE_CLIP, blocks=2), tcfg, tmp_path, progress=False)
    # Exported (EMA weights + config.json) and loaded back as generate() loads the shipped ones.
    out = tmp_path / "out"
    assert cli_main(["train", "export-post", "--interp-run", str(tmp_path), "--out", str(out)]) == 0
    loaded = load_interpolator(out)
    assert loaded.cfg == ONE_CLIP
    for name, value in checkpoint.load(tmp_path)["ema"].items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


@pytest.mark.slow
def test_shipped_weights_beat_blending_on_held_out_clips():
    model = load_interpolator()
    data = held_out_triplets(model.cfg, clips=int(os.environ.get("MUTOSCOPE_TEST_CLIPS", 3)))
    with torch.no_grad():
        pred = model(data["frame0"], data["frame1"], data["t"])
    base = blend(data["frame0"], data["frame1"], data["t"])
    assert psnr(pred, data["target"]) > psnr(base, data["target"]) + 0.5
