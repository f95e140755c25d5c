"""Finding the ink: paper level, polarity, noise, and the digit's bounding box."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from core.errors import EmptyImageError
from core.images.arrays import FloatArray, border, box_blur3, robust_sigma

# The background surface is fitted on a regular subsample of about this size.
_FIT_SAMPLES = 4_096
# Contrast (in [0, 1] gray levels) below which an image counts as uniform:
# about 8 of 255 levels, the weakest pencil-on-paper contrast still legible.
_MIN_CONTRAST = 0.03
# A 28x28 image whose border is darker than this is taken as MNIST-like.
# Ink detection threshold for the bounding box, relative to the ink peak.
_BBOX_FRACTION = 0.15


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
    coef[0] = np.median(border(gray, max(1, min(height, width) // 32)))
    # A quadratic needs a few rows and columns of samples to be meaningful.
    terms = 6 if min(len(rows), len(cols)) >= 8 else 1
    inliers = np.ones(sample.shape, dtype=bool)
    sigma = 0.0
    for _ in range(4):
        residual = sample - design @ coef
        sigma = robust_sigma(residual[inliers])
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
    sigma = robust_sigma(residual[np.abs(residual) <= max(3.0 * sigma, 0.02)])
    c0, c1, c2, c3, c4, c5 = (float(c) for c in coef)
    y_full = ((np.arange(height, dtype=np.float32) + 0.5) * (2 / height) - 1)[:, None]
    x_full = ((np.arange(width, dtype=np.float32) + 0.5) * (2 / width) - 1)[None, :]
    # Separable terms first, so only two full-size float32 arrays are made.
    surface: FloatArray = (c0 + c2 * y_full + c5 * y_full**2) + (
        c1 + c3 * x_full + c4 * y_full
    ) * x_full
    return surface.astype(np.float32, copy=False), sigma


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


def find_ink(gray: FloatArray) -> tuple[FloatArray, tuple[int, int, int, int]]:
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
    smooth = box_blur3(residual) if min(height, width) >= 56 else residual
    # Measured, not sigma / 3: JPEG and sensor noise is correlated between
    # neighbours, so averaging reduces it less than for independent noise.
    step = max(1, int(math.sqrt(height * width / (4 * _FIT_SAMPLES))))
    sigma_smooth = robust_sigma(smooth[::step, ::step])
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
