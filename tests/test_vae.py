"""The causal VAE: shapes, causality of encoder and decoder, streamed decoding, the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mutoscope.config import VAEConfig, preset
from mutoscope.vae import CausalVAE, channels_last, vae_loss
from mutoscope.vae.layers import CausalConv3d

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_vae(seed: int = 0) -> CausalVAE:
    torch.manual_seed(seed)
    return CausalVAE(preset("test").vae).eval()


def video(b: int = 1, t: int = 8, size: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, size, size, generator=g) * 2 - 1


def test_shapes_follow_the_compression():
    vae = tiny_vae()
    cfg = vae.cfg
    x = video(b=2, t=12, size=16)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (2, cfg.latent_channels, 3, 4, 4)
    assert vae.latent_shape(12, 16, 16) == tuple(mean.shape[1:])
    assert vae.decode(mean).shape == x.shape


def test_decoder_is_causal_prefix_decodes_to_prefix_frames():
    vae = tiny_vae()
    z = torch.randn(1, vae.cfg.latent_channels, 4, 4, 4)
    with torch.no_grad():
        full = vae.decode(z)
        for k in range(1, 4):
            assert torch.allclose(vae.decode(z[:, :, :k]), full[:, :, : 4 * k], atol=1e-5), k
        # and the future cannot leak back: changing latent 3 leaves frames 0..11 alone, not frame 12
        z2 = z.clone()
        z2[:, :, 3] += 1.0
        other = vae.decode(z2)
    assert torch.allclose(other[:, :, :12], full[:, :, :12], atol=1e-5)
    assert (other[:, :, 12:] - full[:, :, 12:]).abs().max() > 1e-3


def test_encoder_is_causal_latent_k_sees_frames_before_4k_plus_4():
    vae = tiny_vae()
    x = video(t=16)
    with torch.no_grad():
        mean, _ = vae.encode(x)
        for k in range(3):
            y = x.clone()
            y[:, :, 4 * (k + 1) :] = torch.rand_like(y[:, :, 4 * (k + 1) :])
            changed, _ = vae.encode(y)
            assert torch.allclose(changed[:, :, : k + 1], mean[:, :, : k + 1], atol=1e-5), k
            assert (changed[:, :, k + 1 :] - mean[:, :, k + 1 :]).abs().max() > 1e-4
        y = x.clone()
        y[:, :, 7] = 0.0  # the last frame of group 1 reaches latent 1
        changed, _ = vae.encode(y)
    assert (changed[:, :, 1] - mean[:, :, 1]).abs().max() > 1e-4
    assert torch.allclose(changed[:, :, 0], mean[:, :, 0], atol=1e-5)


def test_streamed_decode_equals_full_decode():
    vae = tiny_vae()
    z = torch.randn(2, vae.cfg.latent_channels, 5, 4, 4)
    with torch.no_grad():
        full = vae.decode(z)
        for chunk in (1, 2, 3):
            # equal up to float summation order (convs over different lengths block differently)
            assert torch.allclose(vae.decode_streamed(z, chunk=chunk), full, atol=1e-5), chunk


def test_streamed_decode_state_does_not_grow_with_length():
    vae = tiny_vae()
    cache: dict = {}
    z = torch.randn(1, vae.cfg.latent_channels, 9, 4, 4)
    per_chunk = []
    with torch.no_grad():
        for i in range(9):
            piece = vae.decoder(z[:, :, i : i + 1], cache)
            assert piece.shape[2] == 4
            per_chunk.append(sum(t.numel() for t in cache.values()))
    assert len(set(per_chunk)) == 1  # fixed-size causal context: memory flat in the video length
    convs = [m for m in vae.decoder.modules() if isinstance(m, CausalConv3d) and m.past > 0]
    assert len(cache) == len(convs)


def test_normalize_inverts_denormalize():
    vae = CausalVAE(VAEConfig(base_channels=8, latent_channels=4, latent_mean=0.3, latent_std=2.5))
    z = torch.randn(2, 4, 2, 3, 3)
    assert torch.allclose(vae.denormalize(vae.normalize(z)), z, atol=1e-5)
    assert torch.allclose(vae.normalize(torch.full((1,), 0.3)), torch.zeros(1))


def test_channels_last_keeps_the_outputs():
    vae = tiny_vae()
    x = video()
    with torch.no_grad():
        a = vae.decode(vae.encode(x)[0])
        channels_last(vae)
        b = vae.decode(vae.encode(x.contiguous(memory_format=torch.channels_last_3d))[0])
    assert torch.allclose(a, b, atol=1e-5)


def test_loss_is_finite_and_its_gradient_reaches_both_halves():
    vae = tiny_vae().train()
    x = video(b=2)
    noise = torch.randn(2, *vae.latent_shape(8, 16, 16))
    loss, metrics = vae_loss(vae, x, noise, kl_weight=1e-6)
    loss.backward()
    assert torch.isfinite(loss) and set(metrics) >= {"l1", "l2", "kl", "psnr"}
    assert vae.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    assert vae.decoder.conv_out.conv.weight.grad.abs().sum() > 0


def test_bad_frame_count_is_refused():
    vae = tiny_vae()
    try:
        vae.encode(video(t=6))
    except ValueError as e:
        assert "multiple of 4" in str(e)
    else:
        raise AssertionError("6 frames accepted")


def test_a_deepened_vae_starts_as_the_trained_one():
    small = preset("test").vae
    shallow = CausalVAE(small)
    deep = CausalVAE(dataclasses.replace(small, decoder_blocks_per_stage=3))
    assert len(deep.decoder.blocks) == len(shallow.decoder.blocks) + 2 * len(small.channel_mult)
    deep.load_state_dict(deep.widen_state(shallow.state_dict()))
    z = torch.randn(1, small.latent_channels, 2, 4, 4)
    assert torch.allclose(deep.decode(z), shallow.decode(z), atol=1e-6)
    x = video()
    assert torch.equal(deep.encode(x)[0], shallow.encode(x)[0])
    deeper = CausalVAE(dataclasses.replace(small, blocks_per_stage=2, decoder_blocks_per_stage=3))
    deeper.load_state_dict(deeper.widen_state(shallow.state_dict()))
    assert len(deeper.encoder.blocks) == len(shallow.encoder.blocks) + len(small.channel_mult)
    assert torch.allclose(deeper.encode(x)[0], shallow.encode(x)[0], atol=1e-6)
    wider = CausalVAE(dataclasses.replace(small, latent_channels=2 * small.latent_channels))
    wider.load_state_dict(wider.widen_state(shallow.state_dict()))
    mean, logvar = wider.encode(x)
    c = small.latent_channels
    assert torch.allclose(mean[:, :c], shallow.encode(x)[0], atol=1e-6)
    assert torch.allclose(logvar[:, c:], torch.tensor(-10.0))  # the new channels: near-deterministic
    z2 = torch.cat([z, torch.randn_like(z)], 1)  # whatever the new channels hold, it decodes the same
    assert torch.allclose(wider.decode(z2), shallow.decode(z), atol=1e-6)
    with pytest.raises(ValueError, match="cannot narrow"):
        shallow.widen_state(wider.state_dict())
    with pytest.raises(ValueError, match="cannot deepen"):
        shallow.widen_state(deep.state_dict())


def test_decoder_only_training_leaves_the_encoder_as_it_was():
    from mutoscope.config import TrainConfig
    from mutoscope.train.tasks import VAETask

    cfg = preset("test")
    task = VAETask(cfg, TrainConfig(what="vae", batch_size=2, freeze_encoder=True, crop_size=16), 0, 1)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in task.model.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = task.loss(task.model, task.data[0])
    loss.backward()
    opt.step()
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
