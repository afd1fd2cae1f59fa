"""Color names grounded in RGB beside the text encoder's states: which tokens get which color, the
names hidden from the encoder in training, and a DiT that learns to read them from the trained one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mutoscope.config import TextConfig, preset
from mutoscope.model.dit import DiT
from mutoscope.text import TextEncoder
from mutoscope.text_colors import FEATURES, color_spans, color_table, hide_colors, token_features


def rgb(name: str) -> torch.Tensor:
    """The features of a token of color `name`: [1, r, g, b] in [-1, 1]."""
    return torch.tensor([1.0, *(2 * np.asarray(color_table()[name]) - 1)], dtype=torch.float32)


@pytest.fixture(scope="module")
def encoders() -> tuple[TextEncoder, TextEncoder]:
    return TextEncoder(TextConfig()), TextEncoder(TextConfig(color_features=True))


def test_the_longest_color_name_wins_and_a_hidden_one_becomes_mask():
    shown, spans = color_spans("A royal blue ball, a [[Crimson]]-colored box and a teal star.")
    assert shown == "A royal blue ball, a [MASK]-colored box and a teal star."
    table = color_table()
    teal = shown.index("teal")
    assert spans == [
        (2, 12, table["royal blue"]),
        (21, 27, table["crimson"]),
        (teal, teal + 4, table["teal"]),
    ]
    assert color_spans("a [[ball]] rolls") == ("a ball rolls", [])  # only a color name can be hidden
    features = token_features([(0, 0), (2, 7), (8, 12), (13, 17), (0, 0)], spans[:1])
    royal = rgb("royal blue")
    assert torch.allclose(features, torch.stack([0 * royal, royal, royal, 0 * royal, 0 * royal]))


def test_the_encoder_adds_the_rgb_of_each_color_token_and_reads_a_hidden_name_as_mask(encoders):
    plain, colors = encoders
    assert colors.out_dim == plain.out_dim + FEATURES == 388
    states, _ = colors.encode(["a scarlet ball rolls", "a [[scarlet]] ball rolls", "a [MASK] ball rolls"])
    base, _ = plain.encode(["a scarlet ball rolls"])
    assert torch.equal(states[0, :, :384], base[0])  # the encoder's own states are untouched
    scarlet = rgb("scarlet")
    assert torch.allclose(states[0, 2, 384:], scarlet) and not states[0, [0, 1, 3, 4, 5], 384:].any()
    # hidden: the encoder saw [MASK] (the same states as that prompt), the RGB is scarlet's
    assert torch.equal(states[1, :, :384], states[2, :, :384])
    assert torch.allclose(states[1, 2, 384:], scarlet) and not states[2, :, 384:].any()
    with pytest.raises(ValueError, match="bundled MiniLM"):
        TextEncoder(TextConfig(path="/somewhere", color_features=True))


def test_hiding_draws_each_name_independently_and_keeps_the_text():
    rng = np.random.default_rng(0)
    text = "A red ball and a golden star rest."
    hidden = [hide_colors(text, rng, 0.5) for _ in range(200)]
    assert all(h.replace("[[", "").replace("]]", "") == text for h in hidden)
    share = np.mean([h.count("[[") for h in hidden]) / 2
    assert 0.4 < share < 0.6 and hide_colors(text, rng, 0.0) == text


def test_a_dit_gaining_color_features_computes_what_it_did():
    cfg = preset("test").dit
    torch.manual_seed(0)
    base = DiT(cfg)
    for p in base.parameters():  # a trained model: nothing at zero
        torch.nn.init.normal_(p, std=0.05)
    wide = DiT(dataclasses.replace(cfg, text_dim=cfg.text_dim + FEATURES))
    wide.load_state_dict(wide.widen_state(base.state_dict()))
    x, t = torch.randn(1, cfg.in_channels, 2, 4, 4), torch.tensor([0.3])
    text, mask = torch.randn(1, 5, cfg.text_dim), torch.ones(1, 5, dtype=torch.bool)
    cond = torch.randn(1, cfg.cond_channels, 2, 4, 4)
    rgb = torch.randn(1, 5, FEATURES)  # whatever the colors say, the widened model starts deaf to them
    with torch.no_grad():
        assert torch.allclose(
            wide(x, t, torch.cat([text, rgb], -1), mask, cond), base(x, t, text, mask, cond), atol=1e-6
        )


def test_a_model_whose_dit_does_not_read_its_encoders_features_is_refused(tmp_path):
    from mutoscope.errors import UserError
    from mutoscope.generate import load_model, save_model
    from mutoscope.vae import CausalVAE

    cfg = preset("test")
    save_model(
        tmp_path,
        dataclasses.replace(cfg, text=TextConfig(color_features=True)),
        DiT(cfg.dit),
        CausalVAE(cfg.vae),
    )
    with pytest.raises(UserError, match="reads 384 text features, its encoder gives 388"):
        load_model(tmp_path)
