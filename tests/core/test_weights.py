from __future__ import annotations

import io
import json
import pickle
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from core.errors import WeightsError
from core.network import Network
from core.weights import (
    _ArrayUnpickler,
    _numpy_core,
    load_network,
    load_weights,
    save_network,
    sha256_file,
)
from tests.conftest import BOOK_SHA256, PROJECT_ROOT, random_network


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
    assert loaded.network.hidden_activation == "sigmoid"
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
        b"\x80\x03cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.",
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


def test_npz_with_object_array_is_refused(
    tmp_path: Path, tiny_network: Network
) -> None:
    params: dict[str, np.ndarray] = dict(tiny_network.params())
    params["W1"] = np.array([{"a": 1}], dtype=object)
    path = tmp_path / "w.npz"
    np.savez(path, **params)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match=r"W1\.npy: object arrays are refused"):
        load_network(path)


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


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x03" + b"]" * 200_000 + b".", "more than 10000 opcodes"),
        (b"\x80\x03" + b"(" * 200_000 + b".", "more than 10000 opcodes"),
        (b"\x80\x03cnumpy\nndarray\n)\x81.", "refusing pickle opcode NEWOBJ"),
        (b"\x80\x03X\x01\x00\x00\x00aQ.", "refusing pickle opcode BINPERSID"),
        (b"\x80\x03\x82\x01.", "refusing pickle opcode EXT1"),
    ],
)
def test_pickle_opcodes_are_checked_before_anything_runs(
    tmp_path: Path, payload: bytes, message: str
) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match=message):
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


# --- bounds before allocation (issue 15, items 7 and 8) ---------------------


class _Declares:
    """Pickles as NumPy's own array rebuild, ``_reconstruct``, of a chosen shape.

    Only allowed globals: ``_reconstruct``, ``numpy.ndarray``, ``numpy.dtype``.
    """

    def __init__(self, shape: tuple[int, ...], dtype: object = "f4") -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _numpy_core("multiarray")._reconstruct,
            (np.ndarray, self.shape, self.dtype),
        )


class _CallsNdarray:
    def __reduce__(self) -> tuple[object, ...]:
        return (np.ndarray, ((784, 200_000), np.dtype("f4")))


def peak_bytes(load: Callable[[], object]) -> int:
    """Peak traced allocation while ``load`` runs (NumPy reports its arrays)."""
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError):
            load()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_Declares((784, 200_000)), "more than its data could hold"),
        (_Declares((2**40, 2**40)), "about 2"),
        (_Declares((784, 50), ("f4", (200_000,))), "refusing dtype"),
        (_Declares((1,), "V100000000"), "refusing dtype"),
        (_CallsNdarray(), "calls numpy.ndarray directly"),
    ],
    ids=["W1-784x200000", "astronomic", "subarray-dtype", "void-dtype", "ndarray()"],
)
def test_declared_shapes_are_bounded_before_allocating(
    tmp_path: Path, tiny_network: Network, obj: object, message: str
) -> None:
    params: dict[str, object] = dict(_params(tiny_network))
    params["W1"] = obj
    path = write_pickle(tmp_path / "w.pkl", params, protocol=2)
    assert path.stat().st_size < 250_000  # the book's own is 180 KB
    with pytest.raises(WeightsError, match=message):
        load_network(path)
    assert peak_bytes(lambda: load_network(path)) < 8 * 1024 * 1024


def test_a_pickle_may_rebuild_arrays_its_size_can_hold(tmp_path: Path) -> None:
    # The same rebuild as above, honest about its size, goes through: the
    # refusal above is the bound, not the path.
    data = pickle.dumps([_Declares((100,)), b"\0" * 400], protocol=3)
    array, _ = _ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    assert array.shape == (100,)
    with pytest.raises(WeightsError, match="more than its data could hold"):
        _ArrayUnpickler(io.BytesIO(data), budget=399).load()


def test_encode_cannot_multiply_one_string(tmp_path: Path) -> None:
    # Protocol 2 spells bytes as _codecs.encode(str, "latin1"); memo references
    # could call it on one 100 KB string a thousand times: 100 MB from 100 KB.
    text = "a" * 100_000
    head = b"\x80\x02c_codecs\nencode\nq\x00X" + struct.pack("<I", len(text))
    head += text.encode() + b"q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03"
    body = b"](" + b"h\x00h\x03R" * 1000 + b"e."
    path = tmp_path / "amplify.pkl"
    path.write_bytes(head + body)
    with pytest.raises(WeightsError, match="more than its data could hold"):
        load_network(path)
    assert peak_bytes(lambda: load_network(path)) < 8 * 1024 * 1024


def npy_member(shape: tuple[int, ...], descr: str = "<f4", data: bytes = b"") -> bytes:
    header = io.BytesIO()
    npy_format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return header.getvalue() + data


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"W1.npy": npy_member((784, 200_000_000))}, "over the 268435456-byte limit"),
        ({"W1.npy": npy_member((784, 50), data=b"\0" * 16)}, "header says 156800"),
        ({"W1.npy": b"\0" * 1000}, "not a valid .npz"),
        ({"W1.txt": b"hello"}, "is not .npy"),
        ({f"k{i}.npy": npy_member((0,)) for i in range(65)}, "over 64"),
    ],
    ids=["huge-header", "short-data", "no-magic", "not-npy", "too-many-members"],
)
def test_npz_headers_are_read_before_their_data(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            z.writestr(name, content)
    with pytest.raises(WeightsError, match=message):
        load_network(path)
    assert peak_bytes(lambda: load_network(path)) < 8 * 1024 * 1024


def test_truncated_npz_is_refused(tmp_path: Path, tiny_network: Network) -> None:
    path = tmp_path / "w.npz"
    save_network(tiny_network, path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=r"not a valid \.npz"):
            load_network(path)


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
