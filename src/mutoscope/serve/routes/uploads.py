"""POST /v1/uploads: images for keyframes and motion-brush masks (type sniffed, size capped)."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from mutoscope.serve.deps import Ctx, CurrentUser
from mutoscope.serve.ids import new_id
from mutoscope.serve.images import check_image
from mutoscope.serve.tables import Upload
from mutoscope.serve.views import utc

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


@router.post("", status_code=201)
def create_upload(
    file: Annotated[UploadFile, File(description="a PNG, JPEG or WebP image")], user: CurrentUser, ctx: Ctx
) -> dict:
    """Store an image; refer to it by `id` in a generation's controls. The type comes from the bytes."""
    cap = ctx.settings.upload_max_bytes
    data = file.file.read(cap + 1)  # one byte over the cap is enough to know it is too large
    image = check_image(data, max_bytes=cap, max_pixels=ctx.settings.upload_max_pixels)
    upload_id = new_id("upl")
    path = ctx.storage.save_upload(user.id, upload_id, image.ext, data)
    with ctx.db.write() as s:
        row = Upload(
            id=upload_id,
            user_id=user.id,
            content_type=image.content_type,
            bytes=len(data),
            width=image.width,
            height=image.height,
            sha256=hashlib.sha256(data).hexdigest(),
            path=path,
        )
        s.add(row)
        s.flush()
        return {
            "id": row.id,
            "object": "upload",
            "content_type": row.content_type,
            "bytes": row.bytes,
            "width": row.width,
            "height": row.height,
            "sha256": row.sha256,
            "created_at": utc(row.created_at),
        }
