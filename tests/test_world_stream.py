"""The world stream: deterministic samples, the same set of clips under any rank x worker layout."""

from __future__ import annotations

import itertools
import json
from hashlib import sha1

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mutoscope.data.world_stream import WorldStream, collate, from_model, to_model
from mutoscope.world.claims import claims_from_json, holds
from mutoscope.world.holdout import in_training
from mutoscope.world.spec import SceneSpec


def fingerprint(item: dict) -> tuple:
    """What identifies a sample: its index, texts and a digest of its pixels."""
    video = np.asarray(item["video"])
    return (
        item["index"],
        item["caption"],
        item["claims"],
        item["spec"],
        sha1(video.tobytes()).digest(),
    )


def test_item_shapes_and_contents():
    item = WorldStream(seed=0, width=40, height=24, fps=8.0, seconds=2.0).sample(0)
    video = item["video"]
    assert isinstance(video, torch.Tensor) and video.dtype == torch.uint8
    assert tuple(video.shape) == (16, 24, 40, 3)  # (T, H, W, 3): 2 s at 8 fps
    spec = SceneSpec.from_json(item["spec"])
    claims = claims_from_json(item["claims"])
    assert item["caption"] and claims
    assert all(holds(spec, c) for c in claims)  # every claim the caption makes is true
    plain = WorldStream(seed=0, width=40, height=24, as_tensor=False, fps=12, seconds=1.5).sample(0)
    assert isinstance(plain["video"], np.ndarray) and plain["video"].shape == (18, 24, 40, 3)


def test_samples_are_deterministic_and_seeded():
    a, b = WorldStream(seed=5), WorldStream(seed=5)
    assert fingerprint(a.sample(3)) == fingerprint(b.sample(3))
    assert torch.equal(a.sample(3)["video"], b.sample(3)["video"])
    assert fingerprint(a.sample(3)) != fingerprint(a.sample(4))
    other = WorldStream(seed=6)
    assert [a.sample(i)["spec"] for i in range(4)] != [other.sample(i)["spec"] for i in range(4)]


def test_stream_is_endless_by_default_and_finite_with_length():
    first = list(itertools.islice(iter(WorldStream(seed=1)), 5))
    assert [x["index"] for x in first] == [0, 1, 2, 3, 4]
    assert [x["index"] for x in WorldStream(seed=1, length=3)] == [0, 1, 2]


def test_two_ranks_two_workers_cover_the_same_samples_as_one_process():
    n = 12
    single = {fingerprint(x) for x in WorldStream(seed=2, width=32, height=32, length=n)}
    assert len(single) == n
    seen: list[tuple] = []
    for rank in range(2):
        stream = WorldStream(seed=2, width=32, height=32, length=n, rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        mine = [fingerprint(x) for x in loader]
        # Shard of worker w on this rank: indices i with i % 4 == rank * 2 + w.
        assert {f[0] % 4 for f in mine} == {rank * 2, rank * 2 + 1}
        seen += mine
    assert len(seen) == n and set(seen) == single  # every sample once, and identical


def test_kinds_restrict_the_scenes():
    from mutoscope.world.sample import KINDS

    kind = KINDS[0]
    for i in range(4):
        spec = json.loads(WorldStream(seed=0, kinds=[kind]).sample(i)["spec"])
        assert spec["extras"]["kind"] == kind


def test_collate_gives_model_layout():
    stream = WorldStream(seed=0, width=32, height=16, length=4)
    batch = next(iter(DataLoader(stream, batch_size=4, collate_fn=collate)))
    video = batch["video"]
    assert video.dtype == torch.float32 and tuple(video.shape) == (4, 3, 16, 16, 32)
    assert video.min() >= -1 and video.max() <= 1
    assert len(batch["caption"]) == 4 and batch["index"] == [0, 1, 2, 3]
    raw = torch.stack([stream.sample(i)["video"] for i in range(4)])
    assert torch.equal(from_model(video), raw)  # uint8 -> [-1, 1] -> uint8 is exact
    assert to_model(raw)[0, :, 0, 0, 0].tolist() == pytest.approx(
        (raw[0, 0, 0, 0].float() / 127.5 - 1).tolist()
    )


def test_bad_arguments():
    with pytest.raises(ValueError):
        WorldStream(rank=2, world_size=2)
    with pytest.raises(ValueError):
        WorldStream(width=0)


def test_train_split_never_shows_what_the_dev_suite_holds_out():
    train, everything = WorldStream(seed=3, split="train"), WorldStream(seed=3, split="all")
    novel_seen = 0
    for i in range(150):
        item = train.sample(i)
        spec = SceneSpec.from_json(item["spec"])
        assert in_training(spec, item["caption"]), item["caption"]
        other = everything.sample(i)
        novel_seen += not in_training(SceneSpec.from_json(other["spec"]), other["caption"])
    assert novel_seen > 10  # the unfiltered stream does draw held-out pairs and words
