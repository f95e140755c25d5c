"""One decoder per media type: request bytes in, one validated :class:`core.batch.Batch` out.

Codecs know wire formats (JSON text, multipart framing, the Open Inference
Protocol's tensors); ``core`` is the only authority on shape, range, size and
values. Routes pick a codec by ``Content-Type`` and never look at numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.codecs import images, jsonbody
from app.errors import UnsupportedMediaTypeError
from core.batch import Batch
from core.images import ImageLimits

IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
SUPPORTED = (
    "application/json",
    "multipart/form-data",
    *IMAGE_TYPES,
    "application/octet-stream",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The input limits every codec applies, built once from the settings."""

    max_rows: int
    max_parts: int
    max_part_bytes: int
    image: ImageLimits


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lower case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_batch(request: Request, limits: Limits, preprocess: str) -> Batch:
    """Decode the body of /predict or /explain, whatever its media type.

    Raises
    ------
    UnsupportedMediaTypeError
        A ``Content-Type`` that no codec reads.
    """
    media = media_type(request)
    if media == "application/json":
        return jsonbody.decode_predict(await request.body(), limits.max_rows)
    if media == "application/octet-stream":
        return Batch.from_bytes(await request.body(), max_rows=limits.max_rows)
    if media == "multipart/form-data" or media.startswith("image/"):
        body = await request.body()
        if media == "multipart/form-data":
            parts = images.split_multipart(
                body,
                request.headers.get("content-type", ""),
                max_parts=limits.max_parts,
                max_part_bytes=limits.max_part_bytes,
            )
        else:
            parts = [images.Upload(None, body)]
        # Decoding and normalising images is CPU work: off the event loop.
        return await run_in_threadpool(
            images.decode_images, parts, preprocess, limits.image, limits.max_rows
        )
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type {media or '(none)'!r}; use one of: "
        f"{', '.join(SUPPORTED)}"
    )
