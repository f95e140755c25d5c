"""Start-up: how soon mnist-serve answers, here and in its container, and how its
container stops under load.

    python -m bench startup                          # local processes
    python -m bench startup --image mnist-serve:test # + containers of that image

* imports: a fresh interpreter importing ``app.main`` (what every worker loads),
  and the worker bootstrap: what a worker spawned by uvicorn imports before it
  can answer the supervisor's health check (uvicorn kills a worker that stays
  silent for 5 s, logging "Child process died").
* ready: from process start (or ``docker run``) to the first 200 of
  /health/ready, and to the last worker's "Application startup complete";
  idle RSS of the local process tree. The floor (bare FastAPI + Pydantic,
  bench/floor_app.py) started the same way is the baseline.
* stop under load (with an image): clients keep requests going, then
  ``docker stop``: seconds until the container has exited, its exit code, and
  any answer that was not a 200.

Every figure is the median of ``repeats`` runs. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, default_weights, table, target_row
from bench.procs import free_port, launch, mnist_serve_command, rss_mib, status

READY_LINE = "Application startup complete"
# Issue 16's targets for the last worker's readiness, local processes.
TARGETS = {1: 2.0, 2: 3.0}
IMPORTS = {
    "app.main": "import app.main",
    "worker bootstrap": "import app.cli, app.logconfig, uvicorn.supervisors.multiprocess",
}
BENCH_LABEL = "mnist-serve.bench=startup"


def import_seconds(statement: str, repeats: int) -> float:
    """Median wall time of a fresh interpreter that runs ``statement``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=PROJECT_ROOT, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _wait(
    until: Callable[[], bool], alive: Callable[[], bool], timeout: float, what: str
) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if until():
            return
        if not alive():
            raise RuntimeError(f"{what}: exited before it was ready")
        time.sleep(0.01)
    raise RuntimeError(f"{what}: not ready within {timeout} s")


def _local_command(kind: str, port: int, workers: int, weights: Path) -> list[str]:
    if kind == "ours":
        # gRPC on, as by default, but on a free port: 8001 may be taken here.
        return mnist_serve_command(
            port, weights, "--workers", str(workers), "--log-level", "info",
            "--grpc-port", str(free_port()),
        )  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "bench.floor_app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "info", "--no-access-log"]  # fmt: skip


def local_start(kind: str, workers: int, weights: Path) -> dict[str, float]:
    """One start of ``ours`` or ``floor``: first 200, all workers up, idle RSS."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/health/ready"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        start = time.perf_counter()
        process = launch(_local_command(kind, port, workers, weights), log)
        try:
            alive = lambda: process.poll() is None  # noqa: E731
            _wait(lambda: status(url) == 200, alive, 60, kind)
            first = time.perf_counter() - start
            _wait(lambda: log.read_text().count(READY_LINE) >= workers, alive, 60, kind)
            every = time.perf_counter() - start
            time.sleep(0.5)  # let start-up garbage settle before reading RSS
            rss = rss_mib(process.pid) or 0.0
        finally:
            process.terminate()
            process.wait(30)
    return {"first_s": first, "all_s": every, "rss_idle_mib": rss}


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def run_container(image: str, workers: int) -> tuple[str, str, float]:
    """`docker run` as in production (read-only, /tmp tmpfs), on a 127.0.0.1 port."""
    start = time.perf_counter()
    cid = docker("run", "--detach", "--label", BENCH_LABEL, "--read-only",
                 "--tmpfs", "/tmp", "--publish", "127.0.0.1::8000",
                 "--env", f"MNIST_SERVE_WORKERS={workers}", image)  # fmt: skip
    port = docker("port", cid, "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
    return cid, f"http://127.0.0.1:{port}", start


def _running(cid: str) -> bool:
    return docker("inspect", "--format", "{{.State.Running}}", cid) == "true"


def container_start(image: str, workers: int) -> dict[str, float]:
    cid, url, start = run_container(image, workers)
    try:
        alive = lambda: _running(cid)  # noqa: E731
        _wait(lambda: status(f"{url}/health/ready") == 200, alive, 120, image)
        first = time.perf_counter() - start
        _wait(lambda: _logs(cid).count(READY_LINE) >= workers, alive, 120, image)
        return {"first_s": first, "all_s": time.perf_counter() - start}
    finally:
        docker("rm", "--force", cid)


def _logs(cid: str) -> str:
    done = subprocess.run(["docker", "logs", cid], capture_output=True, text=True,
                          check=False)  # fmt: skip
    return done.stdout + done.stderr


def stop_under_load(
    image: str, workers: int, clients: int = 16, load_s: float = 2.0
) -> dict[str, Any]:
    """`docker stop` while ``clients`` threads post batches of 100 back to back."""
    cid, url, _ = run_container(image, workers)
    body = bytes(range(256)) * (784 * 100 // 256) + bytes(784 * 100 % 256)
    counts = {"ok": 0, "not_200": 0, "refused": 0}
    lock = threading.Lock()
    stopping = threading.Event()
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            request = urllib.request.Request(
                f"{url}/predict", data=body, method="POST",
                headers={"Content-Type": "application/octet-stream",
                         "Connection": "close"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    r.read()
                    key = "ok" if r.status == 200 else "not_200"
            except urllib.error.HTTPError:
                key = "not_200"
            except (urllib.error.URLError, ConnectionError, OSError):
                # Only expected once the service stopped taking connections.
                key = "refused" if stopping.is_set() else "not_200"
            with lock:
                counts[key] += 1
            if key == "refused":
                time.sleep(0.01)

    # The clients write to connections that the stopping service closes: that
    # must be an error for one request (EPIPE), not SIGPIPE for this process,
    # which `python -m bench` resets to the default action (end quietly under
    # `| head`).
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        _wait(lambda: status(f"{url}/health/ready") == 200, lambda: _running(cid),
              120, image)  # fmt: skip
        _wait(lambda: _logs(cid).count(READY_LINE) >= workers, lambda: _running(cid),
              120, image)  # fmt: skip
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(load_s)  # a load, not a condition: the clients run meanwhile
        before = counts["ok"]
        stopping.set()
        start = time.perf_counter()
        docker("stop", "--time", "30", cid, timeout=60)
        stop_s = time.perf_counter() - start
        done.set()
        for t in threads:
            t.join(60)
        state = json.loads(docker("inspect", "--format", "{{json .State}}", cid))
    finally:
        done.set()
        signal.signal(signal.SIGPIPE, previous)
        docker("rm", "--force", cid)
    return {
        "workers": workers,
        "clients": clients,
        "stop_s": stop_s,
        "exit_code": state["ExitCode"],
        "answered_while_stopping": counts["ok"] - before,
        "not_200": counts["not_200"],
    }


def run(
    *, weights: Path | None = None, repeats: int = 5, image: str | None = None
) -> dict[str, Any]:
    weights = weights or default_weights()
    imports = [
        {"import": name, "seconds": import_seconds(statement, repeats)}
        for name, statement in IMPORTS.items()
    ]
    rows = []
    cases: list[tuple[str, str, int]] = [("local", "ours", 1), ("local", "ours", 2),
                                         ("local", "floor", 1)]  # fmt: skip
    if image:
        cases += [("container", image, 1), ("container", image, 2)]
    for where, kind, workers in cases:
        runs = [
            local_start(kind, workers, weights)
            if where == "local"
            else container_start(kind, workers)
            for _ in range(repeats)
        ]
        rows.append(
            {
                "where": where,
                "server": "mnist-serve" if kind == "ours" else kind,
                "workers": workers,
                **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
            }
        )
    floor = next(r["all_s"] for r in rows if r["server"] == "floor")
    for row in rows:
        row["vs_floor"] = row["all_s"] / floor
    targets = [
        target_row(
            f"all workers ready, {w} worker{'s' * (w > 1)} (local)",
            row["all_s"],
            "<=",
            limit,
        )
        for w, limit in TARGETS.items()
        for row in rows
        if row["where"] == "local" and row["server"] == "mnist-serve"
        and row["workers"] == w
    ]  # fmt: skip
    stops = [stop_under_load(image, w) for w in (1, 2)] if image else []
    return {"repeats": repeats, "image": image, "imports": imports, "rows": rows,
            "targets": targets, "stops": stops}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    parts = [
        table(result["imports"], [("import", "fresh interpreter"), ("seconds", "s")]),
        table(
            result["rows"],
            [
                ("where", "where"),
                ("server", "server"),
                ("workers", "workers"),
                ("first_s", "first 200, s"),
                ("all_s", "all workers ready, s"),
                ("vs_floor", "x floor"),
                ("rss_idle_mib", "RSS idle, MiB"),
            ],
        ),
        table(
            result["targets"],
            [
                ("target", "start-up target"),
                ("ratio", "s"),
                ("goal", "goal"),
                ("met", "met"),
            ],
        ),
    ]
    if result["stops"]:
        parts.append(
            table(
                result["stops"],
                [
                    ("workers", "docker stop under load: workers"),
                    ("clients", "clients"),
                    ("stop_s", "stop, s"),
                    ("exit_code", "exit code"),
                    ("answered_while_stopping", "200s while stopping"),
                    ("not_200", "not 200"),
                ],
            )
        )
    return "\n\n".join(parts)
