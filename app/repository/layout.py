"""The repository's layout on disk: which models and versions are there.

Triton's layout: ``DIR/<name>/<version>/weights.pkl`` (or ``weights.npz``),
``<version>`` a positive integer, and an optional ``DIR/<name>/model.json``
(``description``, ``activation``: the hidden activation the weights were
trained with). Single files (``--weights``, ``--model NAME=PATH``) join as
version 1 of their model. Names and versions come from the directory listing,
never from a client's string, and nothing outside the repository is read (a
link that leads out is refused).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.errors import clip
from app.models import Model, self_test
from app.settings import DEFAULT_MODEL
from core.errors import WeightsError
from core.weights import load_weights

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A model called "stats" would hide /v2/models/stats (Triton's all-models route).
RESERVED = frozenset({"stats"})

WEIGHT_FILES = ("weights.pkl", "weights.npz")
MODEL_JSON = "model.json"
MAX_MODEL_JSON = 64 * 1024

State = Literal["READY", "UNAVAILABLE", "UNLOADED"]
Control = Literal["none", "poll", "explicit"]


def valid_name(name: str) -> bool:
    """A name a model may be served under: URL-safe, and no route of its own."""
    return bool(NAME.fullmatch(name)) and name not in RESERVED


@dataclass(frozen=True, slots=True)
class Source:
    """Where one version's weights are, and what the repository says of them."""

    name: str
    version: int
    path: Path
    signature: tuple[int, int, int]  # size, mtime, inode: "has it changed?"
    activation: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A row of the repository index (Triton's repository extension)."""

    name: str
    version: int | None
    state: State
    reason: str = ""


def _signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # missing, or a link loop
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop: not a directory we can use
        return False


def _model_json(directory: Path, root: Path) -> dict[str, Any]:
    path = directory / MODEL_JSON
    if not path.exists():
        return {}
    if not _inside(path, root) or not path.is_file():
        raise WeightsError(f"{MODEL_JSON} is not a regular file in the repository")
    if path.stat().st_size > MAX_MODEL_JSON:
        raise WeightsError(f"{MODEL_JSON} is over {MAX_MODEL_JSON} bytes")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError) as exc:
        raise WeightsError(
            f"{MODEL_JSON} is not valid JSON: {clip(str(exc))}"
        ) from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{MODEL_JSON} must hold a JSON object")
    for key in ("description", "activation"):
        if key in meta and not isinstance(meta[key], str):
            raise WeightsError(f"{MODEL_JSON}: {key} must be a string")
    return meta


def scan_model(root: Path, name: str) -> tuple[list[Source], list[Entry]]:
    """The versions of model ``name`` in ``root``, and the entries that failed.

    ``name`` must be a directory entry of ``root`` (callers take it from
    :func:`scan`'s listing or check it with :data:`NAME` first).
    """
    directory = root / name
    sources: list[Source] = []
    problems: list[Entry] = []
    try:
        meta = _model_json(directory, root)
    except (WeightsError, OSError) as exc:
        reason = exc.message if isinstance(exc, WeightsError) else str(exc)
        return [], [Entry(name, None, "UNAVAILABLE", reason)]
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if not (entry.name.isascii() and entry.name.isdigit()):
            continue
        version = int(entry.name)
        if version < 1 or not _is_dir(entry) or not _inside(Path(entry.path), root):
            problems.append(
                Entry(name, version, "UNAVAILABLE", "not a version directory inside "
                      "the repository")
            )  # fmt: skip
            continue
        found = [
            Path(entry.path) / f
            for f in WEIGHT_FILES
            if (Path(entry.path) / f).exists()
        ]
        if len(found) != 1:
            why = (
                "no weights.pkl or weights.npz"
                if not found
                else "both weights.pkl and weights.npz"
            )
            problems.append(Entry(name, version, "UNAVAILABLE", why))
            continue
        path = found[0]
        if not _inside(path, root) or not path.is_file():
            problems.append(
                Entry(name, version, "UNAVAILABLE", f"{path.name} is not a regular "
                      "file inside the repository")
            )  # fmt: skip
            continue
        sources.append(
            Source(
                name,
                version,
                path,
                _signature(path),
                meta.get("activation"),
                meta.get("description"),
            )
        )
    return sources, problems


def scan(root: Path) -> tuple[list[Source], list[Entry]]:
    """Every version of every model in the repository ``root``."""
    sources: list[Source] = []
    problems: list[Entry] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not _is_dir(entry):
            continue
        if not valid_name(entry.name):
            problems.append(
                Entry(clip(entry.name), None, "UNAVAILABLE", "not a valid model name")
            )
            continue
        if not _inside(Path(entry.path), root):
            problems.append(
                Entry(entry.name, None, "UNAVAILABLE", "leads outside the repository")
            )
            continue
        found, failed = scan_model(root, entry.name)
        sources += found
        problems += failed
    return sources, problems


def single_file(name: str, path: Path) -> Source:
    """A weights file given on its own, as version 1 of model ``name``."""
    return Source(name, 1, path, _signature(path) if path.exists() else (0, 0, 0))


def load(source: Source, max_bytes: int) -> Model:
    """Read, check and self-test one version (blocking: call off the event loop).

    Raises
    ------
    WeightsError
        Anything wrong with the file or the network in it.
    """
    weights = load_weights(source.path, max_bytes, hidden_activation=source.activation)
    self_test(weights.network)
    return Model(source.name, source.version, weights, source.description)


def choose_default(requested: str | None, names: Iterable[str]) -> str:
    """The model of requests that name none.

    Raises
    ------
    WeightsError
        ``requested`` is not served, or several models are and none is
        called ``mnist``.
    """
    served = sorted(names)
    if requested is not None:
        return requested
    if DEFAULT_MODEL in served or not served:
        return DEFAULT_MODEL
    if len(served) == 1:
        return served[0]
    raise WeightsError(
        f"several models ({', '.join(served)}) and none is called {DEFAULT_MODEL!r}: "
        "name the default with MNIST_SERVE_DEFAULT_MODEL"
    )
