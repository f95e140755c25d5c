from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.errors import WeightsError
from core.network import Network
from core.weights import load_network, load_weights, save_network, sha256_file
from tests.conftest import BOOK_SHA256


def write_pickle(path: Path, obj: object, protocol: int = 3) -> Path:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def assert_same_params(a: Network, b: Network) -> None:
    for key, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[key])


def test_book_file_loads_unchanged(book_weights: Path) -> None:
    loaded = load_weights(book_weights)
    assert loaded.sha256 == BOOK_SHA256 == sha256_file(book_weights)
    assert loaded.format == "pickle"
    assert loaded.network.layer_sizes == (784, 50, 100, 10)
    assert all(v.dtype == np.float32 for v in loaded.network.params().values())
    assert loaded.provenance is None


class _RunsCode:
    """A pickle payload that would create a file if it were ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_malicious_pickle_is_refused_and_nothing_runs(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    path = write_pickle(tmp_path / "evil.pkl", {"W1": _RunsCode(marker)}, protocol)
    with pytest.raises(
        WeightsError, match=r"refusing to unpickle global (posix|os)\.system"
    ):
        load_network(path)
    assert not marker.exists()
    # The same payload through plain pickle does run: the test is not vacuous.
    pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x03cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",
        b"\x80\x03csubprocess\nPopen\n.",
        b"\x80\x03cnumpy\nload\n.",
    ],
)
def test_other_globals_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match="refusing to unpickle global"):
        load_network(path)


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


def test_npz_round_trip(tmp_path: Path, tiny_network: Network) -> None:
    path = tmp_path / "w.npz"
    save_network(tiny_network, path)
    loaded = load_weights(path)
    assert loaded.format == "npz"
    assert_same_params(loaded.network, tiny_network)


def test_npz_with_object_array_is_refused(
    tmp_path: Path, tiny_network: Network
) -> None:
    params: dict[str, np.ndarray] = dict(tiny_network.params())
    params["W1"] = np.array([{"a": 1}], dtype=object)
    path = tmp_path / "w.npz"
    np.savez(path, **params)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match=r"not a valid \.npz"):
        load_network(path)


def test_npz_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("W1.npy", b"\0" * (300 * 1024 * 1024))
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(WeightsError, match="expands to"):
        load_network(path)


def _params(network: Network) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in network.params().items()}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("b2"), r"missing key.*b2"),
        (lambda p: p.update(W2=np.zeros((51, 100), np.float32)), "W2 has shape"),
        (lambda p: p.update(b3=np.zeros(9, np.float32)), "b3 has shape"),
        (lambda p: p.update(W1=np.zeros((783, 50), np.float32)), "do not fit MNIST"),
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
            "must hold floats",
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


@pytest.mark.parametrize("obj", [[1, 2, 3], "W1", 42, None])
def test_not_a_dict_is_refused(tmp_path: Path, obj: object) -> None:
    with pytest.raises(WeightsError, match="must hold a dict"):
        load_network(write_pickle(tmp_path / "w.pkl", obj))


def test_truncated_file_is_refused(tmp_path: Path, weights_file: Path) -> None:
    data = weights_file.read_bytes()
    for cut in (3, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="not a valid weights pickle"):
            load_network(path)


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


def test_deeply_nested_pickle(tmp_path: Path) -> None:
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x03" + b"]" * 200_000 + b".")
    with pytest.raises(WeightsError):
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
    meta.write_text("{not json")
    assert load_weights(weights_file).provenance is None
