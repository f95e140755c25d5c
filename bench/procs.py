"""Server processes for benchmarks and end-to-end tests: ports, start, readiness, memory.

Everything here targets 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PROJECT_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mnist_serve_command(port: int, weights: Path, *extra: str) -> list[str]:
    """``mnist-serve`` on 127.0.0.1:port, run with this interpreter."""
    return [
        sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port),
        "--weights", str(weights), *extra,
    ]  # fmt: skip


def launch(
    command: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path = PROJECT_ROOT,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd`` (the project root), its output going to ``log``.

    ``new_session``: in a process group of its own, so that a signal sent to
    the server's group reaches none of the caller's processes.
    """
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
        )


def status(url: str, timeout: float = 1.0) -> int | None:
    """HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str,
    log: Path,
    *,
    timeout: float = 60,
    path: str = "/health/ready",
    in_a_row: int = 1,
) -> float:
    """Poll ``url + path`` until it answers 200 ``in_a_row`` times; seconds taken.

    With several workers, asking for a few 200s in a row gives the others time
    to finish loading. Kills the process and raises RuntimeError if it exits
    or is not ready in time.
    """
    started = time.perf_counter()
    streak = 0
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: {log.read_text()}"
            )
        streak = streak + 1 if status(url + path) == 200 else 0
        if streak >= in_a_row:
            return time.perf_counter() - started
        time.sleep(0.01 if streak else 0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"server not ready within {timeout} s: {log.read_text()}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += process_tree(int(child))
    except OSError:
        pass
    return pids


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process and all its descendants, MiB; None if gone."""
    total_kib = 0
    found = False
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    found = True
        except OSError:
            continue
    return total_kib / 1024 if found else None


@dataclass
class RssSampler:
    """Samples the resident memory of a process tree in a thread while in use."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def peak(self) -> float:
        return max((mib for _, mib in self.samples), default=0.0)

    def __enter__(self) -> RssSampler:
        start = time.monotonic()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                mib = rss_mib(self.pid)
                if mib is not None:
                    self.samples.append((time.monotonic() - start, mib))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
