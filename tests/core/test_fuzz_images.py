"""A hypothesis-driven mutation fuzz of the image upload path.

Valid PNG, JPEG, GIF, BMP and WebP files are mutated (bytes flipped, inserted,
deleted, truncated, chunks spliced, PNG chunks rewritten with a correct CRC so
the decoder gets past its checksum) and handed to ``core.images.image_to_input``,
exactly as ``POST /predict`` does. Every outcome must be a network input of the
documented shape and range or one of the documented errors (400, 413, 415,
422); anything else would be a 500. A watchdog bounds the whole run, including
a hang inside a C decoder, where no Python-level timeout can fire.
"""

from __future__ import annotations

import faulthandler
import io
import os
import struct
import sys
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core import images
from core.errors import (
    BatchImageError,
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
    UnsupportedImageError,
)

# The errors image_to_input documents; EmptyImageError and LimitExceededError
# are InputErrors, listed for clarity.
DOCUMENTED = (
    ImageDecodeError,
    UnsupportedImageError,
    LimitExceededError,
    EmptyImageError,
    InputError,
)
LIMITS = images.ImageLimits(max_pixels=250_000, max_bytes=256 * 1024)
# CI runs a short fuzz; MNIST_SERVE_FUZZ_EXAMPLES=20000 runs a long one.
EXAMPLES = int(os.environ.get("MNIST_SERVE_FUZZ_EXAMPLES", "400"))
# Per example: far above the milliseconds a small image takes, a hang guard only.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WATCHDOG_SECONDS = max(240, EXAMPLES // 10)


def _seed(fmt: str, size: tuple[int, int], mode: str, **kwargs: object) -> bytes:
    image = Image.new(mode, size, 0 if mode != "RGBA" else (0, 0, 0, 0))
    w, h = size
    box = (w * 10 // 28, h * 5 // 28, w * 16 // 28, h * 23 // 28)
    ink = {"L": 255, "RGB": (255, 255, 255), "RGBA": (20, 20, 20, 255), "P": 1}
    image.paste(ink[mode], box)
    if mode == "P":
        image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


SEEDS = {
    "png-28-gray": _seed("PNG", (28, 28), "L"),
    "png-40x30-rgba": _seed("PNG", (40, 30), "RGBA"),
    "png-interlaced": _seed("PNG", (32, 32), "L", interlace=1),
    "jpeg-rgb": _seed("JPEG", (48, 48), "RGB", quality=80),
    "jpeg-progressive": _seed("JPEG", (28, 28), "L", progressive=True),
    "gif-palette": _seed("GIF", (28, 28), "P"),
    "bmp-gray": _seed("BMP", (28, 28), "L"),
    "webp-rgb": _seed("WEBP", (32, 32), "RGB"),
}


@pytest.fixture(autouse=True, scope="module")
def watchdog() -> Iterator[None]:
    # Dumps every thread's stack and ends the process if the fuzz hangs.
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def check(data: bytes, mode: str) -> None:
    try:
        x = images.image_to_input(data, mode, LIMITS)
    except DOCUMENTED as exc:
        message = exc.message
    else:
        assert x.shape == (784,)
        assert x.dtype == np.float32
        assert np.isfinite(x).all()
        assert ((x >= 0) & (x <= 1)).all()
        return
    assert message  # a reason for the client, and a short one
    assert len(message) < 1000


def test_every_seed_decodes() -> None:
    for name, data in SEEDS.items():
        x = images.image_to_input(data, "auto", LIMITS)
        assert x.shape == (784,), name
        assert x.max() > 0.5, name


# --------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return out


@st.composite
def png_with_valid_crcs(draw: st.DrawFn) -> bytes:
    """A PNG whose IHDR or IDAT is rewritten, with checksums that still match."""
    seed = draw(st.sampled_from(["png-28-gray", "png-40x30-rgba", "png-interlaced"]))
    chunks = _png_chunks(SEEDS[seed])
    target = draw(st.sampled_from(["IHDR-size", "IHDR-fields", "IDAT", "extra"]))
    if target.startswith("IHDR"):
        body = bytearray(chunks[0][1])
        if target == "IHDR-size":
            w = draw(st.sampled_from([0, 1, 27, 28, 29, 4096, 2**16, 2**31 - 1]))
            h = draw(st.sampled_from([0, 1, 28, 500, 2**16, 2**31 - 1]))
            body[0:8] = struct.pack(">II", w, h)
        else:  # bit depth, colour type, compression, filter, interlace
            at = draw(st.integers(8, 12))
            body[at] = draw(st.integers(0, 255))
        chunks[0] = (b"IHDR", bytes(body))
    elif target == "IDAT":
        index = next(i for i, (k, _) in enumerate(chunks) if k == b"IDAT")
        raw = bytearray(zlib.decompress(chunks[index][1]))
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        # Sometimes a "zip bomb": far more data than the header promises.
        tail = b"\x00" * draw(st.sampled_from([0, 0, 1 << 20]))
        chunks[index] = (b"IDAT", zlib.compress(bytes(raw) + tail, 9))
    else:
        kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iCCP", b"eXIf", b"PLTE"]))
        chunks.insert(1, (kind, draw(st.binary(max_size=256))))
    return _png(chunks)


modes = st.sampled_from(images.PREPROCESS_MODES)


@FUZZ
@given(mutated(), modes)
def test_mutated_images_give_an_input_or_a_documented_error(
    data: bytes, mode: str
) -> None:
    check(data, mode)


@FUZZ
@given(png_with_valid_crcs(), modes)
def test_rewritten_png_chunks_give_an_input_or_a_documented_error(
    data: bytes, mode: str
) -> None:
    check(data, mode)


@settings(max_examples=100, deadline=5000, database=None)
@given(st.binary(max_size=2048), modes)
def test_random_bytes_give_a_documented_error(data: bytes, mode: str) -> None:
    check(data, mode)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", ImageDecodeError),
        (SEEDS["png-28-gray"][:40], ImageDecodeError),
        (b"\x00" * (LIMITS.max_bytes + 1), LimitExceededError),
        (
            _png(
                [
                    (b"IHDR", struct.pack(">IIBBBBB", 10**5, 10**5, 8, 0, 0, 0, 0)),
                    (b"IDAT", zlib.compress(b"\x00" * 64)),
                    (b"IEND", b""),
                ]
            ),
            LimitExceededError,
        ),
        (b"II*\x00" + b"\x00" * 64, UnsupportedImageError),
        (_seed("PNG", (28, 28), "L")[:8] + b"\x00" * 100, ImageDecodeError),
    ],
    ids=[
        "empty",
        "truncated",
        "too-many-bytes",
        "header-bomb",
        "tiff",
        "junk-after-magic",
    ],
)
def test_known_bad_inputs(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        images.image_to_input(data, "auto", LIMITS)


# --------------------------------------------------------------------------
# Pixels rather than bytes: the ink search on arbitrary images
# --------------------------------------------------------------------------


@st.composite
def gray_images(draw: st.DrawFn) -> np.ndarray:
    """Paper, light, noise and blobs of ink in any proportion, any size."""
    height = draw(st.integers(1, 90))
    width = draw(st.integers(1, 90))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = np.linspace(-1, 1, height)[:, None]
    cols = np.linspace(-1, 1, width)[None, :]
    gray = draw(st.floats(0, 1)) + draw(st.floats(-0.5, 0.5)) * (
        draw(st.floats(-1, 1)) * cols + draw(st.floats(-1, 1)) * rows
    )
    gray = gray - draw(st.floats(0, 0.5)) * (rows**2 + cols**2) / 2
    for _ in range(draw(st.integers(0, 6))):  # strokes or blobs of either sign
        top, left = rng.integers(0, height), rng.integers(0, width)
        bottom = top + rng.integers(1, height + 1)
        right = left + rng.integers(1, width + 1)
        gray[top:bottom, left:right] += draw(st.floats(-1, 1))
    gray = gray + rng.normal(
        0, draw(st.sampled_from([0.0, 0.01, 0.1, 0.5])), gray.shape
    )
    return np.clip(np.broadcast_to(gray, (height, width)), 0, 1).astype(np.float32)


@FUZZ
@given(gray_images(), st.sampled_from(["auto", "mnist"]))
def test_any_picture_gives_an_input_or_a_refusal(gray: np.ndarray, mode: str) -> None:
    try:
        x = images.to_mnist(gray, mode)
    except EmptyImageError as exc:
        refusal = exc.message
    else:
        refusal = ""
    if refusal:
        assert "no digit" in refusal
        return
    assert x.shape == (784,)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert ((x >= 0) & (x <= 1)).all()


@settings(max_examples=60, deadline=10000, database=None)
@given(st.lists(mutated(), min_size=1, max_size=5), modes)
def test_a_batch_gives_rows_or_names_its_bad_images(
    blobs: list[bytes], mode: str
) -> None:
    error: BatchImageError | None = None
    try:
        rows = images.images_to_rows(blobs, mode, LIMITS)
    except BatchImageError as exc:
        error = exc
    if error is not None:
        assert error.size == len(blobs)
        indices = [index for index, _ in error.failures]
        assert indices == sorted(set(indices))
        assert all(0 <= index < len(blobs) for index in indices)
        assert all(isinstance(cause, DOCUMENTED) for cause in error.causes)
        return
    assert rows.shape == (len(blobs), 784)
    assert np.isfinite(rows).all()
