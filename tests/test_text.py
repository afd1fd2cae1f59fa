"""The frozen text encoder: the bundled MiniLM through our own BERT, checked against transformers."""

from __future__ import annotations

import pytest
import torch

from mutoscope.config import TextConfig
from mutoscope.text import TextEncoder, masked_mean, minilm_path, pad_to

PROMPTS = ["a red ball bounces", "", "two blue squares glide to the left while the camera pans right"]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(TextConfig())


def test_states_and_mask_shapes(encoder):
    states, mask = encoder.encode(PROMPTS)
    assert states.dtype == torch.float32 and mask.dtype == torch.bool
    assert states.shape == (3, mask.shape[1], 384)
    lengths = mask.sum(1).tolist()
    assert lengths[1] == 2  # "" is [CLS] [SEP]: the unconditional embedding
    assert lengths[2] == mask.shape[1] > lengths[0] > 2
    assert mask[0, : lengths[0]].all() and not mask[0, lengths[0] :].any()  # right padding
    assert (states[0, lengths[0] :] == 0).all()


def test_truncated_to_max_tokens():
    enc = TextEncoder(TextConfig(max_tokens=8))
    states, mask = enc.encode(["a red ball " * 20])
    assert states.shape == (1, 8, 384) and mask.all()


def test_matches_transformers_bert(encoder):
    """Our BERT + tokenizers == transformers' BertModel + BertTokenizer, through TextConfig.path."""
    hf = TextEncoder(TextConfig(path=str(minilm_path())))
    ours_states, ours_mask = encoder.encode(PROMPTS)
    hf_states, hf_mask = hf.encode(PROMPTS)
    assert torch.equal(ours_mask, hf_mask)
    assert (ours_states - hf_states).abs().max().item() < 1e-4


def test_a_prompt_s_states_do_not_depend_on_its_batch(encoder):
    """A prompt encoded alone and in a batch with a longer one gives the same token states, to the
    bit, and so do the states of its padded batch against the states of the prompt encoded alone."""
    alone = encoder._encode_uncached([PROMPTS[0]])[0]
    assert torch.equal(alone, encoder._encode_uncached(PROMPTS)[0])
    padded = encoder._encode_batch(PROMPTS)[0]  # one forward over the padded batch: close only
    assert alone.shape == padded.shape and torch.allclose(alone, padded, atol=1e-5)


def test_meaning_is_carried(encoder):
    """Synonyms land closer than different facts: the states carry meaning, not template ids."""
    pooled = torch.nn.functional.normalize(
        encoder.pooled(["a red ball", "a crimson ball", "a blue square"]), dim=-1
    )
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.1


def test_lru_cache(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 2)
    encoder._cache.clear()
    first, _ = encoder.encode(["one"])
    encoder.encode(["two"])
    again, _ = encoder.encode(["one"])  # a hit: "one" becomes the most recent
    assert torch.equal(first, again)
    encoder.encode(["three"])  # evicts the least recently used, "two"
    assert list(encoder._cache) == ["one", "three"]


def test_wrong_dim_and_bad_path():
    with pytest.raises(ValueError, match="384-d"):
        TextEncoder(TextConfig(dim=512))
    with pytest.raises(FileNotFoundError):
        TextEncoder(TextConfig(path="/nonexistent/encoder"))
    with pytest.raises(TypeError):
        TextEncoder(TextConfig(max_tokens=4)).encode("not a list")


def test_pad_to_and_masked_mean():
    states = torch.arange(6.0).reshape(1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    padded, padded_mask = pad_to(states, mask, 5)
    assert padded.shape == (1, 5, 2) and padded_mask.tolist() == [[True, True, False, False, False]]
    assert masked_mean(padded, padded_mask).tolist() == [[1.0, 2.0]]  # mean of rows 0 and 1 only


def test_states_can_enter_a_training_step(encoder):
    """Encoded under inference mode, returned as ordinary tensors: a layer on them can backpropagate."""
    states, mask = encoder.encode(["a red ball"])
    layer = torch.nn.Linear(384, 2)
    (layer(states) * mask[..., None]).sum().backward()
    assert layer.weight.grad.abs().sum() > 0
