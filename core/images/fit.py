"""Fitting the digit into MNIST's 20x20 box and centring its mass in 28x28."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from core.images.arrays import FloatArray, block_mean
from core.images.measures import FIT_SIDE, MNIST_CENTRE, MNIST_SIDE, centre_of_mass
from core.images.strokes import DEFAULT_STYLE, StrokeStyle, normalize_strokes

# The digit is fitted at this many times 28x28 before being averaged down, so
# its stroke width can be measured and adjusted at sub-pixel precision.
_SUPERSAMPLE = 4
# Fitted digits with a longer side above this are averaged down by an integer
# factor first, so the final anti-aliased resample works on a small array.
_MAX_FIT_SOURCE = 96


def recentre(image: FloatArray, centre: float) -> FloatArray:
    """Shift ``image`` (bilinear, sub-pixel) so its centre of mass is at ``centre``.

    Eroding or dilating strokes moves the centre of mass a little when the
    strokes differ in width (thin parts vanish first), so it is put back.
    """
    mass = float(image.sum(dtype=np.float64))
    if mass <= 0.0:
        return image
    rows, cols = centre_of_mass(image)
    shift_rows, shift_cols = rows - centre, cols - centre
    # The affine map sends each output pixel to input (x + shift, y + shift).
    moved = Image.fromarray(image).transform(
        (image.shape[1], image.shape[0]),
        Image.Transform.AFFINE,
        (1.0, 0.0, shift_cols, 0.0, 1.0, shift_rows),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(moved, dtype=np.float32)


def fit_digit(
    ink: FloatArray,
    bbox: tuple[int, int, int, int],
    style: StrokeStyle = DEFAULT_STYLE,
) -> FloatArray:
    """Fit the ink's bounding box into 20x20 and centre its mass in 28x28.

    Parameters
    ----------
    ink : ndarray of shape (height, width), float32
        Ink coverage in [0, 1].
    bbox : tuple of int
        ``(top, bottom, left, right)`` of the digit, end-exclusive.
    style : StrokeStyle
        How the strokes are brought towards MNIST's (:func:`normalize_strokes`).

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
        crop = block_mean(crop, factor)
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
    adjusted = normalize_strokes(fine, sup, style)
    if adjusted is not fine:
        adjusted = recentre(adjusted, (MNIST_CENTRE + 0.5) * sup - 0.5)
    out = block_mean(adjusted, sup)
    peak = float(out.max())
    if peak > 0.0:
        out /= np.float32(peak)
    return out
