"""The DiT task's object weighting: where the objects' latents are, and the weighted flow loss."""

from __future__ import annotations

import numpy as np
import torch

from mutoscope.config import preset
from mutoscope.train.dit_task import object_latents, object_weighted_mean
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
