"""Shared fixtures: reference data location, small networks, weight files."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from core.network import Network
from core.weights import save_network

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(
    os.environ.get("MNIST_SERVE_DATA", PROJECT_ROOT.parent / "shared" / "data")
)
BOOK_WEIGHTS = DATA_DIR / "book" / "sample_weight.pkl"
MNIST_DIR = DATA_DIR / "mnist"
REQUIRE_DATA = os.environ.get("MNIST_SERVE_REQUIRE_DATA") == "1"
BOOK_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"


def pytest_configure(config: pytest.Config) -> None:
    # gRPC's default port (8001) is one port for the whole machine: apps and
    # servers made by tests leave it off unless a test asks for a free port.
    os.environ.setdefault("MNIST_SERVE_GRPC_PORT", "0")


def require(path: Path) -> Path:
    """Skip (or fail under MNIST_SERVE_REQUIRE_DATA=1) when reference data is absent."""
    if not path.exists():
        message = f"reference data {path} is absent (set MNIST_SERVE_DATA)"
        if REQUIRE_DATA:
            pytest.fail(message + " and MNIST_SERVE_REQUIRE_DATA=1")
        pytest.skip(message)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_network(
    rng: np.random.Generator,
    sizes: tuple[int, int, int, int] = (784, 50, 100, 10),
    hidden_activation: str = "sigmoid",
) -> Network:
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out))
        params[f"W{i}"] = w.astype(np.float32)
    for i, n in enumerate(sizes[1:], start=1):
        params[f"b{i}"] = rng.normal(0, 0.1, n).astype(np.float32)
    return Network.from_params(params, hidden_activation)


@pytest.fixture
def tiny_network(rng: np.random.Generator) -> Network:
    """Random weights with the book's shapes."""
    return random_network(rng)


@pytest.fixture
def weights_file(tmp_path: Path, tiny_network: Network) -> Path:
    path = tmp_path / "weights.pkl"
    save_network(tiny_network, path)
    return path


@pytest.fixture(scope="session")
def book_weights() -> Path:
    return require(BOOK_WEIGHTS)


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    from core.mnist import load_mnist

    require(MNIST_DIR)
    return load_mnist(MNIST_DIR, "t10k")
