"""Small array helpers shared by the image modules: block means, blurs, robust noise."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


def block_mean(array: FloatArray, factor: int, edge: bool = False) -> FloatArray:
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


def box_blur3(image: FloatArray) -> FloatArray:
    """3x3 mean filter (edges replicated): averages sensor and JPEG noise down."""
    padded: FloatArray = np.pad(image, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    out: FloatArray = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    out /= np.float32(9.0)
    return out


def robust_sigma(values: NDArray[np.floating[Any]]) -> float:
    """Standard deviation of Gaussian noise estimated from the median absolute deviation."""
    if values.size == 0:
        return 0.0
    centre = np.median(values)
    return 1.4826 * float(np.median(np.abs(values - centre)))


def border(gray: FloatArray, width: int) -> FloatArray:
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
