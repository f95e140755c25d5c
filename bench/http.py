"""HTTP: /predict against the floor app, under wrk on 127.0.0.1.

Every row is one body kind sent by ``wrk`` (a C load generator: the client is
not what limits the rate) over a fixed number of keep-alive connections. The
floor (``bench/floor_app.py``) is a bare FastAPI + Pydantic app that parses the
same bodies and answers a constant; ratios are taken within the same run. When
wrk is not installed a small asyncio client stands in (and says so): its rates
are bound by Python and are lower than wrk's.

    python -m bench http [--quick]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import default_weights, sample_pixels, table, target_row
from bench.procs import (
    RssSampler,
    free_port,
    launch,
    mnist_serve_command,
    wait_ready,
)

CONNECTIONS = 4


# --------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kind of request: the body, its type, and how many images it holds."""

    name: str
    content_type: str
    body: bytes
    images: int
    ours_path: str
    floor_path: str


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28)).save(out, format="PNG")
    return out.getvalue()


def _multipart(files: list[bytes], boundary: str) -> bytes:
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="digit{i}.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + blob
        + b"\r\n"
        for i, blob in enumerate(files)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _json_images(pixels: np.ndarray) -> list[list[float]]:
    # What a client holding the book's normalised data sends: floats in [0, 1].
    return (pixels.astype(np.float64) / 255.0).tolist()


def cases(batch: int = 100, parts: int = 50) -> list[Case]:
    """The five rows of the issue: JSON single and batch, raw batch, PNG, multipart."""
    pixels = sample_pixels(max(batch, parts))
    images = _json_images(pixels[:batch])
    boundary = "mnistservebenchboundary"
    return [
        Case(
            "JSON single",
            "application/json",
            json.dumps({"x": images[0]}).encode(),
            1,
            "/predict",
            "/json",
        ),
        Case(
            f"JSON batch {batch}",
            "application/json",
            json.dumps({"x": images}).encode(),
            batch,
            "/predict",
            "/json",
        ),
        Case(
            f"octet-stream batch {batch}",
            "application/octet-stream",
            pixels[:batch].tobytes(),
            batch,
            "/predict",
            "/octet",
        ),
        Case("PNG single", "image/png", _png(pixels[0]), 1, "/predict", "/image"),
        Case(
            f"multipart {parts} PNG",
            f"multipart/form-data; boundary={boundary}",
            _multipart([_png(p) for p in pixels[:parts]], boundary),
            parts,
            "/predict",
            "/multipart",
        ),
    ]


def octet_case(batch: int) -> Case:
    return Case(
        f"octet-stream batch {batch}",
        "application/octet-stream",
        sample_pixels(batch).tobytes(),
        batch,
        "/predict",
        "/octet",
    )


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    startup_s: float
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _command(kind: str, port: int, workers: int, weights: Path) -> list[str]:
    if kind == "ours":
        return mnist_serve_command(
            port, weights, "--workers", str(workers), "--log-level", "warning"
        )
    if kind == "floor":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor_app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    raise ValueError(kind)


def start(
    kind: str,
    *,
    workers: int = 1,
    weights: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    logdir: Path | None = None,
) -> Server:
    """Start ``ours`` (mnist-serve) or ``floor`` on a free port; wait until ready."""
    port = free_port()
    logdir = logdir or Path(tempfile.gettempdir())
    log = logdir / f"bench-{kind}-{port}.log"
    url = f"http://127.0.0.1:{port}"
    process = launch(
        _command(kind, port, workers, weights or default_weights()), log, env
    )
    ready = wait_ready(process, url, log, timeout=timeout)
    if workers > 1:
        _wait_workers(url)
    return Server(kind, process, url, ready, log)


def _wait_workers(url: str) -> None:
    # Other workers may still be loading: a few more ready answers in a row.
    for _ in range(20):
        with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as r:
            r.read()
    time.sleep(0.5)


@contextmanager
def running(kind: str, **kwargs: Any) -> Iterator[Server]:
    server = start(kind, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def check(server: Server, case: Case, path: str) -> None:
    """One request before the load: it must be a 200 with the right answer."""
    request = urllib.request.Request(
        server.url + path,
        data=case.body,
        headers={"Content-Type": case.content_type},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        answer = json.loads(r.read())
    got = len(answer["labels"]) if "labels" in answer else 1
    if got != case.images:
        raise RuntimeError(
            f"{server.name} {case.name}: {got} answers, not {case.images}"
        )


# --------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------

_LUA = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
done = function(summary, latency, requests)
  io.write(string.format(
    "BENCH_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, " ..
    "\\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d, \\"non_2xx\\": %d, " ..
    "\\"socket_errors\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio (wrk not installed)"


def _wrk(url: str, case: Case, seconds: float, connections: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body"
        body.write_bytes(case.body)
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            env={
                **os.environ,
                "BENCH_BODY": str(body),
                "BENCH_TYPE": case.content_type,
            },
            check=True,
        )
    line = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
    }


async def _one_connection(
    host: str, port: int, request: bytes, stop_at: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    bad = 0
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not status.split(b" ")[1].startswith(b"2"):
                bad += 1
    finally:
        writer.close()
    return bad


def _asyncio_load(
    url: str, case: Case, seconds: float, connections: int
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {case.content_type}"
        f"\r\nContent-Length: {len(case.body)}\r\n\r\n"
    ).encode() + case.body
    latencies: list[float] = []

    async def main() -> int:
        stop_at = time.perf_counter() + seconds
        bad = await asyncio.gather(
            *(
                _one_connection(host, int(port), request, stop_at, latencies)
                for _ in range(connections)
            )
        )
        return sum(bad)

    start = time.perf_counter()
    bad = asyncio.run(main())
    elapsed = time.perf_counter() - start
    q = np.percentile(np.array(latencies) * 1e3, [50, 90, 99, 100])
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": float(q[0]),
        "p90_ms": float(q[1]),
        "p99_ms": float(q[2]),
        "max_ms": float(q[3]),
        "non_2xx": bad,
        "socket_errors": 0,
    }


def load(url: str, case: Case, seconds: float, connections: int) -> dict[str, Any]:
    """Drive ``url`` with ``case`` for ``seconds`` over ``connections``."""
    if shutil.which("wrk"):
        return _wrk(url, case, seconds, connections)
    return _asyncio_load(url, case, seconds, connections)


def measure(
    server: Server,
    case: Case,
    path: str,
    *,
    seconds: float,
    warmup: float,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    check(server, case, path)
    if warmup > 0:
        load(server.url + path, case, warmup, connections)
    with RssSampler(server.process.pid) as rss:
        result = load(server.url + path, case, seconds, connections)
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"{server.name} {case.name}: errors under load: {result}")
    req_s = result["requests"] / result["seconds"]
    return {
        "req_per_s": req_s,
        "images_per_s": req_s * case.images,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
        "p99_over_p50": result["p99_ms"] / max(result["p50_ms"], 1e-6),
        "requests": result["requests"],
        "rss_peak_mib": rss.peak or None,
        "body_bytes": len(case.body),
    }


# --------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------


def run(
    *,
    weights: Path | None = None,
    seconds: float = 3.0,
    warmup: float = 1.0,
    workers: tuple[int, ...] = (1, 2),
    batch: int = 100,
    parts: int = 50,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """The main table: every case against ours (1 and 2 workers) and the floor."""
    rows: list[dict[str, Any]] = []
    all_cases = cases(batch, parts)
    kinds = [("floor", 1)] + [("ours", w) for w in workers]
    with ExitStack() as stack:
        # All servers up at once, and each case run on each in turn: a burst
        # of load from elsewhere then hits the rows being compared alike.
        servers = [
            stack.enter_context(running(kind, workers=n, weights=weights))
            for kind, n in kinds
        ]
        for case in all_cases:
            for (kind, n_workers), server in zip(kinds, servers, strict=True):
                path = case.ours_path if kind == "ours" else case.floor_path
                row = measure(
                    server,
                    case,
                    path,
                    seconds=seconds,
                    warmup=warmup,
                    connections=connections,
                )
                label = "mnist-serve" if kind == "ours" else "floor (FastAPI+Pydantic)"
                rows.append(
                    {"case": case.name, "server": label, "workers": n_workers, **row}
                )
    for row in rows:
        floor = _get(rows, row["case"], "floor", 1)
        row["vs_floor"] = row["images_per_s"] / floor["images_per_s"] if floor else None
    return {
        "generator": generator(),
        "connections": connections,
        "seconds": seconds,
        "rows": rows,
        "ratios": ratios(rows, batch),
    }


def _get(rows: list[dict[str, Any]], case: str, server: str, workers: int):
    for row in rows:
        if (row["case"], row["server"].split(" ")[0], row["workers"]) == (
            case,
            server,
            workers,
        ):
            return row
    return None


def ratios(rows: list[dict[str, Any]], batch: int = 100) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    single = _get(rows, "JSON single", "mnist-serve", 1)
    floor_single = _get(rows, "JSON single", "floor", 1)
    many = _get(rows, f"JSON batch {batch}", "mnist-serve", 1)
    floor_many = _get(rows, f"JSON batch {batch}", "floor", 1)
    raw = _get(rows, f"octet-stream batch {batch}", "mnist-serve", 1)

    def add(name: str, value: float, op: str, goal: float) -> None:
        out.append(target_row(name, value, op, goal))

    if single and floor_single:
        add(
            "JSON single req/s vs floor (1 worker)",
            single["req_per_s"] / floor_single["req_per_s"],
            ">=",
            1.0,
        )
    if many and floor_many:
        add(
            f"JSON batch {batch} images/s vs floor (1 worker)",
            many["images_per_s"] / floor_many["images_per_s"],
            ">=",
            4.0,
        )
    if raw and floor_single:
        add(
            f"octet batch {batch} images/s vs floor JSON single req/s (1 worker)",
            raw["images_per_s"] / floor_single["req_per_s"],
            ">=",
            40.0,
        )
    ours = [r for r in rows if r["server"] == "mnist-serve"]
    worst = max(ours, key=lambda r: r["p99_over_p50"], default=None)
    if worst:
        add(
            f"worst mnist-serve p99/p50 at {CONNECTIONS} connections "
            f"({worst['workers']}w, {worst['case']})",
            worst["p99_over_p50"],
            "<=",
            5.0,
        )
    return out


def scaling(
    *,
    weights: Path | None = None,
    batches: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096),
    workers: tuple[int, ...] = (1, 2),
    seconds: float = 2.0,
    warmup: float = 0.5,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """Images/s of octet-stream /predict against batch size and worker count."""
    rows: list[dict[str, Any]] = []
    for n_workers in workers:
        with running("ours", workers=n_workers, weights=weights) as server:
            for batch in batches:
                case = octet_case(batch)
                row = measure(
                    server,
                    case,
                    "/predict",
                    seconds=seconds,
                    warmup=warmup,
                    connections=connections,
                )
                rows.append({"batch": batch, "workers": n_workers, **row})
    return {"generator": generator(), "connections": connections, "rows": rows}


def render(result: dict[str, Any]) -> str:
    rows = table(
        result["rows"],
        [
            ("case", "case"),
            ("server", "server"),
            ("workers", "workers"),
            ("req_per_s", "req/s"),
            ("images_per_s", "images/s"),
            ("vs_floor", "x floor"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
            ("p99_over_p50", "p99/p50"),
            ("rss_peak_mib", "RSS MiB"),
        ],
    )
    goals = table(
        result["ratios"],
        [
            ("target", "HTTP target"),
            ("ratio", "ratio"),
            ("goal", "goal"),
            ("met", "met"),
        ],
    )
    return f"{rows}\n\n{goals}"


def render_scaling(result: dict[str, Any]) -> str:
    by_batch: dict[int, dict[str, Any]] = {}
    for row in result["rows"]:
        entry = by_batch.setdefault(row["batch"], {"batch": row["batch"]})
        entry[f"w{row['workers']}"] = row["images_per_s"]
        entry[f"p99_w{row['workers']}"] = row["p99_ms"]
    workers = sorted({row["workers"] for row in result["rows"]})
    columns = [("batch", "batch (octet-stream)")]
    for w in workers:
        columns += [(f"w{w}", f"images/s, {w} worker{'s' * (w > 1)}")]
        columns += [(f"p99_w{w}", f"p99 ms, {w}w")]
    return table(list(by_batch.values()), columns)
