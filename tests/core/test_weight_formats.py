"""Tests of core.weight_formats: bounds checked before anything is allocated.

Issue 15, items 7 and 8: a small file must not make the loader allocate what
its declared shapes imply; every refusal is a WeightsError.
"""

from __future__ import annotations

import io
import pickle
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from core.errors import WeightsError
from core.network import Network
from core.weight_formats import ArrayUnpickler, _numpy_core
from core.weights import load_network, save_network
from tests.core.conftest import write_pickle


def _params(network: Network) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in network.params().items()}


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


def test_npz_with_object_array_is_refused(
    tmp_path: Path, tiny_network: Network
) -> None:
    params: dict[str, np.ndarray] = dict(tiny_network.params())
    params["W1"] = np.array([{"a": 1}], dtype=object)
    path = tmp_path / "w.npz"
    np.savez(path, **params)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match=r"W1\.npy: object arrays are refused"):
        load_network(path)


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


def test_truncated_npz_is_refused(tmp_path: Path, tiny_network: Network) -> None:
    path = tmp_path / "w.npz"
    save_network(tiny_network, path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=r"not a valid \.npz"):
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
    array, _ = ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    assert array.shape == (100,)
    with pytest.raises(WeightsError, match="more than its data could hold"):
        ArrayUnpickler(io.BytesIO(data), budget=399).load()


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
