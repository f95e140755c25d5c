"""Readers of the two weight-file formats, bounded before anything is allocated.

* The book's ``sample_weight.pkl`` is a pickle, and pickle can run arbitrary
  code: :func:`read_pickle` walks its opcodes first (``pickletools``, nothing
  runs), then loads it with :class:`ArrayUnpickler`, which resolves only the
  handful of NumPy globals an array pickle needs. An array pickle carries all
  of its data, so the arrays it declares may not add up to more bytes than the
  file holds.
* ``.npz`` (``numpy.savez``): :func:`read_npz` reads each member's ``.npy``
  header and checks the size it declares before reading its data; object
  arrays are refused.

Both return the arrays by name; what they must hold is :mod:`core.weights`'
business. Every failure is a :class:`WeightsError` with a one-line message.
"""

from __future__ import annotations

import codecs
import importlib
import io
import math
import pickle
import pickletools
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from core.errors import WeightsError

# The book's pickle (and ours) runs 178 opcodes; each opcode makes at most one small object,
# so this caps what a pickle can build besides its (budgeted) arrays.
MAX_PICKLE_OPCODES = 10_000
# An .npz member may be compressed: cap what its arrays declare, not the file.
MAX_NPZ_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
MAX_NPZ_MEMBERS = 64

# NumPy moved its internals from numpy.core to numpy._core in 2.0; pickles name
# whichever module wrote them. Both spellings resolve to the current module
# (importing numpy.core itself warns on NumPy 2).
_CORE_MODULES = {
    "numpy.core.multiarray": "multiarray",
    "numpy._core.multiarray": "multiarray",
    "numpy.core.numeric": "numeric",
    "numpy._core.numeric": "numeric",
}
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # Protocol 5 pickles (NumPy >= 1.16) rebuild arrays with _frombuffer.
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"),
    }
)
# Opcodes an array pickle never uses: they build arbitrary objects or fetch
# data from outside the stream.
_REFUSED_OPCODES = frozenset(
    {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "INST", "OBJ", "NEWOBJ",
     "NEWOBJ_EX", "NEXT_BUFFER", "READONLY_BUFFER"}
)  # fmt: skip


def one_line(exc: BaseException) -> str:
    """``exc`` as ``"Type: message"`` on one line, clipped to 200 characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _size_text(size: int) -> str:
    # A declared shape can multiply out to thousands of digits, more than
    # str() will convert and more than a float holds.
    if size < 10**15:
        return f"{size} bytes"
    return f"about 2^{size.bit_length() - 1} bytes"


def _numpy_core(submodule: str) -> Any:
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # NumPy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


def _plain_dtype(spec: Any, *args: Any) -> np.dtype[Any]:
    """``numpy.dtype(spec, *args)`` if it is a plain number type, else WeightsError.

    Records, sub-arrays, objects, strings and void types are refused: none
    belongs in a weights pickle, and a void type's size can be rewritten by a
    later ``BUILD`` opcode, after the arrays using it were sized.
    """
    try:
        dtype: np.dtype[Any] = np.dtype(spec, *args)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"bad dtype in weights pickle: {one_line(exc)}") from exc
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype:
        raise WeightsError(
            f"refusing dtype {dtype} in a weights pickle: weights are plain numbers"
        )
    return dtype


def _ndarray_called(*args: Any, **kwargs: Any) -> Any:
    """Stands for ``numpy.ndarray``: array pickles pass it to ``_reconstruct``.

    Calling it would allocate whatever shape the pickle names, so it refuses.
    """
    raise WeightsError("weights pickle calls numpy.ndarray directly")


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else.

    Parameters
    ----------
    file : binary file
    budget : int
        Bytes that arrays sized by a declared shape (``_reconstruct``) and
        bytes made by ``_codecs.encode`` may total: the file's size, since an
        array pickle carries all of its data.
    """

    def __init__(self, file: IO[bytes], budget: int) -> None:
        super().__init__(file)
        self._budget = budget
        # What find_class hands out; _reconstruct knows ndarray by identity.
        self._globals: dict[str, Callable[..., Any]] = {
            "_reconstruct": self._reconstruct,
            "ndarray": _ndarray_called,
            "dtype": _plain_dtype,
            "encode": self._encode,
        }

    def _spend(self, shape: Any, dtype: np.dtype[Any]) -> tuple[int, ...]:
        dims: tuple[Any, ...] = shape if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(n, int) and n >= 0 for n in dims):
            raise WeightsError(f"bad array shape in weights pickle: {shape!r:.80}")
        # Python integers: no overflow, however large the declared shape.
        size = math.prod(dims) * dtype.itemsize
        if size > self._budget:
            raise WeightsError(
                f"weights pickle declares a {dtype} array of shape {dims!r:.80} "
                f"({_size_text(size)}), more than its data could hold"
            )
        self._budget -= size
        return dims

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
        if subtype is not _ndarray_called:
            raise WeightsError("weights pickle rebuilds something other than an array")
        plain = _plain_dtype(dtype)
        return _numpy_core("multiarray")._reconstruct(
            np.ndarray, self._spend(shape, plain), plain
        )

    def _encode(self, text: Any, encoding: str = "utf-8") -> bytes:
        data = codecs.encode(text, encoding)
        if not isinstance(data, bytes):
            raise WeightsError(f"weights pickle encodes to {type(data).__name__}")
        self._spend((len(data),), np.dtype(np.uint8))
        return data

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise WeightsError(
                f"refusing to unpickle global {module}.{name}: a weights pickle may "
                f"only reference NumPy array reconstruction"
            )
        if name in self._globals:
            return self._globals[name]
        return getattr(_numpy_core(_CORE_MODULES[module]), name)

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing to unpickle a persistent id")


def _check_opcodes(data: bytes) -> None:
    """Walk the pickle's opcodes without running them (``pickletools``)."""
    try:
        for count, (opcode, _, _) in enumerate(pickletools.genops(data), start=1):
            if count > MAX_PICKLE_OPCODES:
                raise WeightsError(
                    f"weights pickle has more than {MAX_PICKLE_OPCODES} opcodes"
                )
            if opcode.name in _REFUSED_OPCODES:
                raise WeightsError(f"refusing pickle opcode {opcode.name}")
    except WeightsError:
        raise
    except Exception as exc:  # pickletools raises ValueError and others
        raise WeightsError(f"not a valid weights pickle: {one_line(exc)}") from exc


def read_pickle(data: bytes) -> dict[str, Any]:
    """The dict a weights pickle holds, read within the file's own size.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    dict
        As pickled: arrays by name, for :mod:`core.weights` to check.

    Raises
    ------
    WeightsError
        Refused globals or opcodes, declared arrays larger than the file,
        too many opcodes, a corrupt or truncated pickle, not a dict.
    """
    _check_opcodes(data)
    try:
        obj = ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    except WeightsError:
        raise
    except RecursionError as exc:
        raise WeightsError("weights pickle is nested too deeply") from exc
    except Exception as exc:  # truncated or corrupt pickles raise many types
        raise WeightsError(f"not a valid weights pickle: {one_line(exc)}") from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"weights pickle must hold a dict, got {type(obj).__name__}")
    return obj


def _read_npy(member: IO[bytes], name: str, budget: int) -> NDArray[Any]:
    """One ``.npy`` member: header first, then exactly the data it declares."""
    version = npy_format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy_format.read_array_header_2_0(member)
    else:
        raise WeightsError(f"{name}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise WeightsError(f"{name}: object arrays are refused (dtype {dtype})")
    size = math.prod(shape) * dtype.itemsize
    if size > budget:
        raise WeightsError(
            f"{name}: declares a {dtype} array of shape {shape!r:.80} ({_size_text(size)}), "
            f"over the {MAX_NPZ_UNCOMPRESSED_BYTES}-byte limit of an .npz"
        )
    data = member.read(size)
    if len(data) != size:
        raise WeightsError(f"{name}: {len(data)} bytes of data, header says {size}")
    array: NDArray[Any] = np.frombuffer(data, dtype=dtype)
    return array.reshape(tuple(shape), order="F" if fortran else "C")


def read_npz(data: bytes) -> dict[str, Any]:
    """The arrays of the ``.npz`` file ``data``, each header checked before its data.

    Returns
    -------
    dict of str to ndarray
        Read-only views of each member's data.

    Raises
    ------
    WeightsError
        A corrupt archive, a member that is not ``.npy``, object arrays,
        arrays declaring more than ``MAX_NPZ_UNCOMPRESSED_BYTES`` together,
        data shorter than its header says, too many members.
    """
    budget = MAX_NPZ_UNCOMPRESSED_BYTES
    arrays: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_MEMBERS:
                raise WeightsError(
                    f".npz has {len(members)} members, over {MAX_NPZ_MEMBERS}"
                )
            for info in members:
                if not info.filename.endswith(".npy"):
                    raise WeightsError(f".npz member {info.filename!r} is not .npy")
                with archive.open(info) as member:
                    array = _read_npy(member, info.filename, budget)
                budget -= array.nbytes
                arrays[info.filename.removesuffix(".npy")] = array
    except WeightsError:
        raise
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
        # Corrupt archives, bad headers, failed CRCs, truncated deflate streams.
        raise WeightsError(f"not a valid .npz weights file: {one_line(exc)}") from exc
    return arrays
