"""The world stream: an endless, deterministic, sharded supply of captioned world clips.

Sample `i` is a pure function of `(seed, i)`: its generator, `np.random.default_rng([seed, i])`,
draws the scene spec and then the caption. Shards split the indices round robin: index i belongs
to shard `i % (world_size * num_workers)`, and DataLoader worker `w` on rank `r` is shard
`r * num_workers + w`. So every layout of ranks and workers yields the same set of clips, each once.

Items are dicts: `video` is uint8 (T, H, W, 3) RGB as rendered (a quarter of the bytes that float
would cost between worker processes); `collate` stacks a batch into what the model eats, float
(B, C, T, H, W) in [-1, 1], through `to_model`. `caption` is the text, `claims` the JSON list of
the claims it makes (`claims_to_json`), `spec` the scene spec as JSON, `index` the sample index.

`split="train"` (the default) leaves out what the dev suite holds back (world/holdout.py): a draw
that uses a held-out pair or word is redrawn from the same generator, so sample i stays a pure
function of (seed, i). `split="all"` keeps every draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mutoscope.world.caption import Caption, caption
from mutoscope.world.claims import claims_to_json
from mutoscope.world.holdout import in_training
from mutoscope.world.render import render
from mutoscope.world.sample import sample_spec
from mutoscope.world.spec import SceneSpec


class WorldStream(IterableDataset):
    """Captioned clips, `width` x `height` at `fps`, `seconds` long; endless unless `length`."""

    def __init__(
        self,
        seed: int = 0,
        width: int = 64,
        height: int = 64,
        fps: float = 8.0,
        seconds: float = 2.0,
        kinds: Sequence[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        as_tensor: bool = True,
        length: int | None = None,
        split: str = "train",
    ):
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if width < 1 or height < 1 or fps <= 0 or seconds <= 0:
            raise ValueError("width, height, fps and seconds must be positive")
        self.seed, self.width, self.height = seed, width, height
        self.fps, self.seconds = fps, seconds
        self.kinds = tuple(kinds) if kinds else None
        self.rank, self.world_size = rank, world_size
        if split not in ("train", "all"):
            raise ValueError(f"split must be 'train' or 'all', got {split!r}")
        self.as_tensor, self.length, self.split = as_tensor, length, split

    def scene(self, i: int) -> tuple[SceneSpec, Caption]:
        """The scene spec and caption of sample `i`, without rendering it."""
        rng = np.random.default_rng([self.seed, i])
        while True:
            kind = None if self.kinds is None else self.kinds[int(rng.integers(len(self.kinds)))]
            spec = sample_spec(rng, kind=kind, seconds=self.seconds)
            text = caption(spec, rng)
            if self.split == "all" or in_training(spec, text.text):
                return spec, text

    def sample(self, i: int) -> dict:
        """Sample number `i`: the same clip, caption and claims on any machine, in any shard."""
        spec, text = self.scene(i)
        frames = render(spec, self.width, self.height, self.fps)  # (T, H, W, 3) uint8
        video = torch.from_numpy(frames) if self.as_tensor else frames
        return {
            "video": video,
            "caption": text.text,
            "claims": claims_to_json(list(text.claims)),
            "spec": spec.to_json(),
            "index": i,
        }

    def shard(self) -> tuple[int, int]:
        """(this shard's number, the number of shards) for the calling DataLoader worker."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[dict]:
        i, step = self.shard()
        while self.length is None or i < self.length:
            yield self.sample(i)
            i += step


def to_model(video: torch.Tensor) -> torch.Tensor:
    """uint8 (..., T, H, W, 3) -> float (..., C, T, H, W) in [-1, 1]: the engine's video layout."""
    return video.movedim(-1, -4).float().div_(127.5).sub_(1.0)


def from_model(x: torch.Tensor) -> torch.Tensor:
    """float (..., C, T, H, W) in [-1, 1] -> uint8 (..., T, H, W, 3): inverse of `to_model`."""
    return x.movedim(-4, -1).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def collate(batch: list[dict]) -> dict:
    """DataLoader collate_fn: `video` float (B, C, T, H, W) in [-1, 1], the rest as lists."""
    video = torch.stack([torch.as_tensor(item["video"]) for item in batch])
    out = {key: [item[key] for item in batch] for key in batch[0] if key != "video"}
    return {"video": to_model(video), **out}
