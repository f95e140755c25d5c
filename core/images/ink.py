"""Finding the ink: how far it stands out from the paper, and the digit's box.

:func:`find_ink` reads the paper under both polarities
(:func:`core.images.paper.read_paper`), keeps the likelier one in which
something stands out from the paper's noise (a digit that is there is never
refused for a wrong guess of polarity), and turns that contrast into an ink
coverage map and a bounding box, leaving out specks of dust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.errors import EmptyImageError
from core.images.arrays import FloatArray, box_blur3
from core.images.paper import FIT_SAMPLES, MIN_SIGMA, Paper, read_paper

# Contrast (in [0, 1] gray levels, or fractions of the paper's light) below
# which nothing counts as ink: about 8 of 255 levels, the weakest pencil on
# paper that is still legible.
_MIN_CONTRAST = 0.03
# Ink must stand this many noise deviations above the paper to be a digit: the
# strongest of a megapixel of Gaussian noise stays under 5.
_MIN_SNR = 6.0
# Ink detection threshold for the bounding box, relative to the full-ink level.
_BBOX_FRACTION = 0.15


@dataclass(frozen=True, slots=True)
class Ink:
    """Where the ink is, and what was measured to find it.

    Attributes
    ----------
    coverage : ndarray of shape (height, width), float32
        1 = full ink, 0 = paper; zero outside ``bbox``.
    bbox : tuple of int
        ``(top, bottom, left, right)`` of the digit, end-exclusive.
    dark : bool
        Dark ink on light paper (False: light ink on a dark background).
    """

    coverage: FloatArray
    bbox: tuple[int, int, int, int]
    dark: bool


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


@dataclass(frozen=True, slots=True)
class _Signal:
    """A reading's contrast as smoothed for detection, with its noise."""

    smooth: FloatArray
    measured: float  # the noise as measured (0 on a synthetic image)
    sigma: float  # the same, at least MIN_SIGMA
    peak: float

    @property
    def needed(self) -> float:
        """The contrast a digit must reach to count as one."""
        return max(_MIN_CONTRAST, _MIN_SNR * self.sigma)


def _signal(paper: Paper) -> _Signal:
    height, width = paper.contrast.shape
    # Smooth large images before looking for ink: the digit will shrink to
    # 20 pixels anyway, and isolated noisy pixels must not count as ink.
    smooth = paper.contrast
    if min(height, width) >= 56:
        smooth = box_blur3(smooth)
    # The noise, measured after smoothing (JPEG and sensor noise is
    # correlated between neighbours, so averaging reduces it less than for
    # independent noise) on the paper side of the surface only, where no
    # ink is, whatever the share of ink.
    step = max(1, int(math.sqrt(height * width / (4 * FIT_SAMPLES))))
    away = smooth[::step, ::step]
    away = away[away < 0]
    measured = 1.4826 * float(np.median(-away)) if away.size >= 8 else 0.0
    return _Signal(
        smooth=smooth,
        measured=measured,
        sigma=max(measured, MIN_SIGMA),
        peak=float(smooth.max()),
    )


def find_ink(gray: FloatArray) -> Ink:
    """Ink map and bounding box of the digit in a grayscale image.

    Parameters
    ----------
    gray : ndarray of shape (height, width), float32
        Gray levels in [0, 1], either polarity, any lighting, any share of
        ink.

    Returns
    -------
    Ink

    Raises
    ------
    EmptyImageError
        The image is uniform, or nothing in it stands out from the paper's
        noise under either polarity. The message gives the measured contrast
        and noise.
    """
    low, high = float(gray.min()), float(gray.max())
    if high - low < _MIN_CONTRAST:
        raise EmptyImageError(
            f"the image is uniform (all gray levels within {low:.3f}..{high:.3f} "
            f"of 0..1, a contrast under {_MIN_CONTRAST}): there is no digit to "
            "classify; send a picture in which the digit is visible"
        )
    readings = read_paper(gray)
    # The likelier polarity first; the other only if the first finds no
    # digit: a digit that is there is never refused for a wrong guess.
    signals = [_signal(paper) for paper in readings]
    chosen = next((i for i, sig in enumerate(signals) if sig.peak >= sig.needed), None)
    if chosen is None:
        paper, signal = readings[0], signals[0]
        kind = "darker" if paper.dark else "lighter"
        raise EmptyImageError(
            f"no ink stands out from the background: the strongest {kind} mark "
            f"differs from the paper by {signal.peak:.3f} gray levels (of 0..1) "
            f"against a paper noise of {signal.sigma:.3f}, and a digit needs at "
            f"least {signal.needed:.3f}: there is no digit to classify; send a "
            "sharper, better-lit or higher-contrast picture of the digit"
        )
    paper, signal = readings[chosen], signals[chosen]
    smooth, sigma = signal.smooth, signal.sigma
    height, width = gray.shape
    # Ink in a shadow absorbs as large a share of its (dimmer) light as ink
    # in full light: its coverage is measured relative to the local light.
    relative = smooth / paper.light
    # Full-ink level: strokes' cores saturate, as in MNIST (its strokes are
    # mostly 255); the noise floor goes to 0 so the paper comes out clean.
    core = relative[smooth >= 0.5 * signal.peak]
    full = float(np.percentile(core, 90))
    # 5 sigma: noise crosses it at a handful of pixels per megapixel at most.
    mask = (relative > _BBOX_FRACTION * full) & (smooth > 5.0 * sigma)
    if not mask.any():  # the strongest ink sits in the dimmest light
        mask = smooth >= 0.5 * signal.peak
    min_gap = max(2, max(height, width) // 20)
    top, bottom = _span(mask.sum(axis=1).astype(np.float64), min_gap)
    left, right = _span(mask.sum(axis=0).astype(np.float64), min_gap)
    box = (slice(top, bottom), slice(left, right))
    floor = min(3.0 * signal.measured / float(np.median(paper.light)), 0.5 * full)
    coverage = np.zeros_like(gray)
    coverage[box] = np.clip((relative[box] - floor) / (full - floor), 0.0, 1.0)
    return Ink(coverage=coverage, bbox=(top, bottom, left, right), dark=paper.dark)
