"""Files under the data directory: generation outputs and uploaded images.

    data/outputs/<user>/<generation>/<lease>/video.mp4, poster.png, video.json (the sidecar record)
    data/uploads/<user>/<upload>.<ext>

Outputs sit in a folder per lease, so that two attempts at one job (a worker presumed dead that
was not) never write into each other's files; only the attempt whose completion the queue accepts
is referenced, and the loser's folder is removed. The database stores paths relative to these
roots, and `resolve` refuses anything that would leave them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mutoscope.post.mp4 import sidecar_path
from mutoscope.serve.settings import ServeSettings

VIDEO, POSTER = "video.mp4", "poster.png"


class Storage:
    def __init__(self, settings: ServeSettings):
        self.outputs = settings.outputs_dir.resolve()
        self.uploads = settings.uploads_dir.resolve()
        self.scratch = (settings.data_dir / "scratch").resolve()
        for folder in (self.outputs, self.uploads, self.scratch):
            folder.mkdir(parents=True, exist_ok=True)

    def attempt_dir(self, user_id: str, generation_id: str, lease_token: str) -> Path:
        return self.outputs / user_id / generation_id / lease_token[:16]

    def store_outputs(
        self,
        user_id: str,
        generation_id: str,
        lease_token: str,
        video: Path,
        poster: Path,
        record: dict[str, Any],
    ) -> dict[str, Any]:
        """Move an attempt's files into place; returns the `outputs` value the generation keeps."""
        folder = self.attempt_dir(user_id, generation_id, lease_token)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(video, folder / VIDEO)
        shutil.move(poster, folder / POSTER)
        sidecar_path(folder / VIDEO).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        rel = folder.relative_to(self.outputs).as_posix()
        return {
            "video": {
                "path": f"{rel}/{VIDEO}",
                "content_type": "video/mp4",
                "bytes": (folder / VIDEO).stat().st_size,
            },
            "poster": {
                "path": f"{rel}/{POSTER}",
                "content_type": "image/png",
                "bytes": (folder / POSTER).stat().st_size,
            },
            "record": record,
        }

    def discard_attempt(self, user_id: str, generation_id: str, lease_token: str) -> None:
        shutil.rmtree(self.attempt_dir(user_id, generation_id, lease_token), ignore_errors=True)

    def delete_outputs(self, user_id: str, generation_id: str) -> None:
        shutil.rmtree(self.outputs / user_id / generation_id, ignore_errors=True)

    def output_path(self, rel: str) -> Path:
        return _inside(self.outputs, rel)

    def upload_path(self, rel: str) -> Path:
        return _inside(self.uploads, rel)

    def save_upload(self, user_id: str, upload_id: str, ext: str, data: bytes) -> str:
        folder = self.uploads / user_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{upload_id}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path.relative_to(self.uploads).as_posix()

    def scratch_dir(self, name: str) -> Path:
        folder = self.scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{rel!r} leaves {root}")
    return path
