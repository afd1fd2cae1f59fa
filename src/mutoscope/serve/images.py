"""Checking uploaded images: the type from the bytes, not the name or the client's Content-Type.

Order matters against decompression bombs: the magic bytes first, then the size the header
declares (Pillow reads only the header on open), and only then a full decode, which proves the
file is an image and not something wearing an image's first bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from mutoscope.serve.problems import ApiError

# (magic bytes at offset 0, optional (offset, bytes) second check, content type, extension)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", None, "image/png", "png"),
    (b"\xff\xd8\xff", None, "image/jpeg", "jpg"),
    (b"RIFF", (8, b"WEBP"), "image/webp", "webp"),
)


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    ext: str
    width: int
    height: int


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the leading bytes; None for anything else."""
    for magic, second, content_type, ext in _SIGNATURES:
        if data.startswith(magic) and (
            second is None or data[second[0] : second[0] + len(second[1])] == second[1]
        ):
            return content_type, ext
    return None


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    if len(data) > max_bytes:
        raise ApiError(413, "upload.too_large", f"the file is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise ApiError(422, "upload.empty", "the file is empty")
    kind = sniff(data)
    if kind is None:
        raise ApiError(415, "upload.type.unsupported", "only PNG, JPEG and WebP images are accepted")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ApiError(
                    422,
                    "upload.image.too_many_pixels",
                    f"the image is {width}x{height}; the limit is {max_pixels} pixels",
                    max_pixels=max_pixels,
                )
            img.load()  # a full decode: truncated or forged files fail here
    except ApiError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError(422, "upload.image.invalid", f"the file is not a readable image: {e}") from e
    return CheckedImage(kind[0], kind[1], width, height)
