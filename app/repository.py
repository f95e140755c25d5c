"""The model repository: files on disk becoming served models, and back.

Triton's layout: ``DIR/<name>/<version>/weights.pkl`` (or ``weights.npz``),
``<version>`` a positive integer, and an optional ``DIR/<name>/model.json``
(``description``, ``activation``: the hidden activation the weights were
trained with). Single files (``--weights``, ``--model NAME=PATH``) join as
version 1 of their model.

Every load happens off the event loop: the file is read with the allowlisting
loader, checked, self-tested, and only then swapped in (:meth:`Models.swap`,
one assignment). A file that fails leaves whatever was serving in place; the
index shows ``UNAVAILABLE`` with the reason. Names and versions come from the
directory listing, never from a client's string, and nothing outside the
repository is read (a link that leads out is refused).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool

from app.errors import ForbiddenError, ModelLoadError, NotFoundError, clip
from app.models import Model, Models, self_test
from core.errors import CoreError, WeightsError
from core.weights import load_weights

logger = logging.getLogger("mnist_serve")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A model called "stats" would hide /v2/models/stats (Triton's all-models route).
RESERVED = frozenset({"stats"})
WEIGHT_FILES = ("weights.pkl", "weights.npz")
MODEL_JSON = "model.json"
MAX_MODEL_JSON = 64 * 1024
DEFAULT_MODEL = "mnist"

State = Literal["READY", "UNAVAILABLE", "UNLOADED"]
Control = Literal["none", "poll", "explicit"]


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
        if not NAME.fullmatch(entry.name) or entry.name in RESERVED:
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


class Repository:
    """Keeps :class:`Models` in step with the files, as the control mode says.

    Parameters
    ----------
    models : Models
        What requests are answered from; swapped whole on every change.
    root : Path or None
        The repository directory (None: single files only).
    files : mapping of str to Path
        Single-file models, each served as version 1.
    control : {"none", "poll", "explicit"}
    max_bytes : int
        Refuse weight files larger than this.
    on_failure : callable, optional
        Called with the model name each time a load fails (the metrics).
    control_file : Path or None
        ``explicit`` mode with several workers: where a load or unload is
        written down, for the other workers to follow (see :meth:`follow`).
    """

    def __init__(
        self,
        models: Models,
        *,
        root: Path | None,
        files: Mapping[str, Path],
        control: Control,
        max_bytes: int,
        on_failure: Callable[[str], None] | None = None,
        control_file: Path | None = None,
    ) -> None:
        self.models = models
        self.root = root.resolve() if root is not None else None
        self.files = dict(files)
        self.control = control
        self.max_bytes = max_bytes
        self.on_failure = on_failure
        self._loaded: dict[tuple[str, int], tuple[Source, Model]] = {}
        self._failed: dict[tuple[str, int | None], tuple[Source | None, Entry]] = {}
        self._unloaded: set[str] = set()
        self._lock = asyncio.Lock()
        self.control_file = control_file
        self._generations: dict[str, int] = {}  # loads asked for, per model
        self._seen_control: int | None = None

    # --- what is on disk -------------------------------------------------

    def _scan(self) -> tuple[list[Source], list[Entry]]:
        sources: list[Source] = []
        problems: list[Entry] = []
        if self.root is not None:
            sources, problems = scan(self.root)
        names = {s.name for s in sources}
        for name, path in self.files.items():
            if name in names:
                problems.append(
                    Entry(name, 1, "UNAVAILABLE", "also in the repository: the "
                          "repository's versions are served")
                )  # fmt: skip
                continue
            if not path.is_file():
                problems.append(
                    Entry(
                        name,
                        1,
                        "UNAVAILABLE",
                        f"{path} does not exist or is not a file",
                    )
                )
                continue
            sources.append(single_file(name, path))
        return sources, problems

    # --- changing what is served -------------------------------------------

    async def sync(
        self,
        only: Iterable[str] | None = None,
        pinned: Mapping[str, Iterable[int]] | None = None,
    ) -> None:
        """Bring the served models in line with the files (all, or ``only`` these).

        New and changed versions are loaded and self-tested off the event loop,
        removed ones dropped; everything is swapped in at once at the end.
        ``pinned`` limits the versions to those named (a snapshot taken earlier).
        """
        async with self._lock:
            sources, problems = await run_in_threadpool(self._scan)
            if pinned is not None:
                sources = [
                    s for s in sources if s.version in set(pinned.get(s.name, ()))
                ]
            wanted = None if only is None else set(only)
            if wanted is not None:
                sources = [s for s in sources if s.name in wanted]
                problems = [p for p in problems if p.name in wanted]
            sources = [s for s in sources if s.name not in self._unloaded]
            current = {key: pair for key, pair in self._loaded.items()
                       if wanted is None or key[0] in wanted}  # fmt: skip
            seen = {(s.name, s.version) for s in sources}
            # A file that failed is tried again only once it has changed.
            tried = {
                key: pair
                for key, pair in self._failed.items()
                if pair[0] is not None and (wanted is None or key[0] in wanted)
            }
            for key in list(self._failed):
                if wanted is None or key[0] in wanted:
                    del self._failed[key]
            for problem in problems:
                self._failed[(problem.name, problem.version)] = (None, problem)
            for source in sources:
                key = (source.name, source.version)
                pair = current.get(key)
                if pair is not None and pair[0].signature == source.signature:
                    continue
                failed = tried.get(key)
                if (
                    failed is not None
                    and failed[0] is not None
                    and (failed[0].signature == source.signature)
                ):
                    self._failed[key] = failed
                    continue
                try:
                    model = await run_in_threadpool(load, source, self.max_bytes)
                except CoreError as exc:
                    self._fail(source, exc.message, serving=pair is not None)
                    continue
                except Exception as exc:  # the file, not a request: keep serving
                    logger.exception(
                        "loading %s version %d", source.name, source.version
                    )
                    self._fail(
                        source, f"unexpected error: {exc!r}", serving=pair is not None
                    )
                    continue
                self._loaded[key] = (source, model)
                logger.info(
                    "model %s version %d ready (%s, sha256 %s…)",
                    source.name,
                    source.version,
                    model.weights.format,
                    model.weights.sha256[:12],
                )
            for key in current:
                if key not in seen:
                    del self._loaded[key]
                    logger.info("model %s version %d unloaded", *key)
            self._publish()

    def _fail(self, source: Source, reason: str, *, serving: bool) -> None:
        if serving:
            reason += "; the previous file of this version is still served"
        self._failed[(source.name, source.version)] = (
            source,
            Entry(source.name, source.version, "UNAVAILABLE", reason),
        )
        logger.warning("model %s version %d: %s", source.name, source.version, reason)
        if self.on_failure is not None:
            self.on_failure(source.name)

    def _publish(self) -> None:
        serving: dict[str, dict[int, Model]] = {}
        for (name, version), (_, model) in self._loaded.items():
            serving.setdefault(name, {})[version] = model
        self.models.swap(serving)

    def require_explicit(self, action: str) -> None:
        """Loads and unloads on request are for explicit model control only.

        Raises
        ------
        ForbiddenError
            In ``none`` and ``poll`` modes (the files decide there).
        """
        if self.control != "explicit":
            raise ForbiddenError(
                f"{action} needs MNIST_SERVE_MODEL_CONTROL=explicit; this server's "
                f"model control is {self.control!r}"
                + (" (the repository's files decide)" if self.control == "poll" else "")
            )

    async def load(self, name: str) -> None:
        """Load (or reload) every version of ``name`` from the repository.

        Raises
        ------
        NotFoundError
            No model of that name in the repository.
        """
        await self._load(name)
        entries = [e for e in self.index() if e.name == name]
        if not entries:
            raise NotFoundError(f"no model {clip(name)!r} in the repository")
        self._announce(name, load=True)
        failed = [e for e in entries if e.state == "UNAVAILABLE"]
        if failed:
            reasons = "; ".join(
                f"version {e.version}: {e.reason}" if e.version else e.reason
                for e in failed
            )
            raise ModelLoadError(f"model {name!r}: {reasons}")

    async def _load(self, name: str) -> None:
        self._unloaded.discard(name)
        await self.sync(only=[name])

    async def unload(self, name: str) -> None:
        """Stop serving every version of ``name`` (until a load asks again).

        Raises
        ------
        NotFoundError
            No model of that name is loaded.
        """
        if name not in self.models.serving and not any(
            key[0] == name for key in self._failed
        ):
            raise NotFoundError(f"no model {clip(name)!r} is loaded")
        await self._unload(name)
        self._announce(name, load=False)

    async def _unload(self, name: str) -> None:
        async with self._lock:
            self._unloaded.add(name)
            for loaded in [k for k in self._loaded if k[0] == name]:
                del self._loaded[loaded]
            for failed in [k for k in self._failed if k[0] == name]:
                del self._failed[failed]
            self._publish()

    def index(self) -> list[Entry]:
        """Every model and version known, served or not, with its state."""
        entries: dict[tuple[str, int | None], Entry] = {
            (name, version): Entry(name, version, "READY")
            for (name, version) in self._loaded
        }
        for key, (_, entry) in self._failed.items():
            entries[key] = entry
        for name in self._unloaded:
            entries.setdefault((name, None), Entry(name, None, "UNLOADED"))
        return sorted(entries.values(), key=lambda e: (e.name, e.version or 0))

    async def poll(self, interval: float) -> None:
        """Rescan every ``interval`` seconds, for ever (``poll`` mode)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception:  # a scan must never stop the polling
                logger.exception("repository scan failed")

    # --- several workers, explicit mode ---------------------------------------

    def write_startup(self) -> None:
        """Record the versions loaded at startup (explicit mode, several workers).

        ``mnist-serve`` loads the repository once before starting its workers
        and writes down what it found; each worker then loads exactly that, not
        whatever the files hold when it gets round to its own startup, so a
        file added meanwhile waits for a load request on every worker alike.
        """
        if self.control_file is None:
            return
        startup: dict[str, list[int]] = {}
        for entry in self.index():
            if entry.version is not None:
                startup.setdefault(entry.name, []).append(entry.version)
        self.control_file.write_text(
            json.dumps({"generations": {}, "unloaded": [], "startup": startup})
        )

    def startup(self) -> dict[str, list[int]] | None:
        """The versions ``mnist-serve`` loaded before starting the workers, if any."""
        if self.control != "explicit" or self.control_file is None:
            return None
        if not self.control_file.exists():
            return None
        startup: dict[str, list[int]] | None = _read_control(
            self.control_file.read_text()
        )["startup"]
        return startup

    def _announce(self, name: str, *, load: bool) -> None:
        """Write this load or unload down for the other workers (explicit mode)."""
        if self.control_file is None:
            return
        with self.control_file.open("a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # read-modify-write, one worker at a time
            f.seek(0)
            state = _read_control(f.read())
            generations = state["generations"]
            unloaded = set(state["unloaded"])
            if load:
                generations[name] = generations.get(name, 0) + 1
                unloaded.discard(name)
            else:
                unloaded.add(name)
            self._generations[name] = generations.get(name, 0)
            f.seek(0)
            f.truncate()
            f.write(
                json.dumps({"generations": generations, "unloaded": sorted(unloaded)})
            )
            f.flush()
        self._seen_control = self.control_file.stat().st_mtime_ns

    async def follow(self, interval: float = 0.5) -> None:
        """Apply the loads and unloads other workers wrote down, for ever.

        Each worker of ``mnist-serve --workers N`` in explicit mode runs this:
        a load or unload answered by one worker reaches every other within
        ``interval`` seconds (plus the load itself).
        """
        while True:
            await asyncio.sleep(interval)
            try:
                await self._follow_once()
            except Exception:  # never stop following
                logger.exception("reading %s failed", self.control_file)

    async def _follow_once(self) -> None:
        if self.control_file is None or not self.control_file.exists():
            return
        mtime = self.control_file.stat().st_mtime_ns
        if mtime == self._seen_control:
            return
        self._seen_control = mtime
        state = _read_control(self.control_file.read_text())
        for name in sorted(set(state["unloaded"]) - self._unloaded):
            await self._unload(name)
        for name, generation in sorted(state["generations"].items()):
            if generation > self._generations.get(name, 0) and (
                name not in state["unloaded"]
            ):
                self._generations[name] = generation
                await self._load(name)


def _read_control(text: str) -> dict[str, Any]:
    try:
        state = json.loads(text) if text.strip() else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    generations = state.get("generations", {})
    unloaded = state.get("unloaded", [])
    startup = state.get("startup")
    return {
        "generations": {
            str(k): int(v) for k, v in generations.items() if isinstance(v, int)
        },
        "unloaded": [str(n) for n in unloaded],
        "startup": None
        if not isinstance(startup, dict)
        else {
            str(k): [int(v) for v in vs if isinstance(v, int)]
            for k, vs in startup.items()
            if isinstance(vs, list)
        },
    }


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
