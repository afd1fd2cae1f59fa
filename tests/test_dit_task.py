"""The DiT task's object weighting (where the objects' latents are, the weighted flow loss) and its
epochs over a fixed set of clips (the latents encoded once)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mutoscope.config import ModelConfig, TrainConfig, load_json, preset
from mutoscope.model import controls
from mutoscope.train.dit_task import KEY_MODES, DiTTask, object_latents, object_weighted_mean
from mutoscope.world.render import render_layers
from mutoscope.world.spec import ObjectSpec, SceneSpec
from mutoscope.world.vocab import Shape

CFG = preset("tiny")  # 64x64, 16 frames; latents 4 x 16 x 16


def test_object_latents_cover_the_object_and_nothing_else():
    square = ObjectSpec(Shape.SQUARE, "red", "small", 0.25, 0.25)  # still
    spec = SceneSpec((square,), "brick").validate()
    _, alphas = render_layers(spec, CFG.width, CFG.height, CFG.fps)
    cover = object_latents(alphas, CFG)
    assert cover.shape == (1, 4, 16, 16)
    # The square's centre, a quarter of the way in, is pixel (16, 16): latent position (4, 4).
    assert torch.all(cover[0, :, 4, 4] == 1.0)
    # Each position is the maximum of its 4x4x4 block of pixels: here one on the square's rim.
    block = alphas[0, 4:8, 12:16, 12:16].max()
    assert block > 0.0 and cover[0, 1, 3, 3] == torch.tensor(block)
    far = np.ones((16, 16), bool)
    far[1:8, 1:8] = False  # the square and its antialiased rim, with a margin
    assert torch.all(cover[0][:, torch.from_numpy(far)] == 0.0)


def test_object_weighted_mean_closed_forms():
    err = torch.rand(2, 3, 4, 5, 5)
    objects = (torch.rand(2, 1, 4, 5, 5) > 0.8).float()
    assert torch.allclose(object_weighted_mean(err, objects, 0.0), err.mean())
    # Error only on the objects: (1 + w) * their error over the total weight.
    on = err * objects
    w = 8.0
    expected = (1 + w) * on.sum() / (3 * (objects.numel() + w * objects.sum()))
    assert torch.allclose(object_weighted_mean(on, objects, w), expected)
    # The same error everywhere: the weighted mean is that error whatever the weights.
    assert torch.allclose(object_weighted_mean(torch.full_like(err, 0.3), objects, w), torch.tensor(0.3))


@pytest.fixture
def test_vae(trained_test_vae) -> Path:
    """An exported VAE of the test preset (conftest.py)."""
    return trained_test_vae.export


def dit_task(vae: Path, unique_clips: int, run_dir: Path | None = None, seed: int = 0,
             rank: int = 0, world_size: int = 1, **train) -> DiTTask:  # fmt: skip
    cfg = load_json(ModelConfig, vae / "config.json")
    tcfg = TrainConfig(what="dit", batch_size=4, unique_clips=unique_clips, num_workers=0, eval_clips=2,
                       seed=seed, **train)  # fmt: skip
    return DiTTask(cfg, tcfg, rank, world_size, vae, run_dir=run_dir)


def test_later_epochs_show_the_same_clips_with_new_noise(test_vae):
    task = dit_task(test_vae, unique_clips=8)
    first, again = task.data[1], task.data[3]  # samples 4..7 and 12..15: clips 4..7 both times
    assert first["clip"].tolist() == again["clip"].tolist() == [4, 5, 6, 7]
    assert "video" in first and "video" not in again  # the second time, the first epoch's latents
    assert not torch.equal(first["noise"], again["noise"]) and not torch.equal(first["t"], again["t"])
    texts = [task.make.stream.scene(c)[1].text for c in range(4, 8)]
    for batch in (first, again):  # the clip's caption, or "" (the dropout is drawn per sample)
        assert all(c in ("", text) for c, text in zip(batch["caption"], texts, strict=True))
        assert sum(c == "" for c in batch["caption"]) < 4
    with pytest.raises(ValueError, match="multiple of the batch"):
        dit_task(test_vae, unique_clips=6)


@pytest.mark.parametrize("power", [1.0, 4.0])
def test_the_object_weight_fades_towards_noise_as_the_configured_power(test_vae, power):
    """A model that answers 0: the error is the target squared, weighted 1 + w (1 - t)^p on the objects,
    w the keyed weight for the samples given frames (keyframes, extension)."""
    import dataclasses

    from mutoscope.diffusion import flow

    task = dit_task(test_vae, unique_clips=8)
    task.tcfg = dataclasses.replace(task.tcfg, object_weight=8.0, object_weight_power=power,
                                    object_weight_keyed=2.0)  # fmt: skip
    batch = task.data[1]
    x0, cond, objects = task.inputs(batch, task.cache)
    loss, _ = task.flow_loss(lambda x, *args: torch.zeros_like(x), batch, x0, cond, objects)
    err = flow.target(x0, batch["noise"].to(x0)).pow(2)
    fade = (1 - batch["t"]) ** power
    assert objects.sum() > 0 and not torch.allclose(fade, torch.ones_like(fade))
    keyed = torch.tensor([KEY_MODES[int(k)] != "none" for k in batch["key"]])
    assert 0 < keyed.sum() < len(keyed)  # both kinds in the batch
    weight = torch.where(keyed, 2.0, 8.0).view(-1, 1, 1, 1, 1)
    expected = object_weighted_mean(err, objects * fade.view(-1, 1, 1, 1, 1), weight)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, object_weighted_mean(err, objects * fade.view(-1, 1, 1, 1, 1), 8.0))


def test_a_later_epoch_reuses_the_latents_a_resumed_process_encodes_again(test_vae):
    """As the training loop runs it: the batches made outside autocast, the loss inside."""
    task = dit_task(test_vae, unique_clips=8)
    first, later = task.data[1], task.data[3]
    fresh = dit_task(test_vae, unique_clips=8)  # a run resumed in epoch 2: no cache yet
    resumed = fresh.data[3]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        encoded = task.inputs(first, task.cache)  # the first epoch: frames through the VAE
        assert sorted(task.cache.rows) == [4, 5, 6, 7]
        cached = task.inputs(later, task.cache)
        again = fresh.inputs(resumed, fresh.cache)  # renders and encodes clips 4..7 again
    assert sorted(fresh.cache.rows) == [4, 5, 6, 7]
    for a, b, c in zip(encoded, cached, again, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert encoded[1][:, -2].abs().sum() > 0  # a motion brush was drawn for one of these clips


def test_the_kept_latents_outlive_the_process_in_the_run_directory(test_vae, tmp_path, monkeypatch):
    task = dit_task(test_vae, unique_clips=8, run_dir=tmp_path)
    encoded = task.inputs(task.data[1], task.cache)
    (store,) = tmp_path.glob("latents-*")
    assert [p.name for p in store.iterdir()] == ["0000000004.pt"]  # one file a batch, by its first clip
    resumed = dit_task(test_vae, unique_clips=8, run_dir=tmp_path)
    monkeypatch.setattr(resumed, "latents", None)  # reading back must not encode anything
    for a, b in zip(encoded, resumed.inputs(resumed.data[3], resumed.cache), strict=True):
        assert torch.equal(a, b)
    # Another seed draws other clips and controls: its store is another directory.
    other = dit_task(test_vae, unique_clips=8, run_dir=tmp_path, seed=1)
    assert len(other.cache) == 0 and len(list(tmp_path.glob("latents-*"))) == 2


def test_a_rank_reads_back_only_the_clips_it_draws(test_vae, tmp_path):
    """Over fixed clips a torchrun rank draws the same share every epoch, so it holds only that share."""
    whole = dit_task(test_vae, unique_clips=8, run_dir=tmp_path)  # one process: batches of clips 0..3, 4..7
    for step in (0, 1):
        whole.inputs(whole.data[step], whole.cache)
    ranks = [dit_task(test_vae, unique_clips=8, run_dir=tmp_path, rank=r, world_size=2) for r in (0, 1)]
    assert sorted(ranks[0].cache.rows) == [0, 1, 4, 5] and sorted(ranks[1].cache.rows) == [2, 3, 6, 7]
    for r, task in enumerate(ranks):
        batch = task.data[2]  # the second epoch's first batch: this rank's half of clips 0..3
        assert batch["clip"].tolist() == [2 * r, 2 * r + 1]
        kept = task.inputs(batch, task.cache)  # read back, not encoded again
        for a, b in zip(kept, whole.cache.get([2 * r, 2 * r + 1], torch.device("cpu")), strict=True):
            assert torch.equal(a, b)
    # A rank's own files hold its clips alone, so another rank reading the directory keeps none of them.
    fresh = tmp_path / "ranks"
    one = dit_task(test_vae, unique_clips=8, run_dir=fresh, rank=1, world_size=2)
    one.inputs(one.data[0], one.cache)
    again = [dit_task(test_vae, unique_clips=8, run_dir=fresh, rank=r, world_size=2) for r in (0, 1)]
    assert len(again[0].cache) == 0 and sorted(again[1].cache.rows) == [2, 3]


def test_a_dit_for_a_new_latent_format_starts_from_the_trained_transformer(test_vae, tmp_path):
    """--init from a DiT over other patches (or another VAE's channels): the blocks carry over, the
    token layers start afresh, the velocity at zero."""
    import dataclasses

    from safetensors.torch import load_file

    from mutoscope.generate import save_model
    from mutoscope.model.dit import DiT
    from mutoscope.train import checkpoint
    from mutoscope.train.loop import train
    from mutoscope.vae import CausalVAE

    cfg = load_json(ModelConfig, test_vae / "config.json")
    other = dataclasses.replace(cfg, dit=dataclasses.replace(cfg.dit, patch_size=(1, 1, 1)))
    torch.manual_seed(3)
    old = DiT(other.dit)
    with torch.no_grad():
        old.final.linear.weight.normal_()  # a trained model's head is not zero
    save_model(tmp_path / "old", other, old, CausalVAE(cfg.vae))
    # lr 0: the step moves nothing, so the checkpoint holds the weights the run started from
    tcfg = TrainConfig(what="dit", batch_size=2, lr=0.0, warmup_steps=1, max_steps=1, num_workers=0,
                       eval_every=0, ckpt_every_s=1e9)  # fmt: skip
    train(cfg, tcfg, tmp_path / "run", progress=False, vae_path=test_vae, init=tmp_path / "old")
    new = checkpoint.load(tmp_path / "run")["model"]
    saved = load_file(tmp_path / "old" / "dit.safetensors")
    token_layers = ("patch_embed.", "final.linear.")
    assert all(torch.equal(new[k], v) for k, v in saved.items() if not k.startswith(token_layers))
    assert new["patch_embed.weight"].shape != saved["patch_embed.weight"].shape
    assert (
        not new["final.linear.weight"].any()
        and new["final.linear.weight"].shape[0] == 4 * cfg.dit.in_channels
    )
    with pytest.raises(ValueError, match="another width or depth"):
        DiT(dataclasses.replace(cfg.dit, dim=2 * cfg.dit.dim, heads=2)).transplant_state(saved)


def test_with_color_features_training_hides_some_color_names_and_keeps_the_latents(test_vae, tmp_path):
    import dataclasses

    from mutoscope.config import TextConfig

    cfg = load_json(ModelConfig, test_vae / "config.json")
    dit = dataclasses.replace(cfg.dit, text_dim=cfg.dit.text_dim + 4)
    colored = dataclasses.replace(cfg, text=TextConfig(color_features=True), dit=dit)
    tcfg = TrainConfig(what="dit", batch_size=4, unique_clips=8, num_workers=0, eval_clips=8,
                       caption_dropout=0.0)  # fmt: skip
    plain = DiTTask(cfg, tcfg, 0, 1, test_vae, run_dir=tmp_path)
    task = DiTTask(colored, tcfg, 0, 1, test_vae)
    captions, shown = (
        [task.make(i)["caption"] for i in range(40)],
        [plain.make(i)["caption"] for i in range(40)],
    )
    assert any("[[" in c for c in captions) and not any("[[" in c for c in shown)
    assert [c.replace("[[", "").replace("]]", "") for c in captions] == shown
    assert not any("[[" in c for c in task.held_out["caption"])  # the held-out loss: every name shown
    # The kept latents are the clips' and the VAE's, not the text encoder's: both runs share them.
    encoded = plain.inputs(plain.data[1], plain.cache)
    resumed = DiTTask(colored, tcfg, 0, 1, test_vae, run_dir=tmp_path)
    resumed.latents = None  # reading back must not encode anything, in the first epoch either
    first, later = resumed.data[1], resumed.data[3]
    assert "video" in first and "video" not in later
    for batch in (first, later):
        for a, b in zip(encoded, resumed.inputs(batch, resumed.cache), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="text_dim"):
        DiTTask(dataclasses.replace(cfg, text=colored.text), tcfg, 0, 1, test_vae)


@pytest.mark.parametrize("trip", [False, True])
def test_an_extension_sample_sees_its_first_latent_frames_blurred_by_a_clips_own_noise(test_vae, trip):
    from mutoscope.train import dit_task as module

    task = dit_task(test_vae, unique_clips=0, extend_trip=trip)
    batch = task.data[0]
    batch["key"] = torch.full_like(batch["key"], module.KEY_MODES.index("extend"))
    x0 = task.latents(batch["video"])
    cond, again = task.keyframes(batch, x0), task.keyframes(batch, x0)
    C = x0.shape[1]
    assert torch.equal(cond, again)  # drawn from (seed, clip): a resumed run sees the same
    given = cond[:, C].flatten(2).amax(dim=2)  # (B, T'): the keyframe mask of each latent frame
    counts = given.sum(dim=1).long().tolist()
    assert set(counts) == set(module.EXTEND_CONTEXT) and torch.all(given[:, 0] == 1.0)  # both, seed 0
    for g, n in zip(given, counts, strict=True):
        assert torch.all(g[:n] == 1.0) and torch.all(g[n:] == 0.0)
    # The known latents are the clip's own (with extend_trip: after generation's trip through uint8
    # frames), plus noise.
    own = [x0[b, :, :n] for b, n in enumerate(counts)]
    trips = [controls.tail_latents(task.vae, z[None])[0] if trip else z for z in own]
    stds = torch.stack(
        [(cond[b, :C, :n] - z).std() for b, (n, z) in enumerate(zip(counts, trips, strict=True))]
    )
    assert torch.all(stds < module.EXTEND_NOISE * 1.1) and len(set(stds.tolist())) == len(stds)
    assert stds.max() > 0.01  # not the known latents as they are
    if trip:  # the trip moves the latents: the test tells the two apart
        assert all((z - x0[b, :, : z.shape[1]]).abs().mean() > 1e-3 for b, z in enumerate(trips))


def test_a_time_shift_moves_the_training_times_towards_noise_and_not_the_held_out_ones(test_vae):
    """SD3's shift: each sample's logit of t moves by ln s, its noise unchanged; the held-out batch, the
    yardstick across runs, keeps its times."""
    import math

    plain, shifted = dit_task(test_vae, unique_clips=0), dit_task(test_vae, unique_clips=0, t_shift=3.0)
    a, b = plain.data[0], shifted.data[0]
    assert torch.equal(a["noise"], b["noise"])
    assert torch.allclose(torch.logit(b["t"]) - torch.logit(a["t"]), torch.full_like(a["t"], math.log(3.0)),
                          atol=1e-4)  # fmt: skip
    assert (b["t"] > a["t"]).all()
    assert torch.equal(plain.held_out["t"], shifted.held_out["t"])


def test_text_to_image_samples_are_the_first_latent_frames_of_other_kept_clips(test_vae):
    """Each video sample brings `images_per_sample` others' first latent frames, spread over the fixed
    clips by whole batches (so a torchrun rank keeps them), with captions, noise and times of their own;
    their loss is the flow loss of those frames alone, without controls, added to the video's."""
    from mutoscope.diffusion import flow

    task = dit_task(test_vae, unique_clips=16, images_per_sample=3)
    batch = task.data[0]  # samples 0..3 of clips 0..3; images of clips 4.., 8.., 12.. (the 4 batches / 4)
    assert batch["image_clip"].tolist() == [[4, 8, 12], [5, 9, 13], [6, 10, 14], [7, 11, 15]]
    assert batch["image_noise"].shape == (4, 3, *task.make.image_latent)
    texts = {c: task.make.stream.scene(c)[1].text for c in range(16)}
    for clips, captions in zip(batch["image_clip"].tolist(), batch["image_caption"], strict=True):
        assert all(c in ("", texts[k]) for k, c in zip(clips, captions, strict=True))
    assert "video" in batch and "video" not in task.data[4]  # epochs over the 16 clips as before
    assert torch.equal(task.data[0]["noise"], dit_task(test_vae, unique_clips=16).data[0]["noise"])

    seen = []

    def zero(x, t, text, mask, cond):
        seen.append(cond)
        return torch.zeros_like(x)

    loss, metrics = task.loss(zero, batch)
    image_cond = seen[-1]  # every control off (the model's inputs take them all)
    assert image_cond.shape == (12, task.cfg.dit.cond_channels, 1, *task.make.latent[-2:])
    assert not image_cond.any()
    assert sorted(task.cache.rows) == list(range(16))  # the images' clips encoded and kept too
    x0, _, objects = task.cache.get(batch["image_clip"].flatten().tolist(), torch.device("cpu"))
    first = x0[:, :, :1]
    err = flow.target(first, batch["image_noise"].flatten(0, 1)).pow(2)
    fade = (1 - batch["image_t"].flatten()).view(-1, 1, 1, 1, 1)
    image = object_weighted_mean(err, objects[:, :, :1] * fade, task.tcfg.object_weight)
    assert metrics["image"] == pytest.approx(image.item(), rel=1e-5)
    video, _ = task.flow_loss(zero, task.data[0], *task.inputs(task.data[0], task.cache))
    assert loss.item() == pytest.approx(video.item() + image.item(), rel=1e-5)
    with pytest.raises(ValueError, match="unique-clips"):
        dit_task(test_vae, unique_clips=0, images_per_sample=1)


def test_an_image_only_run_trains_on_first_latent_frames_and_ships_beside_the_video_dit(test_vae, tmp_path):
    """`--image-only`: every sample is a clip's first temporal_down frames (its first latent frame, as
    the causal VAE encodes it within the whole clip), its caption, no control; the run's EMA ships as
    the model directory's image.safetensors (`train export --image-run`)."""
    from safetensors.torch import load_file

    from mutoscope.data.world_stream import to_model
    from mutoscope.train.export import export
    from mutoscope.train.loop import train

    task = dit_task(test_vae, unique_clips=8, image_only=True)
    cfg, td = task.cfg, task.cfg.vae.temporal_down
    batch = task.data[0]
    assert batch["video"].shape == (4, 3, td, cfg.height, cfg.width)
    assert batch["noise"].shape == (4, cfg.vae.latent_channels, 1, *task.make.latent[-2:])
    x0, cond, objects = task.inputs(batch, task.cache)
    assert x0.shape[2] == objects.shape[2] == 1
    assert cond is None or not cond.any()  # no camera, brush, static mask or keyframe
    spec = task.make.stream.scene(2)[0]
    frames, _ = render_layers(spec, cfg.width, cfg.height, cfg.fps)
    whole = task.latents(to_model(torch.from_numpy(frames))[None])
    assert torch.allclose(x0[2], whole[0, :, :1], atol=1e-4)
    assert task.held_out["noise"].shape[2] == 1  # held out: the text-to-image loss
    with pytest.raises(ValueError, match="image-only"):
        dit_task(test_vae, unique_clips=8, image_only=True, images_per_sample=1)

    tcfg = TrainConfig(what="dit", batch_size=4, lr=1e-3, warmup_steps=1, max_steps=2, num_workers=0,
                       eval_every=0, ckpt_every_s=1e9, unique_clips=8, image_only=True)  # fmt: skip
    train(cfg, tcfg, tmp_path / "image", progress=False, vae_path=test_vae)
    video = dataclasses.replace(tcfg, image_only=False)
    train(cfg, video, tmp_path / "video", progress=False, vae_path=test_vae)
    out = export(tmp_path / "model", dit_run=tmp_path / "video", image_run=tmp_path / "image")
    image, dit = load_file(out / "image.safetensors"), load_file(out / "dit.safetensors")
    assert image.keys() == dit.keys() and any(not torch.equal(image[k], dit[k]) for k in dit)


def test_a_text_only_dit_takes_its_text_to_image_samples_without_a_control_input(test_vae):
    """A DiT without control channels gets None for its image samples, as for its video samples."""
    cfg = load_json(ModelConfig, test_vae / "config.json")
    text_only = dataclasses.replace(cfg, dit=dataclasses.replace(cfg.dit, cond_channels=0))
    tcfg = TrainConfig(what="dit", batch_size=4, unique_clips=8, num_workers=0, eval_clips=2,
                       images_per_sample=1)  # fmt: skip
    task = DiTTask(text_only, tcfg, 0, 1, test_vae)
    seen = []

    def zero(x, t, text, mask, cond):
        seen.append((x.shape[2], cond))
        return torch.zeros_like(x)

    loss, metrics = task.loss(zero, task.data[0])
    assert [(frames, cond) for frames, cond in seen] == [(task.make.latent[1], None), (1, None)]
    assert loss.item() > metrics["image"] > 0
