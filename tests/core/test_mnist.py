from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from core.mnist import load_mnist, read_images, read_labels, to_float


def idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, labels.shape[0]) + labels.astype(np.uint8).tobytes()


@pytest.fixture
def small_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(
        0, 10, 7, dtype=np.uint8
    )


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray], gz: bool
) -> None:
    images, labels = small_set
    for name, data in (
        ("t10k-images-idx3-ubyte", idx_images(images)),
        ("t10k-labels-idx1-ubyte", idx_labels(labels)),
    ):
        if gz:
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (tmp_path / name).write_bytes(data)
    got_images, got_labels = load_mnist(tmp_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8


def test_bad_magic(tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]) -> None:
    path = tmp_path / "x"
    path.write_bytes(idx_labels(small_set[1]))
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        read_images(path)
    path.write_bytes(idx_images(small_set[0]))
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        read_labels(path)


@pytest.mark.parametrize("cut", [0, 3, 15, 16 + 783])
def test_truncated(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray], cut: int
) -> None:
    path = tmp_path / "x"
    path.write_bytes(idx_images(small_set[0])[:cut])
    with pytest.raises(DataError):
        read_images(path)


def test_trailing_bytes_and_bad_labels(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    path = tmp_path / "x"
    path.write_bytes(idx_images(small_set[0]) + b"\0")
    with pytest.raises(DataError, match="header says shape"):
        read_images(path)
    path.write_bytes(idx_labels(np.array([1, 12])))
    with pytest.raises(DataError, match="digits 0-9"):
        read_labels(path)


def test_truncated_gzip(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_images(small_set[0]))[:-20])
    with pytest.raises(DataError, match="cannot read"):
        read_images(path)


def test_missing_files_and_mismatch(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="kind must be"):
        load_mnist(tmp_path, "valid")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_images(small_set[0]))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_labels(small_set[1][:5]))
    with pytest.raises(DataError, match="7 images but 5 labels"):
        load_mnist(tmp_path, "train")


def test_to_float_is_the_books_normalisation(
    small_set: tuple[np.ndarray, np.ndarray],
) -> None:
    x = to_float(small_set[0])
    assert x.shape == (7, 784)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(
        x, small_set[0].reshape(7, 784).astype(np.float32) / np.float32(255.0)
    )


def test_real_test_set(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist_test
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
