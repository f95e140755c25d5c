"""Decoding uploads: byte and pixel limits, formats, orientation, alpha, gray levels.

:func:`decode_image` turns PNG, JPEG, BMP, GIF (first frame) or WebP bytes into
a grayscale image "as the user sees it", with any alpha channel already
composited onto a suitable background, after checking the byte and pixel
limits from the header (before any pixel is decoded).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from core.errors import (
    CoreError,
    ImageDecodeError,
    LimitExceededError,
    UnsupportedImageError,
)
from core.images.arrays import FloatArray, block_mean

# Pillow plugin ids we decode. (Phone JPEGs with a multi-picture extension
# open through the JPEG plugin and report the format "MPO".)
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_ACCEPTED_NAMES = "PNG, JPEG, BMP, GIF or WebP"

# Images above this many pixels are box-averaged down by an integer factor
# before any float work: the digit ends up 20 pixels tall, so a couple of
# megapixels keep far more detail than needed while bounding memory and time.
WORK_PIXELS = 2_000_000

# Leading bytes of the accepted formats (RIFF also holds WAV, AVI: harmless,
# Pillow refuses them and they become a 400).
_ACCEPTED_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")
# Magic numbers of image formats that we recognise but do not accept (415),
# as opposed to bytes that are no image at all (400).
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"v/1\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"gimp xcf", "XCF"),
)
# ISO base media files (HEIF, AVIF) name their brand after "ftyp" at offset 4.
_FTYP_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
# EXIF orientation tag values and the transposition that undoes each.
_EXIF_ORIENTATION = 0x0112
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Size limits checked before an image is decoded.

    Attributes
    ----------
    max_pixels : int
        Largest width * height accepted, read from the header before decoding
        (a small file can claim a huge size: a decompression bomb). Pillow's
        ``Image.MAX_IMAGE_PIXELS`` (about 89 M) caps it.
    max_bytes : int
        Largest encoded size accepted.
    """

    max_pixels: int = 16_000_000
    max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_bytes < 1:
            raise ValueError(
                f"image limits must be positive, got max_pixels={self.max_pixels}, "
                f"max_bytes={self.max_bytes}"
            )


DEFAULT_LIMITS = ImageLimits()


def _sniff_unsupported(data: bytes) -> str | None:
    """Name of a recognised but refused format, from the first bytes."""
    if data.startswith(_ACCEPTED_MAGIC):
        return None
    for magic, name in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[data[8:12]]
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    # Netpbm: "P1" to "P7" followed by whitespace.
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"1234567":
        if data[2:3] in (b" ", b"\t", b"\r", b"\n"):
            return "Netpbm"
    return None


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    """Open (parse the header of) an accepted image and check its pixel count."""
    try:
        image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(f"image is too large to decode: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"cannot decode the image: not a valid {_ACCEPTED_NAMES} file"
        ) from exc
    width, height = image.size
    # Never beyond Pillow's own bomb threshold either: then this check alone
    # refuses every size Pillow would merely warn about, even if a thread race
    # on the warning filters (see decode_image) let the warning through.
    limit = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    if width * height > limit:
        image.close()
        raise LimitExceededError(
            f"image is {width}x{height} = {width * height} pixels, over the "
            f"{limit}-pixel limit"
        )
    if width < 1 or height < 1:
        image.close()
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    return image


def _load(image: Image.Image) -> Image.Image:
    """Decode the first frame, upright, at most about ``WORK_PIXELS`` large."""
    width, height = image.size
    if image.format in ("JPEG", "MPO") and width * height > WORK_PIXELS:
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale for almost nothing: ask
        # for the smallest scale that still has WORK_PIXELS.
        ratio = math.sqrt(WORK_PIXELS / (width * height))
        wanted = (max(1, int(width * ratio)), max(1, int(height * ratio)))
        image.draft("L" if image.mode in ("L", "RGB") else None, wanted)
    image.load()
    orientation = 1
    if "exif" in image.info:  # skip the EXIF parser when there is none
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # a corrupt EXIF block must not lose the picture
            orientation = 1
    if orientation in _ORIENTATION_FIX:
        image = image.transpose(_ORIENTATION_FIX[orientation])
    return image


def _canonical(image: Image.Image) -> Image.Image:
    """Convert to L, LA, RGB, RGBA, I or I;16, keeping transparency as alpha."""
    mode = image.mode
    transparent = "transparency" in image.info
    if mode.startswith("I;16") or mode == "I":
        return image
    if mode in ("1", "L"):
        return image.convert("LA" if transparent else "L")
    if mode in ("LA", "RGB", "RGBA"):
        return image.convert("RGBA") if transparent and mode == "RGB" else image
    if mode in ("La", "PA"):
        return image.convert("LA" if mode == "La" else "RGBA")
    if mode == "P":
        return image.convert("RGBA" if transparent else "RGB")
    if mode == "RGBa":
        return image.convert("RGBA")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, F


def _luma(channels: NDArray[np.uint8]) -> FloatArray:
    """Rec. 601 luma of ``(h, w, 3+)`` uint8 RGB, in [0, 1], float32."""
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        # Gray stored as RGB: keep the exact v / 255 of a grayscale file.
        out = red.astype(np.float32)
        out /= 255.0
        return out
    # Integer weights (per mille) keep the sum exact; the single division is
    # then correctly rounded, so gray pixels agree with the branch above.
    total = red.astype(np.int32) * 299 + green.astype(np.int32) * 587
    total += blue.astype(np.int32) * 114
    out = total.astype(np.float32)
    out /= np.float32(255_000.0)
    return out


def _pixels(image: Image.Image) -> tuple[FloatArray, FloatArray | None]:
    """Gray levels and alpha of an image, both in [0, 1], float32.

    Returns
    -------
    gray : ndarray of shape (h, w), float32
        Luminance *premultiplied* by alpha (so a transparent pixel reads 0
        whatever colour it stores).
    alpha : ndarray of shape (h, w), float32, or None
        None when the image is fully opaque.
    """
    image = _canonical(image)
    width, height = image.size
    factor = math.ceil(math.sqrt(width * height / WORK_PIXELS))
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        raw = np.asarray(image)
        opaque: FloatArray | None = None
        key = image.info.get("transparency")
        if isinstance(key, int):
            opaque = (raw != key).astype(np.float32)
        gray = np.clip(raw, 0, 65535).astype(np.float32)
        gray /= 65535.0
        if opaque is not None:
            gray *= opaque
            opaque = block_mean(opaque, factor, edge=True)
        return block_mean(gray, factor, edge=True), opaque
    if factor > 1:
        # Average premultiplied colours so transparent pixels do not bleed
        # their (meaningless) stored colour into the edges of the strokes.
        premultiplied = {"LA": "La", "RGBA": "RGBa"}.get(mode, mode)
        image = image.convert(premultiplied).reduce(factor)
    array = np.asarray(image)
    if array.ndim == 2:
        gray = array.astype(np.float32)
        gray /= 255.0
        return gray, None
    channels = array.shape[2]
    gray = _luma(array) if channels >= 3 else array[..., 0].astype(np.float32) / 255.0
    if channels in (2, 4):
        alpha_u8 = array[..., channels - 1]
        if alpha_u8.min() == 255:
            return gray, None
        alpha = alpha_u8.astype(np.float32) / 255.0
        if factor <= 1:  # the reduced image is already premultiplied
            gray *= alpha
        return gray, alpha
    return gray, None


def _composite(gray: FloatArray, alpha: FloatArray) -> FloatArray:
    """Flatten premultiplied gray + alpha onto the background the drawing implies.

    A canvas export stores strokes as opaque pixels over a transparent
    background whose colour channels are usually black: dropping alpha would
    turn the picture into black ink on black. The mean alpha tells which case
    this is. Sparse opaque content (a drawing) is the ink, so it goes on the
    contrasting background: white under dark strokes, black under light ones.
    Mostly opaque content (a picture with transparent margins or holes) is
    paper, so the holes are filled with the picture's own median level.
    """
    weight = float(alpha.sum(dtype=np.float64))
    if weight <= 0.0:
        return np.ones_like(gray)  # nothing visible: blank paper
    if float(alpha.mean(dtype=np.float64)) < 0.5:
        mean_level = float(gray.sum(dtype=np.float64)) / weight
        background = 1.0 if mean_level < 0.5 else 0.0
    else:
        solid = alpha >= 0.5
        background = float(np.median(gray[solid] / alpha[solid]))
    out = gray + (1.0 - alpha) * np.float32(background)
    return np.clip(out, 0.0, 1.0, out=out)


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> FloatArray:
    """Decode an image file into grayscale "ink on paper as the user sees it".

    Parameters
    ----------
    data : bytes
        A PNG, JPEG, BMP, GIF (the first frame is used) or WebP file.
    limits : ImageLimits
        Byte and pixel limits, checked before any pixel is decoded.

    Returns
    -------
    ndarray of shape (height, width), float32
        Gray levels in [0, 1] (0 black, 1 white): 8-bit files give exactly
        ``v / 255``, 16-bit files ``v / 65535``. Colour is reduced to Rec. 601
        luma, the EXIF orientation is applied, and transparency is composited
        onto the background the picture implies (see :func:`_composite`).
        Images over 2 megapixels come back box-averaged down by an integer
        factor.

    Raises
    ------
    ImageDecodeError
        Empty, truncated or corrupt data, or bytes that are no known image.
    UnsupportedImageError
        A recognised image format that is not accepted (TIFF, ICO, PDF, SVG,
        HEIC, ...).
    LimitExceededError
        More bytes than ``limits.max_bytes``, or a header claiming more
        pixels than ``limits.max_pixels`` (or than Pillow's own
        decompression-bomb threshold).
    """
    size = len(data)
    if size == 0:
        raise ImageDecodeError("the image is empty (0 bytes)")
    if size > limits.max_bytes:
        raise LimitExceededError(
            f"image is {size} bytes, over the {limits.max_bytes}-byte limit"
        )
    refused = _sniff_unsupported(bytes(data[:512]))
    if refused is not None:
        raise UnsupportedImageError(
            f"{refused} images are not accepted; send {_ACCEPTED_NAMES}"
        )
    # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; make the
    # warning an error here, without touching Image.MAX_IMAGE_PIXELS for the
    # whole process. (The filter list is process-wide, so concurrent threads
    # can race on it; the explicit pixel check in _open does not depend on it.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with _open(bytes(data), limits) as image:
                gray, alpha = _pixels(_load(image))
        except CoreError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise LimitExceededError(f"image is too large to decode: {exc}") from exc
        except MemoryError:
            raise
        except Exception as exc:  # Pillow's decoders raise many types on bad data
            raise ImageDecodeError(
                f"cannot decode the image ({type(exc).__name__}: {exc})"
            ) from exc
    return gray if alpha is None else _composite(gray, alpha)
