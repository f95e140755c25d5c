"""Explicit model control with several workers: one file all workers follow.

``mnist-serve --workers N`` makes the file. Before starting the workers it
writes the versions it loaded (every worker then starts with exactly those);
afterwards the worker that answers a load or unload writes it down (a load
counter per model, the unloaded models), under an exclusive lock, and every
other worker applies what changed within half a second.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class ControlState:
    """What the control file says."""

    generations: dict[str, int] = field(default_factory=dict)  # loads per model
    unloaded: list[str] = field(default_factory=list)
    startup: dict[str, list[int]] | None = None  # versions loaded before the workers

    def dumps(self) -> str:
        return json.dumps(
            {
                "generations": self.generations,
                "unloaded": sorted(self.unloaded),
                "startup": self.startup,
            }
        )

    @classmethod
    def loads(cls, text: str) -> ControlState:
        """Parse the file's text; anything malformed reads as an empty state."""
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        generations = data.get("generations")
        unloaded = data.get("unloaded")
        startup = data.get("startup")
        return cls(
            {
                str(k): v
                for k, v in (
                    generations if isinstance(generations, dict) else {}
                ).items()
                if isinstance(v, int)
            },
            [str(n) for n in (unloaded if isinstance(unloaded, list) else [])],
            None
            if not isinstance(startup, dict)
            else {
                str(k): [v for v in vs if isinstance(v, int)]
                for k, vs in startup.items()
                if isinstance(vs, list)
            },
        )


class ControlFile:
    """The shared file, read and written under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: int | None = None

    def read(self) -> ControlState:
        return ControlState.loads(self.path.read_text() if self.path.exists() else "")

    def write_startup(self, startup: dict[str, list[int]]) -> None:
        self.path.write_text(ControlState(startup=startup).dumps())

    def record(self, name: str, *, load: bool) -> int:
        """Write down a load (a new generation) or an unload of ``name``.

        Returns the model's load generation after the change.
        """
        with self.path.open("a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # read-modify-write, one worker at a time
            f.seek(0)
            state = ControlState.loads(f.read())
            if load:
                state.generations[name] = state.generations.get(name, 0) + 1
                state.unloaded = [n for n in state.unloaded if n != name]
            elif name not in state.unloaded:
                state.unloaded.append(name)
            f.seek(0)
            f.truncate()
            f.write(state.dumps())
            f.flush()
        self._seen = self.path.stat().st_mtime_ns
        return state.generations.get(name, 0)

    def changed(self) -> ControlState | None:
        """The state, when the file changed since it was last read or written."""
        if not self.path.exists():
            return None
        mtime = self.path.stat().st_mtime_ns
        if mtime == self._seen:
            return None
        self._seen = mtime
        return self.read()
