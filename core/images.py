"""Image uploads to network inputs: decoding and MNIST-style normalisation.

A network trained on MNIST only works on inputs normalised the way MNIST was
(LeCun et al.): white ink on black, the digit's bounding box fitted into 20x20
keeping its aspect ratio (anti-aliased), and pasted into 28x28 so that its
centre of mass sits at the centre. People send digits as they have them (scans,
phone photos, canvas exports with a transparent background), so:

* :func:`decode_image` turns PNG, JPEG, BMP, GIF (first frame) or WebP bytes
  into a grayscale image "as the user sees it", with any alpha channel already
  composited onto a suitable background, after checking the byte and pixel
  limits from the header (before any pixel is decoded);
* :func:`to_mnist` finds the background (a robust smooth surface, so uneven
  photo lighting cancels out), decides the ink's polarity from the image,
  stretches the contrast above the noise, fits and centres the digit, and
  (beyond MNIST) brings very thin or thick strokes to MNIST's usual width;
* :func:`image_to_input` does both.

Where MNIST differs from naive preprocessing (and why it matters): the
*longest* side of the ink's bounding box becomes 20 pixels (not both sides,
not the whole image), and the digit is then placed by its centre of mass, not
by its bounding box. MNIST's translation was by whole pixels, which puts the
centre of mass at pixel index 14.0 on average (measured on the test set: mean
13.99 rows, 14.01 columns, spread as a +-0.5 rounding), not at the geometric
centre 13.5; this module places it at 14.0 exactly, with a sub-pixel shift.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, UnidentifiedImageError

from core.errors import (
    CoreError,
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
    UnsupportedImageError,
)

FloatArray = NDArray[np.float32]

MNIST_SIDE = 28
FIT_SIDE = 20
# Pixel index (0-based, pixel centres) where MNIST's centre of mass sits.
MNIST_CENTRE = 14.0


class Preprocess(StrEnum):
    """How an uploaded image becomes network input (see :func:`to_mnist`)."""

    AUTO = "auto"
    MNIST = "mnist"
    RAW = "raw"


PREPROCESS_MODES = tuple(mode.value for mode in Preprocess)

# Pillow plugin ids we decode. (Phone JPEGs with a multi-picture extension
# open through the JPEG plugin and report the format "MPO".)
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_ACCEPTED_NAMES = "PNG, JPEG, BMP, GIF or WebP"

# Images above this many pixels are box-averaged down by an integer factor
# before any float work: the digit ends up 20 pixels tall, so a couple of
# megapixels keep far more detail than needed while bounding memory and time.
_WORK_PIXELS = 2_000_000
# The background surface is fitted on a regular subsample of about this size.
_FIT_SAMPLES = 4_096
# Contrast (in [0, 1] gray levels) below which an image counts as uniform:
# about 8 of 255 levels, the weakest pencil-on-paper contrast still legible.
_MIN_CONTRAST = 0.03
# A 28x28 image whose border is darker than this is taken as MNIST-like.
_DARK_BORDER = 0.1
# Ink detection threshold for the bounding box, relative to the ink peak.
_BBOX_FRACTION = 0.15
# The digit is fitted at this many times 28x28 before being averaged down, so
# its stroke width can be measured and adjusted at sub-pixel precision.
_SUPERSAMPLE = 4
# Stroke widths (in 28x28 pixels, measured as 2 * mass / outline, see
# _stroke_width) that are left alone. On the MNIST test set the median width
# is 2.46, 45% of digits are under 2.4 and 20% over 3.0. The network reads
# thin strokes worst, so anything thinner than about the median is thickened
# to it; this band scored best on held-out test digits (thin-pen renderings:
# -1.0 point vs raw with (2.0, 3.0), -0.1 with (2.4, 3.0); no loss elsewhere).
_STROKE_BAND = (2.4, 3.0)
# Fitted digits with a longer side above this are averaged down by an integer
# factor first, so the final anti-aliased resample works on a small array.
_MAX_FIT_SOURCE = 96

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


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


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
    """Decode the first frame, upright, at most about ``_WORK_PIXELS`` large."""
    width, height = image.size
    if image.format in ("JPEG", "MPO") and width * height > _WORK_PIXELS:
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale for almost nothing: ask
        # for the smallest scale that still has _WORK_PIXELS.
        ratio = math.sqrt(_WORK_PIXELS / (width * height))
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


def _block_mean(array: FloatArray, factor: int, edge: bool = False) -> FloatArray:
    """Average ``factor`` x ``factor`` blocks.

    A partial last block is padded with zeros (ink maps: no ink beyond the
    edge) or, with ``edge``, by repeating the edge (images: no dark frame).
    """
    if factor <= 1:
        return array
    height, width = array.shape
    rows, cols = -(-height // factor), -(-width // factor)
    extra = ((0, rows * factor - height), (0, cols * factor - width))
    padded = np.pad(array, extra, mode="edge" if edge else "constant")
    blocks = padded.reshape(rows, factor, cols, factor)
    out: FloatArray = blocks.mean(axis=(1, 3), dtype=np.float32)
    return out


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
    factor = math.ceil(math.sqrt(width * height / _WORK_PIXELS))
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
            opaque = _block_mean(opaque, factor, edge=True)
        return _block_mean(gray, factor, edge=True), opaque
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


# --------------------------------------------------------------------------
# MNIST-style normalisation
# --------------------------------------------------------------------------


def _border(gray: FloatArray, width: int) -> FloatArray:
    """The pixels within ``width`` of the edge, flattened."""
    height, cols = gray.shape
    if 2 * width >= min(height, cols):
        return gray.ravel()
    return np.concatenate(
        [
            gray[:width].ravel(),
            gray[-width:].ravel(),
            gray[width:-width, :width].ravel(),
            gray[width:-width, -width:].ravel(),
        ]
    )


def is_mnist_like(gray: ArrayLike) -> bool:
    """Whether an image is already in MNIST form: 28x28 with a dark background.

    Parameters
    ----------
    gray : array-like of shape (height, width)
        Gray levels in [0, 1].
    """
    image = np.asarray(gray)
    if image.shape != (MNIST_SIDE, MNIST_SIDE):
        return False
    ring = _border(image, 1)
    # The median of the ring is dark: at least half of its pixels are.
    return 2 * int(np.count_nonzero(ring <= _DARK_BORDER)) >= ring.size


def _robust_sigma(values: NDArray[np.floating[Any]]) -> float:
    """Standard deviation of Gaussian noise estimated from the median absolute deviation."""
    if values.size == 0:
        return 0.0
    centre = np.median(values)
    return 1.4826 * float(np.median(np.abs(values - centre)))


def _background(gray: FloatArray) -> tuple[FloatArray, float]:
    """Fit a smooth background surface to the paper, ignoring the ink.

    A quadratic in x and y follows the uneven lighting of a photo (a
    gradient, a vignette); it is fitted by least squares to the pixels close
    to the current estimate, starting from the median of the image border and
    re-fitted a few times, so ink (a minority of outliers) drops out.

    Returns
    -------
    background : ndarray of shape (height, width), float32
    sigma : float
        Noise level of the paper around that surface.
    """
    height, width = gray.shape
    step = max(1, int(math.sqrt(height * width / _FIT_SAMPLES)))
    sample = gray[::step, ::step].astype(np.float64).ravel()
    rows = (np.arange(0, height, step) + 0.5) * (2.0 / height) - 1.0
    cols = (np.arange(0, width, step) + 0.5) * (2.0 / width) - 1.0
    y, x = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    coef = np.zeros(6)
    coef[0] = np.median(_border(gray, max(1, min(height, width) // 32)))
    # A quadratic needs a few rows and columns of samples to be meaningful.
    terms = 6 if min(len(rows), len(cols)) >= 8 else 1
    inliers = np.ones(sample.shape, dtype=bool)
    sigma = 0.0
    for _ in range(4):
        residual = sample - design @ coef
        sigma = _robust_sigma(residual[inliers])
        inliers = np.abs(residual) <= max(3.0 * sigma, 0.02)
        if inliers.sum() < 4 * terms:
            break
        # Normal equations: a 6x6 solve, far cheaper than an SVD-based lstsq.
        basis = design[inliers, :terms]
        try:
            coef[:terms] = np.linalg.solve(basis.T @ basis, basis.T @ sample[inliers])
        except np.linalg.LinAlgError:
            break
    residual = sample - design @ coef
    sigma = _robust_sigma(residual[np.abs(residual) <= max(3.0 * sigma, 0.02)])
    c0, c1, c2, c3, c4, c5 = (float(c) for c in coef)
    y_full = ((np.arange(height, dtype=np.float32) + 0.5) * (2 / height) - 1)[:, None]
    x_full = ((np.arange(width, dtype=np.float32) + 0.5) * (2 / width) - 1)[None, :]
    # Separable terms first, so only two full-size float32 arrays are made.
    surface: FloatArray = (c0 + c2 * y_full + c5 * y_full**2) + (
        c1 + c3 * x_full + c4 * y_full
    ) * x_full
    return surface.astype(np.float32, copy=False), sigma


def _box_blur3(image: FloatArray) -> FloatArray:
    """3x3 mean filter (edges replicated): averages sensor and JPEG noise down."""
    padded: FloatArray = np.pad(image, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    out: FloatArray = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    out /= np.float32(9.0)
    return out


def _span(profile: NDArray[np.float64], min_gap: int) -> tuple[int, int]:
    """First and one-past-last index of the main mass of a 1-D ink profile.

    Runs of ink separated from the rest by at least ``min_gap`` empty
    positions and holding under 2% of the mass are specks (dust, noise), not
    part of the digit, and are left out.
    """
    index = np.flatnonzero(profile > 0)
    breaks = np.flatnonzero(np.diff(index) > min_gap)
    starts = np.concatenate([index[:1], index[breaks + 1]])
    ends = np.concatenate([index[breaks], index[-1:]]) + 1
    cumulative = np.concatenate([[0.0], np.cumsum(profile)])
    mass = cumulative[ends] - cumulative[starts]
    keep = np.flatnonzero(mass >= 0.02 * mass.sum())
    return int(starts[keep[0]]), int(ends[keep[-1]])


def _ink(gray: FloatArray) -> tuple[FloatArray, tuple[int, int, int, int]]:
    """Ink map (1 = full ink, 0 = paper) and the bounding box of the digit.

    Returns
    -------
    ink : ndarray of shape (height, width), float32
        Zero outside the bounding box.
    bbox : tuple of int
        ``(top, bottom, left, right)``, end-exclusive.
    """
    low, high = float(gray.min()), float(gray.max())
    if high - low < _MIN_CONTRAST:
        raise EmptyImageError(
            f"the image is uniform (all gray levels within {low:.3f}..{high:.3f} "
            f"of 0..1): there is no digit to classify"
        )
    background, sigma = _background(gray)
    residual = gray - background
    # Polarity: the ink is whichever side of the paper level deviates more
    # (beyond the noise); neither "light background" nor any fixed rule.
    noise = max(3.0 * sigma, 0.02)
    dark = float(np.clip(-residual - noise, 0.0, None).sum(dtype=np.float64))
    light = float(np.clip(residual - noise, 0.0, None).sum(dtype=np.float64))
    if dark > light:
        residual = np.negative(residual, out=residual)
    height, width = gray.shape
    # Smooth large images before looking for ink: the digit will shrink to
    # 20 pixels anyway, and isolated noisy pixels must not count as ink.
    smooth = _box_blur3(residual) if min(height, width) >= 56 else residual
    # Measured, not sigma / 3: JPEG and sensor noise is correlated between
    # neighbours, so averaging reduces it less than for independent noise.
    step = max(1, int(math.sqrt(height * width / (4 * _FIT_SAMPLES))))
    sigma_smooth = _robust_sigma(smooth[::step, ::step])
    peak = float(smooth.max())
    if peak < max(_MIN_CONTRAST, 6.0 * sigma_smooth):
        raise EmptyImageError(
            f"no ink stands out from the background (strongest contrast "
            f"{peak:.3f}, paper noise {sigma:.3f}): there is no digit to classify"
        )
    # 5 sigma: noise crosses it at a handful of pixels per megapixel at most.
    mask = smooth > max(_BBOX_FRACTION * peak, 5.0 * sigma_smooth)
    min_gap = max(2, max(height, width) // 20)
    top, bottom = _span(mask.sum(axis=1).astype(np.float64), min_gap)
    left, right = _span(mask.sum(axis=0).astype(np.float64), min_gap)
    # Full-ink level: strokes' cores saturate, as in MNIST (its strokes are
    # mostly 255); the noise floor goes to 0 so the paper comes out clean.
    box = (slice(top, bottom), slice(left, right))
    core = smooth[box][smooth[box] >= 0.5 * peak]
    full = float(np.percentile(core, 90)) if core.size else peak
    floor = min(3.0 * sigma_smooth, 0.5 * full)
    ink = np.zeros_like(gray)
    ink[box] = np.clip((smooth[box] - floor) / (full - floor), 0.0, 1.0)
    return ink, (top, bottom, left, right)


def _stroke_width(image: FloatArray) -> float:
    """Mean stroke width, in pixels, of white strokes on black.

    A stroke of width ``w`` and length ``l`` has area ``w * l`` and an outline
    of ``2 * l``, so the width is twice the ink mass over the total variation
    (which counts the outline, anti-aliased or not, with its contrast).
    """
    d_rows = np.abs(np.diff(image, axis=0, prepend=0.0, append=0.0))
    d_cols = np.abs(np.diff(image, axis=1, prepend=0.0, append=0.0))
    # Average the two half-pixel-shifted differences onto pixel centres so
    # the gradient magnitude (and the width) does not depend on direction.
    g_rows = 0.5 * (d_rows[:-1] + d_rows[1:])
    g_cols = 0.5 * (d_cols[:, :-1] + d_cols[:, 1:])
    outline = float(np.sqrt(g_rows**2 + g_cols**2).sum(dtype=np.float64))
    if outline <= 0.0:
        return 0.0
    return 2.0 * float(image.sum(dtype=np.float64)) / outline


def _morph(image: FloatArray, steps: int, grow: bool) -> FloatArray:
    """Grayscale dilation (``grow``) or erosion by a near-disk of radius ``steps``.

    Alternating a 3x3 cross and a 3x3 square makes an octagon, close enough
    to a round pen tip.
    """
    combine = np.maximum if grow else np.minimum
    height, width = image.shape
    cross = [(0, 1), (2, 1), (1, 0), (1, 2)]
    square = [*cross, (0, 0), (0, 2), (2, 0), (2, 2)]
    out = image
    for step in range(steps):
        padded = np.pad(out, 1, mode="constant" if grow else "edge")
        out = padded[1:-1, 1:-1].copy()
        for row, col in square if step % 2 else cross:
            combine(out, padded[row : row + height, col : col + width], out=out)
    return out


def _normalize_strokes(fine: FloatArray, sup: int) -> FloatArray:
    """Bring the stroke width into MNIST's usual range (``_STROKE_BAND``).

    MNIST never normalised stroke width, but its writers used similar pens:
    its digits' strokes are mostly 2-3 pixels wide once fitted into 20x20. A
    fine pen (or a marker) drawing fitted the same way ends up with strokes
    outside that range, which the network rarely saw and often misreads
    (thin strokes especially). Strokes outside the band are dilated or eroded
    at the supersampled resolution just enough to reach the band's edge;
    strokes inside it are left alone.

    Parameters
    ----------
    fine : ndarray of shape (28 * sup, 28 * sup), float32
        The fitted digit, supersampled ``sup`` times.
    """
    width = _stroke_width(fine) / sup
    low, high = _STROKE_BAND
    target = min(max(width, low), high)
    # One dilation step moves each edge by one fine pixel: 2 / sup in width.
    steps = round((target - width) * sup / 2)
    if steps == 0:
        return fine
    return _morph(fine, abs(steps), grow=steps > 0)


def _recentre(image: FloatArray, centre: float) -> FloatArray:
    """Shift ``image`` (bilinear, sub-pixel) so its centre of mass is at ``centre``.

    Eroding or dilating strokes moves the centre of mass a little when the
    strokes differ in width (thin parts vanish first), so it is put back.
    """
    mass = float(image.sum(dtype=np.float64))
    if mass <= 0.0:
        return image
    rows = float(image.sum(axis=1, dtype=np.float64) @ np.arange(image.shape[0]))
    cols = float(image.sum(axis=0, dtype=np.float64) @ np.arange(image.shape[1]))
    shift_rows, shift_cols = rows / mass - centre, cols / mass - centre
    # The affine map sends each output pixel to input (x + shift, y + shift).
    moved = Image.fromarray(image).transform(
        (image.shape[1], image.shape[0]),
        Image.Transform.AFFINE,
        (1.0, 0.0, shift_cols, 0.0, 1.0, shift_rows),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(moved, dtype=np.float32)


def _fit(ink: FloatArray, bbox: tuple[int, int, int, int]) -> FloatArray:
    """Fit the ink's bounding box into 20x20 and centre its mass in 28x28.

    Returns
    -------
    ndarray of shape (28, 28), float32
    """
    top, bottom, left, right = bbox
    crop = ink[top:bottom, left:right]
    mass = float(crop.sum(dtype=np.float64))
    # Centre of mass in continuous coordinates (pixel i covers [i, i + 1)).
    com_row = float(crop.sum(axis=1, dtype=np.float64) @ np.arange(crop.shape[0]))
    com_col = float(crop.sum(axis=0, dtype=np.float64) @ np.arange(crop.shape[1]))
    com_row, com_col = com_row / mass + 0.5, com_col / mass + 0.5
    longest = max(crop.shape)
    factor = max(1, longest // _MAX_FIT_SOURCE)
    if factor > 1:
        crop = _block_mean(crop, factor)
        com_row, com_col = com_row / factor, com_col / factor
    scale = FIT_SIDE * factor / longest  # output pixels per (reduced) source pixel
    # The 28x28 output is one window of the source, placed so that the centre
    # of mass lands on the centre of output pixel 14 (continuous 14.5).
    size = MNIST_SIDE / scale
    pad = math.ceil(size) + 2
    window_top = com_row - (MNIST_CENTRE + 0.5) / scale + pad
    window_left = com_col - (MNIST_CENTRE + 0.5) / scale + pad
    padded = np.pad(crop, pad)
    sup = _SUPERSAMPLE
    resized = Image.fromarray(padded).resize(
        (MNIST_SIDE * sup, MNIST_SIDE * sup),
        Image.Resampling.BILINEAR,
        box=(window_left, window_top, window_left + size, window_top + size),
    )
    fine = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    adjusted = _normalize_strokes(fine, sup)
    if adjusted is not fine:
        adjusted = _recentre(adjusted, (MNIST_CENTRE + 0.5) * sup - 0.5)
    out = _block_mean(adjusted, sup)
    peak = float(out.max())
    if peak > 0.0:
        out /= np.float32(peak)
    return out


def normalize_mnist(gray: ArrayLike) -> FloatArray:
    """MNIST-style normalisation of a grayscale image of one digit.

    Parameters
    ----------
    gray : array-like of shape (height, width)
        Gray levels in [0, 1], either polarity, any size.

    Returns
    -------
    ndarray of shape (28, 28), float32
        White ink on black in [0, 1]: the background removed, the ink's
        bounding box fitted into 20x20 keeping its aspect ratio, strokes
        outside MNIST's usual width thickened or thinned (``_STROKE_BAND``),
        the centre of mass at pixel (14, 14), and the brightest pixel at 1.

    Raises
    ------
    EmptyImageError
        The image is uniform or no ink stands out from its noise.
    """
    ink, bbox = _ink(np.asarray(gray, dtype=np.float32))
    return _fit(ink, bbox)


def _check_gray(gray: ArrayLike) -> FloatArray:
    image = np.asarray(gray, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise InputError(f"expected a 2-D grayscale image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("the image holds NaN or infinite values")
    if image.min() < 0.0 or image.max() > 1.0:
        raise InputError(
            f"gray levels must be in [0, 1], got {image.min():.4g}..{image.max():.4g}"
        )
    return image


def _check_mode(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise InputError(
            f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {mode!r}"
        )


def to_mnist(gray: ArrayLike, mode: str = "auto") -> FloatArray:
    """Turn a decoded grayscale image into a network input.

    Parameters
    ----------
    gray : array-like of shape (height, width)
        Gray levels in [0, 1] as the user sees them (from :func:`decode_image`).
    mode : {"auto", "mnist", "raw"}
        ``"raw"``: the image must be 28x28 and is used as it is.
        ``"mnist"``: always MNIST-style normalisation (:func:`normalize_mnist`).
        ``"auto"``: an image that is already MNIST-like (28x28 with a dark
        border, :func:`is_mnist_like`) is used unchanged, anything else gets
        ``"mnist"``.

    Returns
    -------
    ndarray of shape (784,), float32
        In [0, 1], white ink on black for ``"auto"`` and ``"mnist"``.

    Raises
    ------
    InputError
        Unknown mode, a non-2-D or out-of-range image, or ``"raw"`` on an
        image that is not 28x28.
    EmptyImageError
        ``"auto"``/``"mnist"`` on an image with no ink.
    """
    _check_mode(mode)
    image = _check_gray(gray)
    passthrough = mode == "raw" or (mode == "auto" and is_mnist_like(image))
    if mode == "raw" and image.shape != (MNIST_SIDE, MNIST_SIDE):
        height, width = image.shape
        raise InputError(
            f"preprocess=raw needs a {MNIST_SIDE}x{MNIST_SIDE} image, got "
            f"{width}x{height}; use preprocess=mnist or auto to normalise other sizes"
        )
    if passthrough:
        if mode == "auto" and float(image.max()) - float(image.min()) < 0.5 / 255:
            raise EmptyImageError(
                "the image is uniform (one gray level): there is no digit to classify"
            )
        return np.array(image, dtype=np.float32, copy=True).reshape(-1)
    return normalize_mnist(image).reshape(-1)


def image_to_input(
    data: bytes, mode: str = "auto", limits: ImageLimits = DEFAULT_LIMITS
) -> FloatArray:
    """Decode an uploaded image and normalise it into a network input.

    Parameters
    ----------
    data : bytes
        The image file (see :func:`decode_image`).
    mode : {"auto", "mnist", "raw"}
        See :func:`to_mnist`.
    limits : ImageLimits

    Returns
    -------
    ndarray of shape (784,), float32
        In [0, 1]. A 28x28 8-bit grayscale MNIST image under ``"auto"`` or
        ``"raw"`` gives exactly ``pixels / 255``, as :func:`core.mnist.to_float`.

    Raises
    ------
    ImageDecodeError, UnsupportedImageError, LimitExceededError
        From :func:`decode_image`.
    InputError, EmptyImageError
        From :func:`to_mnist`.
    """
    _check_mode(mode)  # before the work of decoding
    return to_mnist(decode_image(data, limits), mode)
