"""Tests of core.weights: what a weights file must hold, the activation, provenance."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import WeightsError
from core.network import Network
from core.weights import (
    load_network,
    load_weights,
    save_network,
    sha256_file,
)
from tests.conftest import BOOK_SHA256, PROJECT_ROOT, random_network
from tests.core.conftest import write_pickle


def assert_same_params(a: Network, b: Network) -> None:
    for key, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[key])


def test_book_file_loads_unchanged(book_weights: Path) -> None:
    loaded = load_weights(book_weights)
    assert loaded.sha256 == BOOK_SHA256 == sha256_file(book_weights)
    assert loaded.format == "pickle"
    assert loaded.network.layer_sizes == (784, 50, 100, 10)
    assert all(v.dtype == np.float32 for v in loaded.network.params().values())
    assert loaded.network.hidden_activation == "sigmoid"
    assert loaded.provenance is None


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_save_load_identity_any_protocol(
    tmp_path: Path, tiny_network: Network, protocol: int
) -> None:
    save_network(tiny_network, tmp_path / "w.pkl")
    loaded = load_network(tmp_path / "w.pkl")
    assert_same_params(loaded, tiny_network)
    params = {k: np.array(v) for k, v in tiny_network.params().items()}
    again = load_network(write_pickle(tmp_path / f"p{protocol}.pkl", params, protocol))
    assert_same_params(again, tiny_network)


def test_saved_file_is_the_books_format(tmp_path: Path, tiny_network: Network) -> None:
    path = tmp_path / "w.pkl"
    save_network(tiny_network, path)
    with path.open("rb") as f:
        raw = pickle.load(f)  # our own file, written just above
    assert isinstance(raw, dict)
    assert list(raw) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(v.dtype == np.float32 for v in raw.values())
    assert path.read_bytes()[:2] == b"\x80\x03"


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_npz_round_trip_records_the_activation(
    tmp_path: Path, rng: np.random.Generator, activation: str
) -> None:
    network = random_network(rng, hidden_activation=activation)
    path = tmp_path / "w.npz"
    save_network(network, path)
    loaded = load_weights(path)
    assert loaded.format == "npz"
    assert loaded.network.hidden_activation == activation
    assert_same_params(loaded.network, network)
    # Plain NumPy reads it too, without pickle: a 0-d unicode array.
    with np.load(path, allow_pickle=False) as npz:
        assert npz["activation"].shape == ()
        assert str(npz["activation"]) == activation


def _params(network: Network) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in network.params().items()}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("b2"), r"missing key.*b2"),
        (lambda p: p.update(W2=np.zeros((51, 100), np.float32)), "W2 has shape"),
        (lambda p: p.update(b3=np.zeros(9, np.float32)), "b3 has shape"),
        (
            lambda p: p.update(W1=np.zeros((783, 50), np.float32)),
            r"expected \(784, h\)",
        ),
        (
            lambda p: p.update(
                W3=np.zeros((100, 11), np.float32), b3=np.zeros(11, np.float32)
            ),
            "do not fit MNIST",
        ),
        (lambda p: p.update(W1=np.zeros(784 * 50, np.float32)), "must be 2-D"),
        (lambda p: p["b1"].__setitem__(3, np.nan), "b1 holds NaN"),
        (lambda p: p["W3"].__setitem__((0, 0), np.inf), "W3 holds NaN or infinite"),
        (lambda p: p.update(W1=np.zeros((784, 50), np.int32)), "must hold floats"),
        (
            lambda p: p.update(b1=np.array([None] * 50, dtype=object)),
            "refusing dtype object",
        ),
        (lambda p: p.update(b1=[0.0] * 50), "must be a NumPy array"),
    ],
)
def test_bad_contents_are_refused(
    tmp_path: Path, tiny_network: Network, mutate, message: str
) -> None:
    params = _params(tiny_network)
    mutate(params)
    with pytest.raises(WeightsError, match=message):
        load_network(write_pickle(tmp_path / "w.pkl", params))


def test_oversize_and_missing_and_garbage(tmp_path: Path, weights_file: Path) -> None:
    with pytest.raises(WeightsError, match="over the 1000-byte limit"):
        load_network(weights_file, max_bytes=1000)
    with pytest.raises(WeightsError, match="does not exist"):
        load_network(tmp_path / "nope.pkl")
    with pytest.raises(WeightsError, match="does not exist or is not a file"):
        load_network(tmp_path)
    garbage = tmp_path / "g.pkl"
    garbage.write_bytes(b"hello world")
    with pytest.raises(WeightsError, match="neither a pickle"):
        load_network(garbage)


def test_big_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    with path.open("wb") as f:
        f.seek(65 * 1024 * 1024)
        f.write(b"\0")
    with pytest.raises(WeightsError, match="over the 67108864-byte limit"):
        load_network(path)


def test_provenance_is_read_only_for_the_matching_file(
    tmp_path: Path, weights_file: Path
) -> None:
    meta = weights_file.with_suffix(".json")
    meta.write_text(
        json.dumps({"sha256": sha256_file(weights_file), "test_accuracy": 0.98})
    )
    assert load_weights(weights_file).provenance == {
        "sha256": sha256_file(weights_file),
        "test_accuracy": 0.98,
    }
    meta.write_text(json.dumps({"sha256": "0" * 64}))
    assert load_weights(weights_file).provenance is None
    meta.write_text(json.dumps(["not", "a", "dict"]))
    assert load_weights(weights_file).provenance is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"\xff\xfe{}", "cannot read provenance"),
        (b"[" * 200_000 + b"]" * 200_000, "RecursionError"),
        (b" " * (1024 * 1024 + 1), "over 1048576 bytes"),
    ],
    ids=["not-json", "not-utf8", "nested-200k-deep", "too-large"],
)
def test_unreadable_provenance_is_a_one_line_weights_error(
    weights_file: Path, content: bytes, message: str
) -> None:
    weights_file.with_suffix(".json").write_bytes(content)
    with pytest.raises(WeightsError, match=message) as caught:
        load_weights(weights_file)
    assert "\n" not in caught.value.message


def test_the_books_pickle_holds_only_sigmoid_networks(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    relu = random_network(rng, hidden_activation="relu")
    with pytest.raises(WeightsError, match=r"save a relu network as \.npz"):
        save_network(relu, tmp_path / "x.pkl")
    assert not (tmp_path / "x.pkl").exists()


@pytest.mark.parametrize(
    ("recorded", "asked", "expected"),
    [
        (None, None, "sigmoid"),
        (None, "tanh", "tanh"),
        ("relu", None, "relu"),
        ("relu", "relu", "relu"),
        ("relu", "tanh", "records hidden activation 'relu'"),
        (None, "swish", "unsupported hidden activation 'swish'"),
        ("swish", None, "activation must be one of sigmoid, relu, tanh"),
        (7, None, "activation must be a string"),
    ],
)
def test_hidden_activation_from_the_file_or_the_caller(
    tmp_path: Path,
    tiny_network: Network,
    recorded: object,
    asked: str | None,
    expected: str,
) -> None:
    params: dict[str, object] = dict(_params(tiny_network))
    if recorded is not None:
        params["activation"] = np.array(recorded)
    path = tmp_path / "w.npz"
    np.savez(path, **params)  # type: ignore[arg-type]
    if expected in ("sigmoid", "relu", "tanh"):
        assert load_network(path, hidden_activation=asked).hidden_activation == expected
    else:
        with pytest.raises(WeightsError, match=re.escape(expected)):
            load_network(path, hidden_activation=asked)


def test_the_books_pickle_is_sigmoid_unless_told(weights_file: Path) -> None:
    assert load_network(weights_file).hidden_activation == "sigmoid"
    # A model.json may say how a .pkl was trained.
    assert load_network(weights_file, hidden_activation="relu").hidden_activation == (
        "relu"
    )


def test_symlink_loop_is_a_weights_error(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").symlink_to(tmp_path / "b.pkl")
    (tmp_path / "b.pkl").symlink_to(tmp_path / "a.pkl")
    with pytest.raises(WeightsError, match=r"cannot resolve .*a\.pkl") as caught:
        load_network(tmp_path / "a.pkl")
    assert "\n" not in caught.value.message


_LOAD_WITH_LITTLE_MEMORY = """
import resource, sys
from core.errors import WeightsError
from core.weights import load_weights
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 16 * 2**20, resource.RLIM_INFINITY))
try:
    load_weights(sys.argv[1])
except WeightsError as exc:
    print(exc.message)
"""


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs Linux /proc and RLIMIT_AS"
)
def test_out_of_memory_is_a_weights_error(tmp_path: Path) -> None:
    # A well-formed 784-8000-100-10 network (28 MB) in a process allowed 16 MB
    # more address space than it has: a real MemoryError, not a mock.
    rng = np.random.default_rng(0)
    network = random_network(rng, (784, 8000, 100, 10))
    path = tmp_path / "big.npz"
    save_network(network, path)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITH_LITTLE_MEMORY, str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("not enough memory to load"), result.stdout
