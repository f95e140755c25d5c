"""One decoder per media type: request bytes in, one validated :class:`core.batch.Batch` out.

Codecs know wire formats (JSON text, multipart framing, the Open Inference
Protocol's tensors); ``core`` is the only authority on shape, range, size and
values. Routes pick a codec by ``Content-Type`` and never look at numbers.

Every route that reads a body follows one content-negotiation rule: the
``Content-Type`` is checked against the media types the route reads before
the body is read (415 otherwise, naming them); JSON must be UTF-8 (a
``charset`` other than utf-8 is 415, a byte-order mark or UTF-16 text is
malformed JSON, 400); ``Content-Encoding`` other than identity is refused by
the guard for every route alike (415, ``Accept-Encoding: identity``).

Decoding is charged to the request's memory budget (:mod:`app.admission`)
before it starts, from the body's size and media type, and runs in the
thread pool when the body is over :data:`INLINE_BYTES` (images: over
:data:`INLINE_IMAGE_PIXELS`), so that parsing megabytes never holds up the
event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request

from app import admission
from app.codecs import images, jsonbody
from app.exceptions import UnsupportedMediaTypeError
from core.batch import Batch
from core.images import ImageLimits

T = TypeVar("T")

# Bodies up to this size are parsed on the event loop; larger ones in the
# work threads, where the loop goes on serving other connections meanwhile.
# simdjson reads a 1 MiB body of numbers in about 1.2 ms (the orjson fallback
# for a body it declines, in 2-5 ms), while the hop to a thread and the GIL
# it then shares cost a 100-image (600 KB) JSON request a fifth of its
# throughput: 273 req/s through a thread, 350 inline (wrk, 4 connections).
INLINE_BYTES = 1024 * 1024

# Images hold up the loop longer per byte: a 28x28 MNIST digit normalises in
# ~90 us, but a dark-on-light 28x28 one takes ~2 ms (paper, ink and stroke
# estimates). Requests whose images hold up to this many pixels in all (one
# small digit) are decoded inline, saving two thread hops; bodies up to
# INLINE_IMAGE_BYTES are split into their files inline.
INLINE_IMAGE_PIXELS = 1024
INLINE_IMAGE_BYTES = 64 * 1024

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
    max_request_pixels: int = 32_000_000


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lower case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def negotiate(request: Request, accepted: tuple[str, ...]) -> str:
    """The request's media type, if the route reads it (``image/*`` matches images).

    ``""`` in ``accepted`` admits a request without a ``Content-Type`` (the
    Open Inference Protocol's clients send none).

    Raises
    ------
    UnsupportedMediaTypeError
        Any other ``Content-Type`` (or none), or JSON in a charset other than UTF-8.
    """
    media = media_type(request)
    if media == "application/json":
        charset = _charset(request.headers.get("content-type", ""))
        if charset not in ("", "utf-8", "utf8"):
            raise UnsupportedMediaTypeError(
                f"JSON must be UTF-8, got charset {charset[:32]!r}"
            )
    if media in accepted or ("image/*" in accepted and media.startswith("image/")):
        return media
    names = ", ".join(a for a in accepted if a)
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type {media[:64] or '(none)'!r}; use one of: {names}"
    )


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


async def run_sized(size: int, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` inline for a body of ``size`` bytes up to INLINE_BYTES, else in a thread."""
    if size <= INLINE_BYTES:
        return fn(*args)
    return await admission.run_heavy(fn, *args)


async def charge_general(request: Request, text: bytes) -> None:
    """Charge what orjson may need for ``text`` beyond what its JSON charge held.

    A body the fast reader declines goes to the general reader, whose Python
    objects cost far more for some texts (8 MiB of ``[0],[0],...`` took a
    worker 273 MiB) than for numbers: the difference is charged first.
    """
    cost = await run_sized(len(text), jsonbody.general_cost, text)
    extra = cost - len(text) * admission.JSON_BYTES_PER_BODY_BYTE
    if extra > 0:
        await admission.charge(request.scope, extra, "reading the JSON text")


async def charge_json(request: Request, body: bytes, what: str) -> None:
    """Charge a JSON body that orjson will read: its JSON charge and the rest."""
    await admission.charge(
        request.scope, len(body) * admission.JSON_BYTES_PER_BODY_BYTE, what
    )
    await charge_general(request, body)


async def read_json(request: Request, what: str) -> bytes:
    """The body of a JSON route, charged for parsing (415 for another media type)."""
    negotiate(request, ("application/json",))
    body = await request.body()
    await charge_json(request, body, what)
    return body


async def read_batch(request: Request, limits: Limits, preprocess: str) -> Batch:
    """Decode the body of /predict or /explain, whatever its media type.

    Raises
    ------
    UnsupportedMediaTypeError
        A ``Content-Type`` that no codec reads.
    """
    media = negotiate(request, (*SUPPORTED, "image/*"))
    body = await request.body()
    what = "decoding the body"
    if media == "application/json":
        await admission.charge(
            request.scope, len(body) * admission.JSON_BYTES_PER_BODY_BYTE, what
        )
        batch = await run_sized(len(body), jsonbody.fast_predict, body, limits.max_rows)
        if batch is None:
            await charge_general(request, body)
            batch = await run_sized(
                len(body), jsonbody.general_predict, body, limits.max_rows
            )
        return batch
    if media == "application/octet-stream":
        await admission.charge(
            request.scope, len(body) * admission.OCTET_BYTES_PER_BODY_BYTE, what
        )
        return await run_sized(len(body), _from_bytes, body, limits.max_rows)
    content_type = request.headers.get("content-type", "")
    # Splitting, decoding and normalising images is CPU work: off the event
    # loop but for one small image. The headers say what decoding will cost
    # before any is decoded.
    if len(body) <= INLINE_IMAGE_BYTES:
        parts, work = _split_uploads(media, content_type, body, limits)
    else:
        parts, work = await admission.run_heavy(
            _split_uploads, media, content_type, body, limits
        )
    await admission.charge(request.scope, work.cost, "decoding the images")
    args = (parts, preprocess, limits.image, limits.max_rows)
    if work.pixels <= INLINE_IMAGE_PIXELS:
        return images.decode_images(*args)
    return await admission.run_heavy(images.decode_images, *args)


def _from_bytes(body: bytes, max_rows: int) -> Batch:
    return Batch.from_bytes(body, max_rows=max_rows)


def _split_uploads(
    media: str, content_type: str, body: bytes, limits: Limits
) -> tuple[list[images.Upload], images.DecodeWork]:
    if media == "multipart/form-data":
        parts = images.split_multipart(
            body,
            content_type,
            max_parts=limits.max_parts,
            max_part_bytes=limits.max_part_bytes,
        )
    else:
        parts = [images.Upload(None, body)]
    return parts, images.decode_work(parts, limits.max_request_pixels)
