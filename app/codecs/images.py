"""Image bodies and ``multipart/form-data`` uploads.

The multipart framing is parsed with python-multipart's streaming parser, fed
the body the guard has already read under its size limit: every limit (parts,
bytes per part) is checked as the parts arrive, and each failure is told
apart by what happened, not by the wording of a library's message.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from PIL import Image
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app import admission
from app.errors import clip
from app.exceptions import InvalidRequestError, MalformedBodyError
from core.batch import Batch
from core.errors import BatchImageError, LimitExceededError
from core.images import ImageLimits, images_to_rows
from core.images.decode import WORK_PIXELS
from core.network import INPUT_SIZE

FIELD = "file"
# Each unusable file's reason, clipped: a batch of up to max_upload_parts files
# names every one of them, and the answer stays small.
MAX_PART_MESSAGE = 160
# JPEG is decoded at 1/2, 1/4 or 1/8 scale down to about WORK_PIXELS (core.images
# asks libjpeg for the smallest draft that still has them): under 4 times as many.
JPEG_DRAFT_PIXELS = 4 * WORK_PIXELS


@dataclass(slots=True)
class Upload:
    """One image file: its name as the client gave it (if any) and its bytes."""

    filename: str | None
    data: bytes


@dataclass(slots=True)
class _Part:
    name: str | None = None
    filename: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


def split_multipart(
    body: bytes, content_type: str, *, max_parts: int, max_part_bytes: int
) -> list[Upload]:
    """The files of a multipart body, in upload order.

    Raises
    ------
    MalformedBodyError
        No boundary, broken framing, a part without a name, a body that ends
        before its closing boundary.
    LimitExceededError
        More than ``max_parts`` parts, or a part over ``max_part_bytes``.
    InvalidRequestError
        Parts not named ``file``, text fields where files belong, no files.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedBodyError(
            "multipart body without a boundary in its Content-Type"
        )
    parts: list[_Part] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise LimitExceededError(
                f"more than {max_parts} parts in one upload (the limit)"
            )
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        name, value = header[0].strip().lower(), header[1]
        header[0] = header[1] = b""
        if name == b"content-disposition":
            _, params = parse_options_header(value)
            part = parts[-1]
            raw_name = params.get(b"name")
            part.name = raw_name.decode("utf-8", "replace") if raw_name else None
            raw_file = params.get(b"filename")
            part.filename = (
                raw_file.decode("utf-8", "replace") if raw_file is not None else None
            )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.size += end - start
        if part.size > max_part_bytes:
            raise LimitExceededError(
                f"part {len(parts) - 1} is over the limit of {max_part_bytes} "
                "bytes per part"
            )
        part.chunks.append(data[start:end])

    ended = [False]

    def on_end() -> None:
        ended[0] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_end": on_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedBodyError(f"malformed multipart body: {exc}") from None
    if not ended[0]:
        raise MalformedBodyError(
            "malformed multipart body: it ends before its closing boundary"
        )
    return _files(parts)


def _files(parts: list[_Part]) -> list[Upload]:
    if any(part.name is None for part in parts):
        raise MalformedBodyError("malformed multipart body: a part has no name")
    # Part names come from the client: a few, clipped, are named back.
    others = sorted({clip(p.name or "") for p in parts if p.name != FIELD})[:10]
    if others:
        raise InvalidRequestError(
            f"unexpected part(s) {', '.join(others)}: send images in parts named "
            f"{FIELD}",
            errors=[{"loc": ["body", n], "msg": "unknown part"} for n in others],
        )
    if not parts:
        raise InvalidRequestError(
            f"no part named {FIELD}: send images as {FIELD}=@digit.png",
            errors=[{"loc": ["body", FIELD], "msg": "field required"}],
        )
    if any(part.filename is None for part in parts):
        raise InvalidRequestError(
            f"the {FIELD} parts must be files, not text fields",
            errors=[{"loc": ["body", FIELD], "msg": "must be a file"}],
        )
    return [Upload(p.filename, b"".join(p.chunks)) for p in parts]


def header_pixels(data: bytes) -> tuple[int, str, str]:
    """Pixels an image will decode to, its format and mode, from its header alone.

    (0, "", "") for anything Pillow cannot open: decoding says why.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return width * height, image.format or "", image.mode
    except Exception:
        return 0, "", ""


def _image_cost(pixels: int, fmt: str, mode: str) -> int:
    # Two peaks, one after the other: decoding at full size (JPEG: its
    # draft), then the pipeline's float arrays at the working size, which is
    # at most WORK_PIXELS (larger images are reduced first).
    decoded = min(pixels, JPEG_DRAFT_PIXELS) if fmt in ("JPEG", "MPO") else pixels
    wide = mode.startswith("I") or mode == "F"
    per_pixel = (
        admission.IMAGE_BYTES_PER_PIXEL_WIDE
        if wide
        else admission.IMAGE_BYTES_PER_PIXEL
    )
    work = min(pixels, WORK_PIXELS) * admission.IMAGE_WORK_BYTES_PER_PIXEL
    return max(decoded * per_pixel, work + min(work, admission.IMAGE_WORK_BYTES))


@dataclass(frozen=True, slots=True)
class DecodeWork:
    """What decoding a request's images will take, from their headers alone."""

    cost: int
    """Bytes at the peak: the largest image's work plus the network input rows."""
    pixels: int
    """Pixels in all the images (0 for those Pillow cannot open)."""


def decode_work(uploads: list[Upload], max_request_pixels: int) -> DecodeWork:
    """What decoding ``uploads`` will take, from their headers.

    Images are decoded one after another: the peak is the largest image's
    work plus the network input rows. Checked before anything is decoded:
    one 1.7 MB multipart body of 64 PNGs can claim 64 x 16 megapixels, about
    13 s of CPU to decode.

    Raises
    ------
    LimitExceededError
        More pixels in all than ``max_request_pixels``.
    """
    sizes = [header_pixels(u.data) for u in uploads]
    total = sum(pixels for pixels, _, _ in sizes)
    if total > max_request_pixels:
        raise LimitExceededError(
            f"the images hold {total} pixels in all, over the limit of "
            f"{max_request_pixels} pixels per request"
        )
    largest = max((_image_cost(*size) for size in sizes), default=0)
    return DecodeWork(largest + len(uploads) * INPUT_SIZE * 8, total)


def decode_images(
    uploads: list[Upload], preprocess: str, limits: ImageLimits, max_rows: int
) -> Batch:
    """Decode and normalise every upload; one file answers as a single image.

    A batch with unusable files is refused as a whole, naming each of them
    (index, file name, why), so that a client can drop them and resend.

    Raises
    ------
    CoreError
        The one file's own error, for a single upload.
    InvalidRequestError
        Several files, some unusable.
    LimitExceededError
        More files than the batch limit.
    """
    if len(uploads) > max_rows:
        raise LimitExceededError(
            f"{len(uploads)} images is over the batch limit of {max_rows}"
        )
    try:
        rows = images_to_rows([u.data for u in uploads], preprocess, limits)
    except BatchImageError as exc:
        if len(uploads) == 1:
            raise exc.causes[0] from None  # one file: its own error and status
        # Which files: the transport knows their names, core their faults.
        raise InvalidRequestError(
            f"{len(exc.failures)} of {len(uploads)} files cannot be used; each is "
            "listed in errors (drop them and send the rest again)",
            errors=[
                {
                    "loc": [FIELD, index],
                    "filename": clip(uploads[index].filename or ""),
                    "msg": clip(message, MAX_PART_MESSAGE),
                }
                for index, message in exc.failures
            ],
        ) from None
    return Batch.from_images(rows, single=len(uploads) == 1, max_rows=max_rows)
