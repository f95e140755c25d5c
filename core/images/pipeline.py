"""From a decoded image to a network input: the modes and the ``auto`` decision."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from core.errors import BatchImageError, CoreError, EmptyImageError, InputError
from core.images.arrays import FloatArray, border
from core.images.decode import DEFAULT_LIMITS, ImageLimits, decode_image
from core.images.fit import fit_digit
from core.images.ink import find_ink
from core.images.measures import (
    FIT_SIDE,
    MNIST_CENTRE,
    MNIST_SIDE,
    centre_of_mass,
    longest_side,
    stroke_width,
)


class Preprocess(StrEnum):
    """How an uploaded image becomes network input (see :func:`to_mnist`)."""

    AUTO = "auto"
    MNIST = "mnist"
    RAW = "raw"


PREPROCESS_MODES = tuple(mode.value for mode in Preprocess)
_DARK_BORDER = 0.1
# What `auto` passes through unchanged, each range a little wider than the one
# measured on the 10,000 MNIST test digits (in brackets), so that every MNIST
# digit passes: longest side of the box of pixels above _DARK_BORDER [19, 20],
# distance of the centre of mass from (14, 14) on either axis [0.5], stroke
# width [1.14, 7.08].
_FIT_RANGE = (FIT_SIDE - 2, FIT_SIDE + 1)
_CENTRE_TOLERANCE = 0.75
_WIDTH_RANGE = (1.0, 7.5)
# Images with a side under this many pixels are enlarged before the ink is
# looked for, to at most this many pixels in all.
_SMALL_SIDE = 20
_MAX_ENLARGED = 250_000


def is_mnist_like(gray: ArrayLike) -> bool:
    """Whether an image is already an MNIST digit, to be used as it is.

    It must be one in every respect that MNIST's own digits share (measured
    on its test set, see :mod:`core.images.measures`): 28x28, a dark
    background, the ink's box fitted to 20 pixels, the centre of mass at
    (14, 14), strokes of an MNIST width. A digit that fills the frame, sits
    off-centre, is small, or is drawn with a pen far outside MNIST's is
    normalised instead, 28x28 or not.

    Parameters
    ----------
    gray : array-like of shape (height, width)
        Gray levels in [0, 1].
    """
    image = np.asarray(gray, dtype=np.float32)
    if image.shape != (MNIST_SIDE, MNIST_SIDE):
        return False
    ring = border(image, 1)
    # The median of the ring is dark: at least half of its pixels are.
    if 2 * int(np.count_nonzero(ring <= _DARK_BORDER)) < ring.size:
        return False
    low, high = _FIT_RANGE
    if not low <= longest_side(image, _DARK_BORDER) <= high:
        return False
    row, col = centre_of_mass(image)
    if max(abs(row - MNIST_CENTRE), abs(col - MNIST_CENTRE)) > _CENTRE_TOLERANCE:
        return False
    thinnest, thickest = _WIDTH_RANGE
    return thinnest <= stroke_width(image) <= thickest


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
        outside MNIST's usual width thickened or thinned
        (:func:`~core.images.strokes.normalize_strokes`),
        the centre of mass at pixel (14, 14), and the brightest pixel at 1.

    Raises
    ------
    EmptyImageError
        The image is uniform or no ink stands out from its noise.
    """
    ink = find_ink(enlarge(np.asarray(gray, dtype=np.float32)))
    return fit_digit(ink.coverage, ink.bbox)


def enlarge(image: FloatArray) -> FloatArray:
    """Upscale a thumbnail (a side under ``_SMALL_SIDE``) by an integer factor.

    In an 8x8 digit every pixel is stroke or stroke edge: there is no flat
    paper to measure the noise on, nor room to fit the paper's light.
    Interpolated, its cells become smooth ramps between flat areas, as in
    any scan of a larger digit, and the ink is found the same way.
    """
    height, width = image.shape
    side = min(height, width)
    if side >= _SMALL_SIDE:
        return image
    factor = min(
        math.ceil(_SMALL_SIDE * 2 / side),
        math.isqrt(_MAX_ENLARGED // (height * width)),
    )
    if factor <= 1:
        return image
    enlarged = Image.fromarray(image).resize(
        (width * factor, height * factor), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(enlarged, dtype=np.float32), 0.0, 1.0)


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


def images_to_rows(
    blobs: Sequence[bytes], mode: str = "auto", limits: ImageLimits = DEFAULT_LIMITS
) -> FloatArray:
    """Decode and normalise a batch of uploaded images into network rows.

    Every image is tried, so that one answer names all those that cannot be
    used rather than the first.

    Parameters
    ----------
    blobs : sequence of bytes
        The image files, in batch order.
    mode : {"auto", "mnist", "raw"}
        See :func:`to_mnist`.
    limits : ImageLimits
        Applied to each image.

    Returns
    -------
    ndarray of shape (len(blobs), 784), float32

    Raises
    ------
    InputError
        Unknown mode (before any image is decoded).
    BatchImageError
        One or more images cannot be used; ``failures`` lists each by index
        with its message and ``causes`` holds each image's own error.
    """
    _check_mode(mode)
    rows = np.zeros((len(blobs), MNIST_SIDE * MNIST_SIDE), dtype=np.float32)
    failed: list[tuple[int, CoreError]] = []
    for index, blob in enumerate(blobs):
        try:
            rows[index] = image_to_input(blob, mode, limits)
        except CoreError as exc:
            failed.append((index, exc))
    if failed:
        raise BatchImageError(failed, len(blobs))
    return rows
