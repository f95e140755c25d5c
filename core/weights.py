"""Loading and saving network weights safely.

Two formats hold the same dict of arrays ``W1, b1, W2, b2, W3, b3``:

* the book's ``sample_weight.pkl``: a pickled ``dict`` of float32 arrays. Pickle
  can run arbitrary code, so it is read through :class:`_ArrayUnpickler`, which
  resolves only the handful of NumPy globals an array pickle needs;
* ``.npz`` (``numpy.savez``), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import WeightsError
from core.network import INPUT_SIZE, NUM_CLASSES, Network

MAX_WEIGHTS_BYTES = 64 * 1024 * 1024
# An .npz member may be compressed: cap what it expands to, not only the file.
MAX_NPZ_UNCOMPRESSED_BYTES = 4 * MAX_WEIGHTS_BYTES
BOOK_KEYS = ("W1", "b1", "W2", "b2", "W3", "b3")

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


def _numpy_core(submodule: str) -> Any:
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # NumPy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise WeightsError(
                f"refusing to unpickle global {module}.{name}: a weights pickle may "
                f"only reference NumPy array reconstruction"
            )
        if module in _CORE_MODULES:
            return getattr(_numpy_core(_CORE_MODULES[module]), name)
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)

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
        return path.read_bytes()
    except OSError as exc:
        raise WeightsError(
            f"cannot read weights file {str(path)!r}: {exc.strerror}"
        ) from exc


def _load_pickle(data: bytes) -> Mapping[str, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data)).load()
    except WeightsError:
        raise
    except RecursionError as exc:
        raise WeightsError("pickle is nested too deeply") from exc
    except Exception as exc:  # truncated or corrupt pickles raise many types
        raise WeightsError(
            f"not a valid weights pickle: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"weights pickle must hold a dict, got {type(obj).__name__}")
    return obj


def _load_npz(data: bytes) -> Mapping[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
        if expanded > MAX_NPZ_UNCOMPRESSED_BYTES:
            raise WeightsError(
                f".npz expands to {expanded} bytes, over the "
                f"{MAX_NPZ_UNCOMPRESSED_BYTES}-byte limit"
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except WeightsError:
        raise
    except ValueError as exc:  # includes object arrays refused by allow_pickle=False
        raise WeightsError(f"not a valid .npz weights file: {exc}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise WeightsError(f"not a valid .npz weights file: {exc}") from exc


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
    sizes = [checked["W1"].shape[0] if checked["W1"].ndim == 2 else -1]
    for i in (1, 2, 3):
        w, b = checked[f"W{i}"], checked[f"b{i}"]
        if w.ndim != 2:
            raise WeightsError(f"W{i} must be 2-D, got shape {w.shape}")
        if w.shape[0] != sizes[-1]:
            raise WeightsError(
                f"W{i} has shape {w.shape}, expected ({sizes[-1]}, h): "
                f"shapes must chain {INPUT_SIZE} -> h1 -> h2 -> {NUM_CLASSES}"
            )
        if b.shape != (w.shape[1],):
            raise WeightsError(f"b{i} has shape {b.shape}, expected ({w.shape[1]},)")
        sizes.append(w.shape[1])
    if sizes[0] != INPUT_SIZE or sizes[-1] != NUM_CLASSES:
        raise WeightsError(
            f"layer sizes {' -> '.join(map(str, sizes))} do not fit MNIST: "
            f"expected {INPUT_SIZE} -> h1 -> h2 -> {NUM_CLASSES}"
        )
    return checked


def _provenance(path: Path, sha256: str) -> dict[str, Any] | None:
    meta_path = path.with_suffix(".json")
    try:
        if not meta_path.is_file() or meta_path.stat().st_size > 1 << 20:
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # Metadata describes one file: if the weights were swapped, it does not apply.
    if not isinstance(meta, dict) or meta.get("sha256") != sha256:
        return None
    return meta


def load_weights(path: str | Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> LoadedWeights:
    """Load and check a weights file, recording where it came from.

    Parameters
    ----------
    path : str or Path
        A book-format ``.pkl`` or an ``.npz`` with the keys ``W1 b1 W2 b2 W3 b3``.
        The format is detected from the content, not the suffix.
    max_bytes : int
        Refuse files larger than this.

    Raises
    ------
    WeightsError
        Missing or oversize file, unsafe or corrupt pickle, missing keys,
        non-float or non-finite values, shapes that do not chain 784 -> 10.
    """
    resolved = Path(path).expanduser().resolve()
    data = _read_capped(resolved, max_bytes)
    if data[:4] == b"PK\x03\x04":
        fmt, params = "npz", _load_npz(data)
    elif data[:1] == b"\x80":
        fmt, params = "pickle", _load_pickle(data)
    else:
        raise WeightsError(
            f"{str(resolved)!r} is neither a pickle (protocol 2+) nor an .npz archive"
        )
    network = Network.from_params(_check_params(params))
    sha256 = hashlib.sha256(data).hexdigest()
    return LoadedWeights(
        network=network,
        path=resolved,
        format=fmt,
        sha256=sha256,
        size=len(data),
        provenance=_provenance(resolved, sha256),
    )


def load_network(path: str | Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> Network:
    """Load a book-format ``.pkl`` or an ``.npz`` as a checked :class:`Network`.

    See :func:`load_weights` for the checks and errors.
    """
    return load_weights(path, max_bytes).network


def save_network(network: Network, path: str | Path) -> None:
    """Write ``network`` in the book's format: a pickled dict of float32 arrays.

    Parameters
    ----------
    network : Network
        A 3-layer network (keys ``W1 b1 W2 b2 W3 b3``).
    path : str or Path
        ``.npz`` writes ``numpy.savez``; anything else the book's pickle.
    """
    params: dict[str, Any] = {
        key: np.array(value, dtype=np.float32)
        for key, value in network.params().items()
    }
    if tuple(params) != BOOK_KEYS:
        raise WeightsError(
            f"the book's format holds exactly {', '.join(BOOK_KEYS)}, "
            f"this network has {', '.join(params)}"
        )
    target = Path(path)
    if target.suffix == ".npz":
        with target.open("wb") as f:
            np.savez(f, **params)
        return
    with target.open("wb") as f:
        # Protocol 3, as the book's file: readable by any Python 3 and NumPy.
        pickle.dump(params, f, protocol=3)
