"""Helpers shared by the core tests: names, shapes, synthetic digits."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from core.augment import AugmentConfig
from core.network import IMAGE_SIDE

# The book's network: 784-50-100-10.
BOOK_SHAPES = {
    "W1": (784, 50),
    "b1": (50,),
    "W2": (50, 100),
    "b2": (100,),
    "W3": (100, 10),
    "b3": (10,),
}

# The activations in the order of API.md.
NAMES = [
    "identity",
    "step",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "maxout",
    "softmax",
    "gelu",
    "silu",
    "softplus",
]


NO_AUGMENT = AugmentConfig(
    rotation_deg=0.0,
    scale_min=1.0,
    scale_max=1.0,
    aspect=0.0,
    shear=0.0,
    shift_px=0.0,
    elastic_px=0.0,
)


def synthetic_digits(
    n: int, seed: int = 0, noise: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 images of 10 noisy class templates, and their labels."""
    rng = np.random.default_rng(seed)
    # Coarse 7x7 patterns blown up to 28x28: smooth enough to survive distortion.
    coarse = rng.uniform(0, 255, (10, 7, 7)) * (rng.random((10, 7, 7)) < 0.4)
    templates = np.kron(coarse, np.ones((4, 4)))
    labels = np.arange(n) % 10
    images = templates[labels] + rng.normal(0, noise, (n, IMAGE_SIDE, IMAGE_SIDE))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx(
    directory: Path, kind: str, images: np.ndarray, labels: np.ndarray
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 2051, images.shape[0], IMAGE_SIDE, IMAGE_SIDE)
    (directory / f"{kind}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header + images.tobytes())
    )
    header = struct.pack(">II", 2049, labels.shape[0])
    (directory / f"{kind}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(header + labels.tobytes())
    )


def write_pickle(path: Path, obj: object, protocol: int = 3) -> Path:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path
