"""Loading and saving network weights: what a weights file must hold.

Two formats hold the same arrays ``W1, b1, W2, b2, W3, b3``: the book's
``sample_weight.pkl`` (a pickled ``dict`` of float32 arrays) and ``.npz``
(``numpy.savez``). :mod:`core.weight_formats` reads either within stated
bounds; this module checks what they hold (keys, dtypes, shapes that chain
784 -> h1 -> h2 -> 10, finite values), builds the :class:`Network`, and reads
the provenance file next to the weights.

The hidden activation is recorded with the weights: an ``.npz`` may hold an
``activation`` entry (a 0-d unicode array); the book's pickle records none and
means sigmoid. A caller that knows better (a ``model.json``) passes
``hidden_activation``. Every failure is a :class:`WeightsError` with a
one-line message.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import WeightsError
from core.network import HIDDEN_ACTIVATIONS, INPUT_SIZE, NUM_CLASSES, Network
from core.weight_formats import one_line, read_npz, read_pickle

MAX_WEIGHTS_BYTES = 64 * 1024 * 1024
MAX_PROVENANCE_BYTES = 1024 * 1024
BOOK_KEYS = ("W1", "b1", "W2", "b2", "W3", "b3")
ACTIVATION_KEY = "activation"
BOOK_ACTIVATION = "sigmoid"


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
            f"cannot read provenance file {str(meta_path)!r}: {one_line(exc)}"
        ) from exc
    # Metadata describes one file: if the weights were swapped, it does not apply.
    if not isinstance(meta, dict) or meta.get("sha256") != sha256:
        return None
    return meta


def _resolve(path: str | Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop; no home directory
        raise WeightsError(f"cannot resolve {str(path)!r}: {one_line(exc)}") from exc


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
        fmt, params = "npz", read_npz(data)
        recorded = _recorded_activation(params)
    elif data[:1] == b"\x80":
        fmt, params = "pickle", read_pickle(data)
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
            f"not enough memory to load {str(resolved)!r}: {one_line(exc)}"
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
