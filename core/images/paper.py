"""The paper under the ink: its light, the ink's polarity, and the noise.

A digit on a page leaves most pixels blank, but a digit cropped tight to its
strokes can be half ink, and a thick marker more: an estimate that assumes
"most pixels are paper" (a median, a symmetric robust fit) then takes the
strokes for paper noise and finds nothing. Here the paper's light is fitted as
an *envelope*: a smooth surface (a plane, or a quadratic that follows a
gradient or a vignette) on the paper's side of the image, by asymmetric least
squares in which pixels on the ink's side count a thousand times less, so the
share of ink does not matter. It is then refitted on the pixels within the
noise of that envelope, which removes its bias and measures the noise.

Both polarities are read that way (dark ink under an upper envelope, light
ink over a lower one), and :func:`read_paper` orders them by what the image
supports: the border ring is mostly paper in tight crops as on pages (a digit
touches the edge only where its strokes cross it), and, when both readings
find about as much paper there, the one in which more ink stands out.

Uneven light multiplies both paper and ink, so dark ink is measured against
the local paper light (:attr:`Paper.light`); light ink on a dark board is
measured as the light it adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.images.arrays import FloatArray, robust_sigma

# The paper surface is fitted on a regular subsample of about this size.
FIT_SAMPLES = 4_096
# Smallest noise level assumed, in gray levels: synthetic images have none,
# and 8-bit rounding alone is 0.001.
MIN_SIGMA = 0.004
# Pixels this far from the paper surface (in noise deviations) are left out
# when the surface is refitted: ink on one side, glare or specks on the other.
_INK_SIDE = 3.0
# Difference between the two polarities in the share of the border ring that
# is paper, above which that share decides the polarity (see read_paper).
_SHARE_MARGIN = 0.03
# Smallest sides (pixels) on which the paper's light is fitted as a plane,
# then as a quadratic surface; below the first it is taken as uniform.
_PLANE_SIDE = 16
_CURVED_SIDE = 64
# Largest quadratic coefficient (gray levels from the centre to an edge) of a
# lighting surface: a strong vignette darkens the edges by about 0.25.
_MAX_CURVATURE = 0.35
# The paper is never taken as darker than this (fraction of full white), so
# the relative measure of dark ink stays bounded.
_MIN_PAPER = 0.05


def _ring(shape: tuple[int, int], width: int) -> NDArray[np.bool_]:
    """Mask of the pixels within ``width`` of the image's edge."""
    mask = np.ones(shape, dtype=bool)
    height, cols = shape
    if 2 * width < min(height, cols):
        mask[width:-width, width:-width] = False
    return mask


def _design(
    rows: NDArray[np.float64], cols: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Quadratic terms 1, x, y, x^2, xy, y^2 of points in [-1, 1] coordinates."""
    return np.stack(
        [np.ones_like(cols), cols, rows, cols * cols, cols * rows, rows * rows], axis=1
    )


@dataclass(frozen=True, slots=True)
class _Samples:
    """A regular subsample of the image with its coordinates and ring flag."""

    values: NDArray[np.float64]
    design: NDArray[np.float64]
    ring: NDArray[np.bool_]
    terms: int


def _samples(gray: FloatArray) -> _Samples:
    height, width = gray.shape
    step = max(1, int(math.sqrt(height * width / FIT_SAMPLES)))
    rows = np.arange(0, height, step)
    cols = np.arange(0, width, step)
    # Always include the last row and column: they are part of the ring.
    rows = np.unique(np.append(rows, height - 1))
    cols = np.unique(np.append(cols, width - 1))
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
    ring_width = max(1, min(height, width) // 32)
    in_ring = _ring(gray.shape, ring_width)[grid_r, grid_c].ravel()
    y = ((grid_r.ravel() + 0.5) * (2.0 / height) - 1.0).astype(np.float64)
    x = ((grid_c.ravel() + 0.5) * (2.0 / width) - 1.0).astype(np.float64)
    design = _design(y, x)
    # Light varies smoothly: across a small image (a thumbnail, a tight
    # crop of a few dozen pixels) by a tilt at most, and a curved surface
    # there would bend around the strokes instead of following the paper.
    side = min(height, width)
    terms = 1 if side < _PLANE_SIDE else 3 if side < _CURVED_SIDE else 6
    values = gray[grid_r, grid_c].astype(np.float64).ravel()
    return _Samples(values=values, design=design, ring=in_ring, terms=terms)


def _weighted_solve(
    design: NDArray[np.float64],
    values: NDArray[np.float64],
    weight: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Least squares by the normal equations: a 6x6 solve, far cheaper than lstsq.

    ``weight`` scales each sample's equation; ``None`` weighs them all alike.
    """
    coef = np.zeros(6)
    weighted = design if weight is None else design * weight[:, None]
    try:
        coef[: design.shape[1]] = np.linalg.solve(
            design.T @ weighted, weighted.T @ values
        )
    except np.linalg.LinAlgError:
        coef[0] = float(np.median(values))
    return coef


def _envelope(samples: _Samples, sign: float, terms: int) -> NDArray[np.float64]:
    """Asymmetric least squares: the surface the paper forms on its side of the ink.

    Samples on the ink side of the current surface (``sign`` * residual > 0)
    weigh 1,000 times less than the others, so the fit settles on the paper
    (just past its noise) however much of the image is ink: the strokes pull
    it only as much as a few paper pixels do. Started from the median of the
    border ring, which is mostly paper in tight crops as on pages.
    """
    design, values = samples.design[:, :terms], samples.values
    coef = np.zeros(6)
    coef[0] = float(np.median(values[samples.ring]))
    for _ in range(15):
        residual = sign * (values - design @ coef[: design.shape[1]])
        weight = np.where(residual > 0, 0.001, 1.0)
        coef = _weighted_solve(design, values, weight)
    return coef


def _noise(gray: FloatArray) -> float:
    """Noise level from second differences along rows.

    A second difference vanishes on flat paper and on the smooth ramps of
    upscaled or blurred strokes alike, and most pixels are one or the other,
    so its median measures the noise whatever the share of ink.
    """
    step = max(1, gray.shape[0] // 64)
    rows = gray[::step].astype(np.float64)
    second = rows[:, :-2] - 2.0 * rows[:, 1:-1] + rows[:, 2:]
    if second.size == 0:
        return MIN_SIGMA
    return max(robust_sigma(second.ravel()) / math.sqrt(6.0), MIN_SIGMA)


def _refit(
    samples: _Samples, coef: NDArray[np.float64], sigma: float, sign: float, terms: int
) -> tuple[NDArray[np.float64], float]:
    """Refit on the samples near the surface, the ink excluded one-sidedly.

    ``sign`` is +1 when ink is lighter than paper, -1 when darker. Removes
    the envelope's bias (it sits at the edge of the paper's noise) and
    measures that noise on the paper alone.
    """
    design, values = samples.design[:, :terms], samples.values
    for _ in range(3):
        residual = sign * (values - design @ coef[: design.shape[1]])
        paper = np.abs(residual) <= _INK_SIDE * sigma
        if paper.sum() < 4 * design.shape[1]:
            break
        coef = _weighted_solve(design[paper], values[paper])
        residual = sign * (values - design @ coef[: design.shape[1]])
        # The paper side of the surface holds half the paper's noise and
        # nothing else (the edges of strokes all lie on the ink side).
        away = residual[paper & (residual < 0)]
        if away.size:
            sigma = max(1.4826 * float(np.median(-away)), MIN_SIGMA)
    return coef, sigma


def _fit_paper(
    samples: _Samples, sign: float, sigma: float
) -> tuple[NDArray[np.float64], float]:
    """The paper's surface and noise, read with ink on the ``sign`` side.

    A curved surface is kept only when its curvature is one that light can
    have: one that bends by more than ``_MAX_CURVATURE`` has wrapped itself
    around strokes (a tight crop leaves little paper to hold it), so the
    tilted plane is used instead.
    """
    terms = samples.terms
    coef, noise = _refit(samples, _envelope(samples, sign, terms), sigma, sign, terms)
    if terms == 6 and float(np.abs(coef[3:]).max()) > _MAX_CURVATURE:
        coef, noise = _refit(samples, _envelope(samples, sign, 3), sigma, sign, 3)
    return coef, noise


def _surface(coef: NDArray[np.float64], shape: tuple[int, int]) -> FloatArray:
    height, width = shape
    y = ((np.arange(height, dtype=np.float32) + 0.5) * (2 / height) - 1)[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5) * (2 / width) - 1)[None, :]
    c0, c1, c2, c3, c4, c5 = (float(c) for c in coef)
    # Separable terms first, so only two full-size float32 arrays are made.
    surface: FloatArray = (c0 + c2 * y + c5 * y**2) + (c1 + c3 * x + c4 * y) * x
    # Already (height, width): the row terms broadcast against the column ones.
    return surface.astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True)
class Paper:
    """The paper under the ink, as :func:`read_paper` measured it.

    Attributes
    ----------
    contrast : ndarray of shape (height, width), float32
        Gray levels by which each pixel departs from the local paper towards
        the ink: about 0 on paper (noise either side), positive on ink.
    light : ndarray of shape (height, width), float32
        What full ink contrast scales with: the local paper level for dark
        ink (ink absorbs a fraction of the light falling on it), 1 for light
        ink (which adds light).
    dark : bool
        Whether the ink is darker than the paper.
    """

    contrast: FloatArray
    light: FloatArray
    dark: bool


def read_paper(gray: FloatArray) -> tuple[Paper, Paper]:
    """Fit the paper's light under both polarities, the likelier reading first.

    Parameters
    ----------
    gray : ndarray of shape (height, width), float32
        Gray levels in [0, 1].

    Returns
    -------
    tuple of Paper
        The reading the image supports best, then the other polarity's, for
        when the first finds no digit.
    """
    samples = _samples(gray)
    sigma0 = _noise(gray)
    fits = []
    for sign in (-1.0, 1.0):  # dark ink, then light ink
        coef, sigma = _fit_paper(samples, sign, sigma0)
        residual = sign * (samples.values - samples.design @ coef)
        fits.append((residual, coef, sigma))
    # Both readings are judged with the same noise allowance, the calmer one:
    # a reading that takes strokes or shadows for paper finds a noisy paper,
    # and its own allowance would excuse anything.
    calm = min(fits[0][2], fits[1][2])
    noise = max(3.0 * calm, 0.02)
    # How much of the border ring is paper, and how much ink stands out.
    share_d, share_l = (float(np.mean(r[samples.ring] <= noise)) for r, _, _ in fits)
    # Ink mass counts only what stands well clear of the noise: a page's
    # noise tail, summed over a megapixel, must not outweigh a thin "1".
    strong = max(5.0 * calm, 0.03)
    mass_d, mass_l = (float(np.clip(r - strong, 0.0, None).sum()) for r, _, _ in fits)
    # The border of a picture is mostly paper, in tight crops too. When both
    # readings find about as much paper there (a dark frame whose strokes
    # reach the edge, a vignette darkening the corners like ink), the
    # polarity is the one in which more ink stands out.
    if abs(share_d - share_l) > _SHARE_MARGIN:
        dark = share_d > share_l
    else:
        dark = mass_d >= mass_l
    readings = (_reading(gray, fits[0][1], True), _reading(gray, fits[1][1], False))
    return readings if dark else (readings[1], readings[0])


def _reading(gray: FloatArray, coef: NDArray[np.float64], dark: bool) -> Paper:
    paper = _surface(coef, gray.shape)
    contrast = paper - gray if dark else gray - paper
    if dark:
        np.maximum(paper, np.float32(_MIN_PAPER), out=paper)
    else:
        paper.fill(1.0)
    return Paper(
        contrast=contrast.astype(np.float32, copy=False), light=paper, dark=dark
    )
