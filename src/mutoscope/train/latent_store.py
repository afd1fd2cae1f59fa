"""The first epoch's inputs of a DiT run over fixed clips (`--unique-clips`), kept for the later epochs:
each clip's VAE latents, control maps (keyframe latents filled in) and object cover.

In memory, and with a directory on disk too (one file per batch, written atomically), so that a
process that resumes the run (after a preemption, a SIGTERM, a code change) reads them back instead
of encoding every clip again: at the tiny preset's sizes the encode is 3/4 of a first-epoch step.
The ranks of a torchrun share the directory (their clips differ, and so their files' names); each
reads back only the clips it draws (`keeps`): over fixed clips, a rank draws the same ones every epoch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

Row = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # latents, control maps, object cover


class LatentStore:
    def __init__(self, directory: Path | None = None, keeps: Callable[[int], bool] | None = None):
        """`keeps(clip)`: whether this process draws the clip (None: every clip), so that reading the
        directory back holds this rank's share in memory, not every rank's."""
        self.rows: dict[int, Row] = {}
        self.dir, self.keeps = directory, keeps
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            for path in sorted(directory.glob("*.pt")):
                self._add(torch.load(path, weights_only=True))

    def __contains__(self, clip: int) -> bool:
        return clip in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def put(
        self, clips: list[int], x0: torch.Tensor, cond: torch.Tensor | None, objects: torch.Tensor
    ) -> None:
        """Keep the clips not kept yet (and write them, as one file named by the first of them)."""
        new = [b for b, c in enumerate(clips) if c not in self.rows]
        if not new:
            return
        part = {"clips": torch.tensor([clips[b] for b in new]), "x0": x0[new].cpu(),
                "objects": objects[new].cpu()}  # fmt: skip
        if cond is not None:
            part["cond"] = cond[new].cpu()
        if self.dir is not None:
            path = self.dir / f"{clips[new[0]]:010d}.pt"
            tmp = path.with_suffix(".tmp")
            torch.save(part, tmp)
            os.replace(tmp, path)  # a reader never sees half a file
        self._add(part)

    def get(
        self, clips: list[int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The kept (latents, control maps or None, object cover) of `clips`, stacked on `device`."""
        rows = [self.rows[c] for c in clips]
        cond = None if rows[0][1] is None else torch.stack([r[1] for r in rows]).to(device)
        return (
            torch.stack([r[0] for r in rows]).to(device),
            cond,
            torch.stack([r[2] for r in rows]).to(device),
        )

    def _add(self, part: dict[str, torch.Tensor]) -> None:
        clips = part["clips"].tolist()
        kept = [i for i, c in enumerate(clips) if self.keeps is None or self.keeps(c)]
        if len(kept) < len(clips):  # indexing copies: a row must not hold the rest of its file alive
            part = {k: v[kept] for k, v in part.items()}
            clips = [clips[i] for i in kept]
        cond = part.get("cond")
        for i, clip in enumerate(clips):
            self.rows[clip] = (part["x0"][i], None if cond is None else cond[i], part["objects"][i])


def fingerprint(*parts: bytes | str, state: dict[str, torch.Tensor] | None = None) -> str:
    """A short hash of what the kept inputs depend on (the VAE's weights, the configs, the seed): a
    run directory's store is read back only by a run that would have made the same inputs."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    for name, tensor in sorted((state or {}).items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]
