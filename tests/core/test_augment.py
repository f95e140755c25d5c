"""Tests of core.augment: seeded, range-keeping distortions and bilinear sampling."""

from __future__ import annotations

import numpy as np

from core.augment import AugmentConfig, bilinear_sample, distort
from tests.core.conftest import NO_AUGMENT, synthetic_digits


def test_distort_keeps_shape_dtype_range_and_is_seeded() -> None:
    images = synthetic_digits(20)[0].astype(np.float32) / np.float32(255)
    a = distort(images, np.random.default_rng(5), AugmentConfig())
    b = distort(images, np.random.default_rng(5), AugmentConfig())
    assert a.shape == images.shape
    assert a.dtype == np.float32
    assert a.min() >= 0.0
    assert a.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images)


def test_distort_without_distortion_is_identity() -> None:
    images = synthetic_digits(5)[0].astype(np.float32) / np.float32(255)
    out = distort(images, np.random.default_rng(0), NO_AUGMENT)
    np.testing.assert_allclose(out, images, atol=1e-6)


def test_bilinear_sample_shifts_and_fills_with_zero() -> None:
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    rows, cols = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij")
    out = bilinear_sample(image, rows[None].astype(np.float32), cols[None] + 1.0)
    np.testing.assert_array_equal(out[0, :, :3], image[0, :, 1:])
    np.testing.assert_array_equal(out[0, :, 3], 0.0)
    half = bilinear_sample(image, rows[None], cols[None] + 0.5)
    np.testing.assert_allclose(half[0, :, 0], (image[0, :, 0] + image[0, :, 1]) / 2)
