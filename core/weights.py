"""Loading and saving network weights, safely and within stated bounds.

Two formats hold the same arrays ``W1, b1, W2, b2, W3, b3``:

* the book's ``sample_weight.pkl``: a pickled ``dict`` of float32 arrays. Pickle
  can run arbitrary code, so it is read through :class:`_ArrayUnpickler`, which
  resolves only the handful of NumPy globals an array pickle needs;
* ``.npz`` (``numpy.savez``): each member's ``.npy`` header is read and checked
  before its data, and object arrays are refused.

The hidden activation is recorded with the weights: an ``.npz`` may hold an
``activation`` entry (a 0-d unicode array); the book's pickle records none and
means sigmoid. A caller that knows better (a ``model.json``) passes
``hidden_activation``.

Memory is bounded before anything is allocated: the file by ``max_bytes``, every
array by the size its declared shape and dtype imply. A pickle must carry its
arrays' data, so together they may not declare more bytes than the file holds;
an ``.npz`` member may be compressed, so its arrays may declare up to
``MAX_NPZ_UNCOMPRESSED_BYTES``. Every failure is a :class:`WeightsError` with
a one-line message.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import io
import json
import math
import pickle
import pickletools
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from core.errors import WeightsError
from core.network import HIDDEN_ACTIVATIONS, INPUT_SIZE, NUM_CLASSES, Network

MAX_WEIGHTS_BYTES = 64 * 1024 * 1024
# An .npz member may be compressed: cap what its arrays declare, not only the file.
MAX_NPZ_UNCOMPRESSED_BYTES = 4 * MAX_WEIGHTS_BYTES
MAX_PROVENANCE_BYTES = 1024 * 1024
# The book's pickle runs 171 opcodes; each opcode makes at most one small object,
# so this caps what a pickle can build besides its (budgeted) arrays.
MAX_PICKLE_OPCODES = 10_000
MAX_NPZ_MEMBERS = 64
BOOK_KEYS = ("W1", "b1", "W2", "b2", "W3", "b3")
ACTIVATION_KEY = "activation"
BOOK_ACTIVATION = "sigmoid"

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


def _one_line(exc: BaseException) -> str:
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
        raise WeightsError(f"bad dtype in weights pickle: {_one_line(exc)}") from exc
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


class _ArrayUnpickler(pickle.Unpickler):
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


@dataclass(frozen=True, slots=True)
class LoadedWeights:
    """A network and what is known about the file it came from.

    Attributes
    ----------
    network : Network
    path : Path
        The resolved path of the file.
    format : {"pickle", "npz"}
    sha256 : str
        Hex digest of the file's bytes.
    size : int
        File size in bytes.
    provenance : dict or None
        The metadata file next to the weights (``<stem>.json``) when it exists
        and names this file's sha256, else None.
    """

    network: Network
    path: Path
    format: str
    sha256: str
    size: int
    provenance: dict[str, Any] | None


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_capped(path: Path, max_bytes: int) -> bytes:
    try:
        if not path.is_file():
            raise WeightsError(
                f"weights file {str(path)!r} does not exist or is not a file"
            )
        size = path.stat().st_size
        if size > max_bytes:
            raise WeightsError(
                f"weights file {str(path)!r} is {size} bytes, "
                f"over the {max_bytes}-byte limit"
            )
        with path.open("rb") as f:
            # read(n) allocates n bytes up front: the size, not the limit.
            data = f.read(size + 1)
    except OSError as exc:
        raise WeightsError(
            f"cannot read weights file {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if len(data) != size:
        raise WeightsError(f"weights file {str(path)!r} changed while being read")
    return data


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
        raise WeightsError(f"not a valid weights pickle: {_one_line(exc)}") from exc


def _load_pickle(data: bytes) -> Mapping[str, Any]:
    _check_opcodes(data)
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    except WeightsError:
        raise
    except RecursionError as exc:
        raise WeightsError("weights pickle is nested too deeply") from exc
    except Exception as exc:  # truncated or corrupt pickles raise many types
        raise WeightsError(f"not a valid weights pickle: {_one_line(exc)}") from exc
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


def _load_npz(data: bytes) -> dict[str, Any]:
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
        raise WeightsError(f"not a valid .npz weights file: {_one_line(exc)}") from exc
    return arrays


def _recorded_activation(params: dict[str, Any]) -> str | None:
    """Pop the ``activation`` entry of an .npz, checked; None when absent."""
    value = params.pop(ACTIVATION_KEY, None)
    if value is None:
        return None
    if not (isinstance(value, np.ndarray) and value.dtype.kind == "U"):
        raise WeightsError(f"{ACTIVATION_KEY} must be a string, got {value!r:.80}")
    name = str(value.reshape(-1)[0]) if value.size == 1 else ""
    if name not in HIDDEN_ACTIVATIONS:
        raise WeightsError(
            f"{ACTIVATION_KEY} must be one of {', '.join(HIDDEN_ACTIVATIONS)}, "
            f"got {name!r:.80}"
        )
    return name


def _check_params(params: Mapping[str, Any]) -> dict[str, NDArray[np.float32]]:
    """Check the book's keys, dtypes, shapes and values; return float32 copies."""
    if not all(isinstance(key, str) for key in params):
        raise WeightsError("weights dict keys must be strings")
    missing = [key for key in BOOK_KEYS if key not in params]
    if missing:
        raise WeightsError(
            f"missing key(s) {', '.join(missing)}; expected {', '.join(BOOK_KEYS)}, "
            f"found {', '.join(sorted(params)) or 'none'}"
        )
    checked: dict[str, NDArray[np.float32]] = {}
    for key in BOOK_KEYS:
        value = params[key]
        if not isinstance(value, np.ndarray):
            raise WeightsError(
                f"{key} must be a NumPy array, got {type(value).__name__}"
            )
        if value.dtype.kind != "f":
            raise WeightsError(f"{key} must hold floats, got dtype {value.dtype}")
        if not np.isfinite(value).all():
            raise WeightsError(f"{key} holds NaN or infinite values")
        checked[key] = value.astype(np.float32)
    sizes = [INPUT_SIZE]
    for i in (1, 2, 3):
        w, b = checked[f"W{i}"], checked[f"b{i}"]
        if w.ndim != 2:
            raise WeightsError(f"W{i} must be 2-D, got shape {w.shape}")
        if w.shape[0] != sizes[-1]:
            raise WeightsError(
                f"W{i} has shape {w.shape}, expected ({sizes[-1]}, h): shapes "
                f"must chain {INPUT_SIZE} -> h1 -> h2 -> {NUM_CLASSES} (MNIST)"
            )
        if b.shape != (w.shape[1],):
            raise WeightsError(f"b{i} has shape {b.shape}, expected ({w.shape[1]},)")
        sizes.append(w.shape[1])
    if sizes[-1] != NUM_CLASSES:
        raise WeightsError(
            f"layer sizes {' -> '.join(map(str, sizes))} do not fit MNIST: "
            f"expected {INPUT_SIZE} -> h1 -> h2 -> {NUM_CLASSES}"
        )
    return checked


def _provenance(path: Path, sha256: str) -> dict[str, Any] | None:
    """The metadata next to ``path`` if it describes this file, else None.

    Raises
    ------
    WeightsError
        The metadata file exists but cannot be read as JSON.
    """
    meta_path = path.with_suffix(".json")
    try:
        if not meta_path.is_file():
            return None
        if meta_path.stat().st_size > MAX_PROVENANCE_BYTES:
            raise WeightsError(
                f"provenance file {str(meta_path)!r} is over "
                f"{MAX_PROVENANCE_BYTES} bytes"
            )
        meta = json.loads(meta_path.read_bytes())
    except WeightsError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError: not UTF-8 or not JSON; RecursionError: nested too deeply.
        raise WeightsError(
            f"cannot read provenance file {str(meta_path)!r}: {_one_line(exc)}"
        ) from exc
    # Metadata describes one file: if the weights were swapped, it does not apply.
    if not isinstance(meta, dict) or meta.get("sha256") != sha256:
        return None
    return meta


def _resolve(path: str | Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop; no home directory
        raise WeightsError(f"cannot resolve {str(path)!r}: {_one_line(exc)}") from exc


def _hidden_activation(recorded: str | None, given: str | None, fmt: str) -> str:
    if given is not None and given not in HIDDEN_ACTIVATIONS:
        raise WeightsError(
            f"unsupported hidden activation {given!r}; "
            f"supported: {', '.join(HIDDEN_ACTIVATIONS)}"
        )
    if recorded is not None and given is not None and recorded != given:
        raise WeightsError(
            f"the {fmt} file records hidden activation {recorded!r}, "
            f"but {given!r} was asked for"
        )
    return recorded or given or BOOK_ACTIVATION


def _parse(
    data: bytes, path: Path, hidden_activation: str | None
) -> tuple[str, Network]:
    """The file's format and the checked network it holds."""
    recorded = None
    if data[:4] == b"PK\x03\x04":
        fmt, params = "npz", _load_npz(data)
        recorded = _recorded_activation(params)
    elif data[:1] == b"\x80":
        fmt, params = "pickle", dict(_load_pickle(data))
    else:
        raise WeightsError(
            f"{str(path)!r} is neither a pickle (protocol 2+) nor an .npz archive"
        )
    activation = _hidden_activation(recorded, hidden_activation, fmt)
    return fmt, Network.from_params(_check_params(params), activation)


def load_weights(
    path: str | Path,
    max_bytes: int = MAX_WEIGHTS_BYTES,
    hidden_activation: str | None = None,
) -> LoadedWeights:
    """Load and check a weights file, recording where it came from.

    Parameters
    ----------
    path : str or Path
        A book-format ``.pkl`` or an ``.npz`` with the keys ``W1 b1 W2 b2 W3 b3``
        (and optionally ``activation``). The format is detected from the
        content, not the suffix.
    max_bytes : int
        Refuse files larger than this.
    hidden_activation : {"sigmoid", "relu", "tanh"} or None
        What the weights were trained with, when known from elsewhere (a
        ``model.json``). None: what the file records, else sigmoid.

    Raises
    ------
    WeightsError
        Missing, unreadable or oversize file; unsafe or corrupt pickle; arrays
        declaring more than the bounds; missing keys; non-float or non-finite
        values; shapes that do not chain 784 -> h1 -> h2 -> 10; an activation
        that contradicts the file's; unreadable provenance.
    """
    resolved = _resolve(path)
    try:
        data = _read_capped(resolved, max_bytes)
        fmt, network = _parse(data, resolved, hidden_activation)
    except MemoryError as exc:  # within the bounds, but the machine has less
        raise WeightsError(
            f"not enough memory to load {str(resolved)!r}: {_one_line(exc)}"
        ) from exc
    sha256 = hashlib.sha256(data).hexdigest()
    return LoadedWeights(
        network=network,
        path=resolved,
        format=fmt,
        sha256=sha256,
        size=len(data),
        provenance=_provenance(resolved, sha256),
    )


def load_network(
    path: str | Path,
    max_bytes: int = MAX_WEIGHTS_BYTES,
    hidden_activation: str | None = None,
) -> Network:
    """Load a book-format ``.pkl`` or an ``.npz`` as a checked :class:`Network`.

    See :func:`load_weights` for the parameters, checks and errors.
    """
    return load_weights(path, max_bytes, hidden_activation).network


def save_network(network: Network, path: str | Path) -> None:
    """Write ``network``'s parameters, and for ``.npz`` its hidden activation.

    Parameters
    ----------
    network : Network
    path : str or Path
        ``.npz`` writes ``numpy.savez`` with an ``activation`` entry; anything
        else the book's pickle (protocol 3), which has no place for the
        activation and so only takes sigmoid networks.

    Raises
    ------
    WeightsError
        A non-sigmoid network for the book's pickle format.
    """
    params: dict[str, Any] = {
        key: np.array(value, dtype=np.float32)
        for key, value in network.params().items()
    }
    target = Path(path)
    if target.suffix == ".npz":
        params[ACTIVATION_KEY] = np.array(network.hidden_activation)
        with target.open("wb") as f:
            np.savez(f, **params)
        return
    if network.hidden_activation != BOOK_ACTIVATION:
        raise WeightsError(
            f"the book's .pkl format records no activation and means sigmoid; "
            f"save a {network.hidden_activation} network as .npz"
        )
    with target.open("wb") as f:
        # Protocol 3, as the book's file: readable by any Python 3 and NumPy.
        pickle.dump(params, f, protocol=3)
