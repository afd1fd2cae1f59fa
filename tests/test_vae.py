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
    narrowed = shallow.widen_state(wider.state_dict())  # fewer latents: fresh latent projections
    own = shallow.state_dict()
    assert torch.equal(narrowed["decoder.conv_in.conv.weight"], own["decoder.conv_in.conv.weight"])
    assert torch.equal(narrowed["encoder.conv_out.conv.bias"], own["encoder.conv_out.conv.bias"])
    assert torch.equal(
        narrowed["encoder.conv_in.conv.weight"], wider.state_dict()["encoder.conv_in.conv.weight"]
    )
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


def finer_vae(seed: int = 0) -> CausalVAE:
    """The test preset at 2x in space, still 4x in time: its second resolution change halves time alone."""
    torch.manual_seed(seed)
    return CausalVAE(dataclasses.replace(preset("test").vae, spatial_down=2)).eval()


def test_a_vae_of_2x_space_and_4x_time_keeps_its_shapes_and_causality():
    vae = finer_vae()
    x = video(t=16, size=16)
    with torch.no_grad():
        mean, _ = vae.encode(x)
        assert (
            mean.shape == (1, vae.cfg.latent_channels, 4, 8, 8)
            and vae.latent_shape(16, 16, 16) == mean.shape[1:]
        )
        full = vae.decode(mean)
        assert full.shape == x.shape
        for k in range(1, 4):
            assert torch.allclose(vae.decode(mean[:, :, :k]), full[:, :, : 4 * k], atol=1e-5), k
            y = x.clone()
            y[:, :, 4 * k :] = torch.rand_like(y[:, :, 4 * k :])
            changed, _ = vae.encode(y)
            assert torch.allclose(changed[:, :, :k], mean[:, :, :k], atol=1e-5), k
            assert (changed[:, :, k:] - mean[:, :, k:]).abs().max() > 1e-4
        assert torch.allclose(vae.decode_streamed(mean, chunk=1), full, atol=1e-5)


def test_a_2x_vae_starts_from_a_4x_ones_convs():
    coarse, fine = tiny_vae(1), finer_vae(2)
    fine.load_state_dict(fine.widen_state(coarse.state_dict()))
    ups = [i for i, b in enumerate(coarse.decoder.blocks) if type(b).__name__ == "Upsample"]
    assert ups and all(type(fine.decoder.blocks[i]).__name__ == "Upsample" for i in ups)
    first, rest = ups[0], [k for k in fine.state_dict() if not k.startswith(f"decoder.blocks.{ups[0]}.")]
    assert all(torch.equal(fine.state_dict()[k], coarse.state_dict()[k]) for k in rest)
    # The upsampler that now doubles time alone is the trained one read at one pixel of every 2x2.
    h = torch.randn(1, fine.decoder.blocks[first].conv.conv.in_channels, 2, 4, 4)
    with torch.no_grad():
        assert torch.allclose(fine.decoder.blocks[first](h), coarse.decoder.blocks[first](h)[..., ::2, ::2])


@pytest.mark.parametrize(
    ("change", "message"),
    [(dict(spatial_down=3), "power of two"), (dict(channel_mult=(1, 2, 2, 2)), "need 2"),
     (dict(temporal_down=8), "need 3")],
)  # fmt: skip
def test_a_compression_the_stages_cannot_make_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        CausalVAE(dataclasses.replace(preset("test").vae, **change))


def test_a_fringe_the_decoder_paints_weighs_as_much_as_the_object_it_grew_from():
    from mutoscope.vae.model import object_weights

    x = torch.full((1, 3, 1, 1, 3), -0.2)  # three gray background pixels
    x[..., 0] = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # the first one pure red: an object
    painted = x.clone()
    painted[..., 1] = torch.tensor([0.9, -0.9, -0.9]).view(1, 3, 1, 1)  # the decoder bled red into the second
    assert object_weights(x, 10.0).flatten().tolist() == [11.0, 1.0, 1.0]
    assert object_weights(x, 10.0, painted).flatten().tolist() == [11.0, 11.0, 1.0]


def test_weight_painted_changes_the_loss_only_where_the_reconstruction_is_saturated():
    vae = tiny_vae().train()
    x, noise = video(b=1), torch.randn(1, *vae.latent_shape(8, 16, 16))
    plain, _ = vae_loss(vae, x, noise, 1e-6, object_weight=10.0)
    painted, _ = vae_loss(vae, x, noise, 1e-6, object_weight=10.0, weight_painted=True)
    assert painted >= plain  # weights only ever rise
    assert vae_loss(vae, x, noise, 1e-6, 0.0, weight_painted=True)[0] == vae_loss(vae, x, noise, 1e-6, 0.0)[0]
