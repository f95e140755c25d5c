"""Random geometric distortions of MNIST digits, in pure NumPy.

With only a few thousand training images the network overfits long before it
has learnt what makes a digit a digit; showing it a freshly distorted copy of
every image in every epoch is the cheapest way to more data. Each image gets
its own random affine map (rotation, scale, shear, shift) plus a smooth elastic
displacement field (Simard et al., 2003), and is resampled bilinearly.

Everything is batched: one call distorts a whole ``(n, 28, 28)`` stack with a
few vectorised gathers, no per-image Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Ranges of the random distortions; every draw is uniform unless noted.

    Attributes
    ----------
    rotation_deg : float
        Rotation in ``[-rotation_deg, rotation_deg]`` degrees.
    scale_min, scale_max : float
        Isotropic zoom factor range (> 1 enlarges the digit).
    aspect : float
        Extra anisotropic zoom: the x and y zooms differ by a factor in
        ``[1 - aspect, 1 + aspect]`` (digits are written narrow and wide).
    shear : float
        Horizontal shear factor in ``[-shear, shear]`` (slanted handwriting).
    shift_px : float
        Translation in ``[-shift_px, shift_px]`` pixels along each axis.
    elastic_px : float
        Standard deviation, in pixels, of the elastic displacement at each
        control point; 0 disables elastic distortion.
    elastic_grid : int
        Control points per side of the elastic field (>= 2); the field is
        bilinear between them, so fewer points mean smoother, larger waves.
    """

    rotation_deg: float = 15.0
    scale_min: float = 0.88
    scale_max: float = 1.12
    aspect: float = 0.08
    shear: float = 0.2
    shift_px: float = 2.5
    elastic_px: float = 1.0
    elastic_grid: int = 4


def _interpolation_matrix(size: int, points: int) -> NDArray[np.float32]:
    """Linear interpolation weights from ``points`` control points to ``size`` pixels.

    Returns
    -------
    ndarray of shape (size, points), float32
        Row ``i`` holds the weights of the control points for pixel ``i``; the
        control points sit evenly from pixel 0 to pixel ``size - 1``.
    """
    t = np.arange(size, dtype=np.float64) * (points - 1) / (size - 1)
    lower = np.minimum(np.floor(t).astype(np.intp), points - 2)
    frac = t - lower
    matrix = np.zeros((size, points), dtype=np.float64)
    rows = np.arange(size)
    matrix[rows, lower] = 1.0 - frac
    matrix[rows, lower + 1] = frac
    return matrix.astype(np.float32)


def bilinear_sample(
    images: FloatArray, rows: FloatArray, cols: FloatArray
) -> FloatArray:
    """Sample each image at fractional coordinates, zero outside the image.

    Parameters
    ----------
    images : ndarray of shape (n, h, w), float32
    rows, cols : ndarray of shape (n, h_out, w_out), float32
        Source coordinates, in pixels, of every output pixel.

    Returns
    -------
    ndarray of shape (n, h_out, w_out), float32
    """
    n, height, width = images.shape
    # A one-pixel zero border: a coordinate clipped onto it reads 0, which is
    # the background of an MNIST digit, so anything sampled from outside the
    # image fades to black instead of smearing the edge pixels.
    padded = np.zeros((n, height + 2, width + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(n, -1)
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    wr = (rows - r0).reshape(n, -1)
    wc = (cols - c0).reshape(n, -1)
    r0i = r0.astype(np.intp).reshape(n, -1) + 1
    c0i = c0.astype(np.intp).reshape(n, -1) + 1
    r_lo = np.clip(r0i, 0, height + 1)
    r_hi = np.clip(r0i + 1, 0, height + 1)
    c_lo = np.clip(c0i, 0, width + 1)
    c_hi = np.clip(c0i + 1, 0, width + 1)
    stride = width + 2
    top = np.take_along_axis(flat, r_lo * stride + c_lo, axis=1) * (1 - wc)
    top += np.take_along_axis(flat, r_lo * stride + c_hi, axis=1) * wc
    bottom = np.take_along_axis(flat, r_hi * stride + c_lo, axis=1) * (1 - wc)
    bottom += np.take_along_axis(flat, r_hi * stride + c_hi, axis=1) * wc
    out = top * (1 - wr) + bottom * wr
    return out.reshape(rows.shape).astype(np.float32, copy=False)


def distort(
    images: FloatArray, rng: np.random.Generator, config: AugmentConfig
) -> FloatArray:
    """Apply an independent random affine + elastic distortion to every image.

    Parameters
    ----------
    images : ndarray of shape (n, 28, 28), float32
        Pixel values in [0, 1].
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the
        same output.
    config : AugmentConfig
        Distortion ranges.

    Returns
    -------
    ndarray of shape (n, 28, 28), float32
        Distorted images, still in [0, 1] (bilinear interpolation is convex).
    """
    n, height, width = images.shape
    if n == 0:
        return images.copy()
    # Draw all random numbers in a fixed order, so that a run is reproducible.
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg, n))
    scale = rng.uniform(config.scale_min, config.scale_max, n)
    aspect = rng.uniform(1.0 - config.aspect, 1.0 + config.aspect, n)
    shear = rng.uniform(-config.shear, config.shear, n)
    shift = rng.uniform(-config.shift_px, config.shift_px, (n, 2))
    # Forward map (digit -> output) = rotation @ shear @ zoom; resampling needs
    # the inverse, from each output pixel back to where it comes from.
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear_m = np.zeros((n, 2, 2))
    shear_m[:, 0, 0] = 1.0
    shear_m[:, 1, 1] = 1.0
    shear_m[:, 1, 0] = shear  # (row, col): col += shear * row
    zoom = np.zeros((n, 2, 2))
    zoom[:, 0, 0] = scale / np.sqrt(aspect)
    zoom[:, 1, 1] = scale * np.sqrt(aspect)
    inverse = np.linalg.inv(rotation @ shear_m @ zoom).astype(np.float32)

    centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0
    grid_r, grid_c = np.meshgrid(
        np.arange(height, dtype=np.float32) - centre_r,
        np.arange(width, dtype=np.float32) - centre_c,
        indexing="ij",
    )
    out_r = grid_r[None] - shift[:, 0, None, None].astype(np.float32)
    out_c = grid_c[None] - shift[:, 1, None, None].astype(np.float32)
    rows = inverse[:, 0, 0, None, None] * out_r + inverse[:, 0, 1, None, None] * out_c
    cols = inverse[:, 1, 0, None, None] * out_r + inverse[:, 1, 1, None, None] * out_c
    rows += centre_r
    cols += centre_c

    if config.elastic_px > 0:
        g = config.elastic_grid
        control = rng.normal(0.0, config.elastic_px, (2, n, g, g)).astype(np.float32)
        up_r = _interpolation_matrix(height, g)
        up_c = _interpolation_matrix(width, g)
        # A smooth field: bilinear upsampling of random control displacements.
        rows += np.einsum("ia,nab,jb->nij", up_r, control[0], up_c, optimize=True)
        cols += np.einsum("ia,nab,jb->nij", up_r, control[1], up_c, optimize=True)

    return bilinear_sample(images, rows, cols)
