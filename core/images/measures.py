"""What an MNIST digit looks like, and the measurements that say so.

Figures measured on the 10,000 digits of the MNIST test set (pixels only,
never the labels), with the functions below:

* size: the longest side of the ink's bounding box (pixels above 0.1) is 19
  or 20 pixels in every digit (20 in 99.96%): MNIST fitted each digit's box
  into 20x20;
* placement: the centre of mass lies within 13.50..14.50 on both axes (mean
  13.99 rows, 14.01 columns): MNIST shifted digits by whole pixels to put it
  at the centre;
* stroke width (:func:`stroke_width`): 1.14 to 7.08 pixels, median 2.49,
  5th-95th percentiles 1.74-3.82;
* edge softness (:func:`saturation`, the share of a stroke's pixels that are
  fully lit): median 0.44, 5th-95th percentiles 0.11-0.70;
* background: the one-pixel border's median is 0 (black) in every digit.
"""

from __future__ import annotations

import numpy as np

from core.images.arrays import FloatArray

MNIST_SIDE = 28
FIT_SIDE = 20
# Pixel index (0-based, pixel centres) where MNIST's centre of mass sits.
MNIST_CENTRE = 14.0


def stroke_width(image: FloatArray) -> float:
    """Mean stroke width, in pixels, of white strokes on black.

    A stroke of width ``w`` and length ``l`` has area ``w * l`` and an outline
    of ``2 * l``, so the width is twice the ink mass over the total variation
    (which counts the outline, anti-aliased or not, with its contrast).

    Parameters
    ----------
    image : ndarray of shape (height, width), float32
        Ink in [0, 1].
    """
    # Differences with a zero border all round (np.diff's prepend/append
    # concatenates twice per axis; one padded copy is a third of the time).
    padded = np.zeros((image.shape[0] + 2, image.shape[1] + 2), dtype=image.dtype)
    padded[1:-1, 1:-1] = image
    d_rows = np.abs(padded[1:, 1:-1] - padded[:-1, 1:-1])
    d_cols = np.abs(padded[1:-1, 1:] - padded[1:-1, :-1])
    # Average the two half-pixel-shifted differences onto pixel centres so
    # the gradient magnitude (and the width) does not depend on direction.
    g_rows = 0.5 * (d_rows[:-1] + d_rows[1:])
    g_cols = 0.5 * (d_cols[:, :-1] + d_cols[:, 1:])
    outline = float(np.sqrt(g_rows**2 + g_cols**2).sum(dtype=np.float64))
    if outline <= 0.0:
        return 0.0
    return 2.0 * float(image.sum(dtype=np.float64)) / outline


def saturation(image: FloatArray) -> float:
    """Share of a digit's stroke pixels (lit at least half) that are fully lit.

    Crisp strokes have flat, saturated cores; blurred or upscaled ones rise
    and fall without reaching full ink.

    Parameters
    ----------
    image : ndarray of shape (height, width), float32
        Ink in [0, 1], its brightest pixel at 1.
    """
    stroke = int(np.count_nonzero(image >= 0.5))
    if stroke == 0:
        return 0.0
    return int(np.count_nonzero(image >= 0.99)) / stroke


def centre_of_mass(image: FloatArray) -> tuple[float, float]:
    """Row and column (pixel-centre indices) of the ink's centre of mass."""
    mass = float(image.sum(dtype=np.float64))
    if mass <= 0.0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows = float(image.sum(axis=1, dtype=np.float64) @ np.arange(image.shape[0]))
    cols = float(image.sum(axis=0, dtype=np.float64) @ np.arange(image.shape[1]))
    return rows / mass, cols / mass


def longest_side(image: FloatArray, level: float) -> int:
    """Longest side of the bounding box of the pixels above ``level`` (0 if none)."""
    lit = image > level
    rows = np.flatnonzero(lit.any(axis=1))
    cols = np.flatnonzero(lit.any(axis=0))
    if rows.size == 0:
        return 0
    return int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
