"""Real server processes on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.procs import free_port, launch, wait_ready

__all__ = [
    "Server",
    "free_port",
    "mnist_serve_command",
    "served_cleanly",
    "start_app",
    "start_server",
    "wait_in_flight",
]


def mnist_serve_command() -> list[str]:
    """The installed console script, as a user runs it."""
    exe = shutil.which("mnist-serve", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "app.cli"]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, wait (kill after ``timeout``), and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def _start(command: list[str], port: int, tmp_path: Path, env: dict[str, str] | None,
           ready_timeout: float, new_session: bool = False) -> Server:  # fmt: skip
    log = tmp_path / f"server-{port}.log"
    process = launch(command, log, env, new_session=new_session)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url, log, timeout=ready_timeout)
    return Server(process, url, log)


def start_server(
    weights: Path,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30,
    new_session: bool = False,
) -> Server:
    """``mnist-serve`` on a free port, ready (``/health/ready`` is 200)."""
    port = free_port()
    command = [*mnist_serve_command(), "--host", "127.0.0.1", "--port", str(port),
               "--weights", str(weights), *args]  # fmt: skip
    return _start(command, port, tmp_path, env, ready_timeout, new_session)


def start_app(
    factory: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60,
) -> Server:
    """``uvicorn --factory module:function`` on a free port, ready."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", factory, "--factory",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return _start(command, port, tmp_path, env, ready_timeout)


@contextmanager
def served_cleanly(
    weights: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``mnist-serve`` for the block; after it, exit status 0 and no traceback logged.

    For tests that throw bad input at a server: nothing a client sends may
    reach the catch-all handler or stop the process.
    """
    s = start_server(weights, tmp_path, env=env)
    try:
        yield s
    finally:
        code = s.stop()
        log = s.log.read_text()
        assert "Traceback" not in log, log
        assert code == 0, log


_IN_FLIGHT = re.compile(rb"^mnist_serve_http_requests_in_flight (\S+)$", re.M)


def wait_in_flight(url: str, requests: int, timeout: float = 30) -> None:
    """Return once ``requests`` requests (besides the scrape) are in flight.

    Read from the service's own gauge, so a test acts when the server has the
    request, not after a guess at how long that takes.
    """
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        found = _IN_FLIGHT.search(httpx.get(f"{url}/metrics", timeout=5).content)
        seen = float(found.group(1)) - 1 if found else 0.0  # minus the scrape
        if seen >= requests:
            return
        time.sleep(0.01)
    raise AssertionError(f"{requests} requests never in flight (last seen {seen:g})")


@pytest.fixture
def server(weights_file: Path, tmp_path: Path) -> Iterator[Server]:
    s = start_server(weights_file, tmp_path)
    try:
        yield s
    finally:
        s.stop()
