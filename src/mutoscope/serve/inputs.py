"""The files a job refers to: uploaded images (keyframes, brush masks) and the video it extends.

A generation's params name them by API reference (`upl_...`, `gen_...`); `references(params)` lists
those references, the same way on the server and on a remote worker (it needs no database).
The server checks them when the request arrives (`check`, before any credits move) and finds their
files when a worker asks (`locate`): the in-process worker reads those paths directly, a remote
one downloads them through GET /v1/worker/jobs/{id}/inputs/{ref} into its job folder. Either way
the engine gets {reference: local path}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from mutoscope.serve.problems import ApiError
from mutoscope.serve.schemas import GenerationCreate
from mutoscope.serve.storage import Storage
from mutoscope.serve.tables import Generation, GenerationStatus, Upload

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
VIDEO_TYPE = "video/mp4"
SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", VIDEO_TYPE: ".mp4"}


class InputUnavailable(Exception):
    """A job's input could not be had: gone (its upload or source video was deleted after the
    request), or, `retryable`, not downloaded this time (the worker reports the job retryable)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


def references(params: dict[str, Any]) -> list[str]:
    """The upload ids and the extended generation's id that a job's params name, each once, in order."""
    refs = []
    keyframes = params.get("keyframes") or {}
    refs += [keyframes.get("first"), keyframes.get("last")]
    brush = params.get("motion_brush") or {}
    refs += [region["mask"] for region in brush.get("regions", [])] + [brush.get("static_mask")]
    refs.append((params.get("extend") or {}).get("generation_id"))
    return list(dict.fromkeys(ref for ref in refs if ref))


@dataclass(frozen=True)
class Located:
    path: Path
    content_type: str


def locate(s: Session, storage: Storage, user_id: str, ref: str) -> Located:
    """The file behind one of a job's references, for its owner; InputUnavailable if it is gone."""
    if ref.startswith("upl_"):
        upload = s.get(Upload, ref)
        if upload is not None and upload.user_id == user_id:
            path = storage.upload_path(upload.path)
            if path.is_file():
                return Located(path, upload.content_type)
        raise InputUnavailable("job.input.unavailable", f"upload {ref} is gone")
    source = s.get(Generation, ref)
    if source is not None and source.user_id == user_id and source.deleted_at is None and source.outputs:
        path = storage.output_path(source.outputs["video"]["path"])
        if path.is_file():
            return Located(path, VIDEO_TYPE)
    raise InputUnavailable("job.input.unavailable", f"the video of {ref} to extend is gone")


def check(s: Session, storage: Storage, user_id: str, body: GenerationCreate) -> None:
    """Every image and video a request's controls name must be the caller's, and usable (422)."""
    images: list[tuple[str, str, str]] = []  # (upload id, field, role)
    if body.keyframes:
        images += [
            (body.keyframes.first, "keyframes.first", "frame"),
            (body.keyframes.last, "keyframes.last", "frame"),
        ]
    if body.motion_brush:
        images += [
            (r.mask, f"motion_brush.regions.{i}.mask", "mask")
            for i, r in enumerate(body.motion_brush.regions)
        ]
        images.append((body.motion_brush.static_mask, "motion_brush.static_mask", "mask"))
    for upload_id, field, role in images:
        if upload_id is not None:
            _check_image(s, storage, user_id, upload_id, field, role)
    if body.extend:
        source = s.get(Generation, body.extend.generation_id)
        if source is None or source.user_id != user_id or source.deleted_at is not None:
            raise ApiError(
                422, "generation.extend.not_found", "extend needs one of your generations", field="extend"
            )
        if source.status != GenerationStatus.SUCCEEDED:
            raise ApiError(
                422,
                "generation.extend.not_ready",
                f"generation {source.id} is {source.status}; only a succeeded one can be extended",
                field="extend",
            )


def _check_image(s: Session, storage: Storage, user_id: str, upload_id: str, field: str, role: str) -> None:
    upload = s.get(Upload, upload_id)
    if upload is None or upload.user_id != user_id:
        raise ApiError(422, "generation.upload.not_found", f"no upload {upload_id!r}", field=field)
    if upload.content_type not in IMAGE_TYPES:
        raise ApiError(
            422, "generation.upload.not_image", f"{field}: upload {upload_id} is not an image", field=field
        )
    if role == "mask":
        # A mask selects its bright pixels; an all-black one selects nothing and would fail on the
        # worker after the credits were held. Pillow decodes it (uploads are capped at 16.7 MP).
        try:
            with Image.open(storage.upload_path(upload.path)) as im:
                brightest = im.convert("L").getextrema()[1]
        except OSError:  # its file is gone: as good as no upload
            raise ApiError(
                422, "generation.upload.not_found", f"no upload {upload_id!r}", field=field
            ) from None
        if brightest == 0:
            raise ApiError(
                422,
                "generation.upload.mask_empty",
                f"{field}: the mask {upload_id} is all black (a mask selects its white pixels)",
                field=field,
            )
