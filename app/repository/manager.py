"""The model repository at work: files on disk becoming served models, and back.

Every load happens off the event loop: the file is read with the allowlisting
loader, checked, self-tested, and only then swapped in (:meth:`Models.swap`,
one assignment). A file that fails leaves whatever was serving in place; the
index shows ``UNAVAILABLE`` with the reason, and it is tried again only once
it changes. What is on disk is :mod:`app.repository.layout`'s to say; with
several workers in explicit mode, :mod:`app.repository.control` keeps them in
step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from app.errors import clip
from app.exceptions import ForbiddenError, ModelLoadError, NotFoundError
from app.models import Model, Models
from app.repository.control import ControlFile
from app.repository.layout import (
    Control,
    Entry,
    Source,
    load,
    scan,
    single_file,
    valid_name,
)
from core.errors import CoreError

logger = logging.getLogger("mnist_serve")


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
        self.control_file = None if control_file is None else ControlFile(control_file)
        self._generations: dict[str, int] = {}  # loads seen, per model

    # --- what is on disk -------------------------------------------------

    def _scan(self) -> tuple[list[Source], list[Entry]]:
        sources: list[Source] = []
        problems: list[Entry] = []
        if self.root is not None:
            sources, problems = scan(self.root)
        names = {s.name for s in sources}
        for name, path in self.files.items():
            if not valid_name(name):
                problems.append(
                    Entry(clip(name), 1, "UNAVAILABLE", "not a valid model name")
                )
                continue
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
        self.control_file.write_startup(startup)

    def startup(self) -> dict[str, list[int]] | None:
        """The versions ``mnist-serve`` loaded before starting the workers, if any."""
        if self.control != "explicit" or self.control_file is None:
            return None
        return self.control_file.read().startup

    def _announce(self, name: str, *, load: bool) -> None:
        """Write this load or unload down for the other workers (explicit mode)."""
        if self.control_file is not None:
            self._generations[name] = self.control_file.record(name, load=load)

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
                logger.exception("following the model control file failed")

    async def _follow_once(self) -> None:
        state = None if self.control_file is None else self.control_file.changed()
        if state is None:
            return
        for name in sorted(set(state.unloaded) - self._unloaded):
            await self._unload(name)
        for name, generation in sorted(state.generations.items()):
            if generation > self._generations.get(name, 0) and (
                name not in state.unloaded
            ):
                self._generations[name] = generation
                await self._load(name)
