"""Reader for the standard MNIST IDX files.

Images are ``*-idx3-ubyte``, labels ``*-idx1-ubyte``.

The IDX format is a big-endian header (magic number, then one uint32 per
dimension) followed by the raw uint8 data; the files are usually gzipped.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
# Refuse to inflate more than this from one file (the training set is 47 MB).
MAX_IDX_BYTES = 512 * 1024 * 1024


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as f:
            data: bytes = f.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from exc
    if len(data) > MAX_IDX_BYTES:
        raise DataError(f"{str(path)!r} is larger than {MAX_IDX_BYTES} bytes")
    return data


def _parse(data: bytes, magic: int, ndim: int, name: str) -> NDArray[np.uint8]:
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is shorter than the IDX header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{name}: magic number {found}, expected {magic}")
    if len(data) < header:
        raise DataError(f"{name}: {len(data)} bytes is shorter than the IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{name}: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_images(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX3 image file, gzipped or not.

    Returns
    -------
    ndarray of shape (n_images, rows, cols), uint8
        Pixels 0 (background) to 255 (ink), read-only.

    Raises
    ------
    DataError
        Unreadable file, wrong magic number, or a size that does not match the header.
    """
    p = Path(path)
    return _parse(_read(p), IMAGES_MAGIC, 3, p.name)


def read_labels(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX1 label file, gzipped or not.

    Returns
    -------
    ndarray of shape (n_labels,), uint8
    """
    p = Path(path)
    labels = _parse(_read(p), LABELS_MAGIC, 1, p.name)
    if labels.size and labels.max() > 9:
        raise DataError(f"{p.name}: labels must be digits 0-9, found {labels.max()}")
    return labels


def idx_path(directory: str | Path, stem: str) -> Path:
    """``directory/stem.gz`` or ``directory/stem``, whichever exists (DataError if neither)."""
    directory = Path(directory)
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"no {stem}[.gz] in {str(directory)!r}")


def load_mnist(
    directory: str | Path, kind: str = "t10k"
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Load one split of MNIST from its standard file names.

    Parameters
    ----------
    directory : str or Path
        Holds ``{kind}-images-idx3-ubyte[.gz]`` and ``{kind}-labels-idx1-ubyte[.gz]``.
    kind : {"t10k", "train"}
        The test split (10,000 images) or the training split (60,000).

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), uint8
    """
    if kind not in ("t10k", "train"):
        raise DataError(f"kind must be 't10k' or 'train', got {kind!r}")
    d = Path(directory)
    images = read_images(idx_path(d, f"{kind}-images-idx3-ubyte"))
    labels = read_labels(idx_path(d, f"{kind}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images.shape[0]} images but {labels.shape[0]} labels in {str(d)!r}"
        )
    return images, labels


def to_float(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Flatten uint8 images to float32 rows in [0, 1].

    The same values as the book's ``load_mnist(normalize=True)``.

    Returns
    -------
    ndarray of shape (n, rows * cols), float32
    """
    flat = images.reshape(images.shape[0], -1).astype(np.float32)
    flat /= 255.0
    return flat
