"""Soak and shutdown under load: ``python -m bench.soak``.

Starts ``mnist-serve --workers 2`` on 127.0.0.1 and drives it with a mix of
valid requests (JSON single and batch, raw uint8, PNG, multipart, activations,
health, model) for ``--seconds`` (20) over ``--connections`` (64), sampling the
resident memory of the whole server process tree. Then it loads the server
again, sends SIGTERM in the middle of that load, and measures what happened to
the requests in flight at that moment, how long the shutdown took, and the exit
code. Prints a table and writes JSON (``--out``).

The load comes from wrk (Debian package ``wrk``) with a Lua script cycling
through the request mix when it is installed and ``--generator`` allows it,
otherwise from an asyncio HTTP/1.1 generator in this file. The shutdown phase
always uses the asyncio generator: it needs each request's send and answer
times.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from bench.common import finish, key_values
from bench.loadgen import WRK_DONE, run_wrk
from bench.procs import (
    RssSampler,
    free_port,
    launch,
    mnist_serve_command,
    rss_mib,
    wait_ready,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BOOK_WEIGHTS = (
    Path(os.environ.get("MNIST_SERVE_DATA", PROJECT_ROOT.parent / "shared" / "data"))
    / "book"
    / "sample_weight.pkl"
)
PROJECT_WEIGHTS = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results" / "soak.json"
REQUEST_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# The request mix
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    path: str
    content_type: str | None = None
    body: bytes = b""

    def raw(self, host: str) -> bytes:
        head = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        if self.content_type:
            head.append(f"Content-Type: {self.content_type}")
        if self.method == "POST":
            head.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


def _digits(n: int, seed: int = 0) -> np.ndarray:
    """``n`` synthetic digit-like 28x28 uint8 images (white strokes on black)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        image = Image.new("L", (28, 28))
        draw = ImageDraw.Draw(image)
        points = [tuple(int(v) for v in rng.integers(5, 23, 2)) for _ in range(4)]
        draw.line(points, fill=255, width=int(rng.integers(2, 4)))
        out[i] = np.asarray(image)
    return out


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def request_mix() -> list[Request]:
    images = _digits(64)
    floats = (images.reshape(64, 784) / 255).round(4)
    boundary = "soakboundary"
    parts = (
        b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{i}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + _png(images[i])
            + b"\r\n"
            for i in range(2)
        )
        + f"--{boundary}--\r\n".encode()
    )
    xs = np.linspace(-6, 6, 500).round(4).tolist()
    return [
        Request(
            "json-1",
            "POST",
            "/predict",
            "application/json",
            json.dumps({"x": floats[0].tolist()}).encode(),
        ),
        Request(
            "json-16",
            "POST",
            "/predict",
            "application/json",
            json.dumps({"x": floats[:16].tolist()}).encode(),
        ),
        Request(
            "uint8-64",
            "POST",
            "/predict",
            "application/octet-stream",
            images.tobytes(),
        ),
        Request("png", "POST", "/predict", "image/png", _png(images[3])),
        Request(
            "multipart-2",
            "POST",
            "/predict",
            f"multipart/form-data; boundary={boundary}",
            parts,
        ),
        Request("act-grid", "GET", "/activations/sigmoid?start=-6&stop=6&num=201"),
        Request(
            "act-post",
            "POST",
            "/activations/gelu",
            "application/json",
            json.dumps({"x": xs}).encode(),
        ),
        Request("ready", "GET", "/health/ready"),
        Request("model", "GET", "/model"),
    ]


# --------------------------------------------------------------------------
# The server and its memory
# --------------------------------------------------------------------------


def start_server(
    weights: Path, workers: int, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """mnist-serve on a free port; returns the process and its ``host:port``."""
    port = free_port()
    command = mnist_serve_command(port, weights, "--workers", str(workers))
    process = launch(command, log, env)
    # Two 200s a worker in a row: the other workers may still be loading.
    wait_ready(process, f"http://127.0.0.1:{port}", log, in_a_row=2 * workers)
    return process, f"127.0.0.1:{port}"


# --------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    sent: float
    done: float
    status: int | None  # None: no answer (connection closed, reset or timeout)
    error: str = ""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed before any answer")
    status = int(status_line.split(b" ", 2)[1])
    length, close, chunked = 0, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "connection" and value.strip().lower() == "close":
            close = True
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status, close
    # Large answers stream in chunks (app/responses.py).
    while size := int((await reader.readline()).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readline()  # the blank line after the last chunk
    return status, close


async def _connection(
    hostport: str,
    requests: Sequence[Request],
    offset: int,
    stop: asyncio.Event,
    outcomes: list[Outcome],
    reconnect: bool,
) -> None:
    host, port = hostport.split(":")
    encoded = [r.raw(host) for r in requests]
    i = offset
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            request = requests[i % len(requests)]
            data = encoded[i % len(requests)]
            i += 1
            sent = loop.time()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                assert reader is not None
                writer.write(data)
                await writer.drain()
                status, close = await asyncio.wait_for(
                    _read_response(reader), REQUEST_TIMEOUT
                )
                outcomes.append(Outcome(request.name, sent, loop.time(), status))
                if close:
                    writer.close()
                    writer = None
            except (
                OSError,
                ConnectionError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ) as exc:
                outcomes.append(
                    Outcome(request.name, sent, loop.time(), None, type(exc).__name__)
                )
                if writer is not None:
                    writer.close()
                    writer = None
                if not reconnect:
                    return
                await asyncio.sleep(0.05)
    finally:
        if writer is not None:
            writer.close()


def asyncio_load(
    hostport: str,
    requests: Sequence[Request],
    seconds: float,
    connections: int,
    *,
    on_start: Any = None,
    reconnect: bool = True,
) -> tuple[list[Outcome], float]:
    """Drive the server; ``on_start(loop)`` may schedule events. Outcomes, t0."""
    outcomes: list[Outcome] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        t0 = loop.time()
        loop.call_later(seconds, stop.set)
        if on_start is not None:
            on_start(loop, stop)
        await asyncio.gather(
            *(
                _connection(hostport, requests, k, stop, outcomes, reconnect)
                for k in range(connections)
            )
        )
        return t0

    t0 = asyncio.run(main())
    return outcomes, t0


_LUA = r"""
-- Cycles through the request mix; each connection starts at another offset.
local requests = {}
local counter = 0
init = function(args)
  local f = assert(io.open(os.getenv("SOAK_MIX"), "rb"))
  local n = tonumber(f:read("*l"))
  for i = 1, n do
    local method, path, ctype, size = f:read("*l"):match("^(%S+) (%S+) (%S+) (%d+)$")
    local body = nil
    if tonumber(size) > 0 then body = f:read(tonumber(size)) end
    local headers = {}
    if ctype ~= "-" then headers["Content-Type"] = ctype end
    requests[i] = wrk.format(method, path, headers, body)
  end
  f:close()
end
request = function()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
"""


def wrk_load(
    hostport: str, requests: Sequence[Request], seconds: float, connections: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        mix = Path(tmp) / "mix"
        with mix.open("wb") as f:
            f.write(f"{len(requests)}\n".encode())
            for r in requests:
                ctype = (r.content_type or "-").replace(" ", "")
                f.write(f"{r.method} {r.path} {ctype} {len(r.body)}\n".encode())
                f.write(r.body)
        return run_wrk(
            _LUA + WRK_DONE,
            f"http://{hostport}/",
            seconds=seconds,
            connections=connections,
            threads=2,
            timeout=REQUEST_TIMEOUT,
            env={"SOAK_MIX": str(mix)},
        )


def _summary(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    latencies = np.array([o.done - o.sent for o in outcomes if o.status]) * 1e3
    non_2xx = sum(1 for o in outcomes if o.status is not None and o.status >= 300)
    socket_errors = sum(1 for o in outcomes if o.status is None)
    q = np.percentile(latencies, [50, 99, 100]) if latencies.size else [0, 0, 0]
    return {
        "requests": len(outcomes),
        "seconds": seconds,
        "errors": non_2xx + socket_errors,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "p50_ms": float(q[0]),
        "p99_ms": float(q[1]),
        "max_ms": float(q[2]),
    }


# --------------------------------------------------------------------------
# The two phases
# --------------------------------------------------------------------------


def soak(
    hostport: str,
    pid: int,
    requests: Sequence[Request],
    seconds: float,
    connections: int,
    generator: str,
) -> dict[str, Any]:
    with RssSampler(pid) as sampler:
        if generator == "wrk":
            result = wrk_load(hostport, requests, seconds, connections)
        else:
            outcomes, _ = asyncio_load(hostport, requests, seconds, connections)
            result = _summary(outcomes, seconds)
    rss = [mib for _, mib in sampler.samples] or [rss_mib(pid) or 0.0]
    # Growth: the last quarter of the run against the first quarter after warm-up.
    quarter = max(1, len(rss) // 4)
    early, late = max(rss[:quarter]), max(rss[-quarter:])
    result |= {
        "generator": generator,
        "connections": connections,
        "rss_peak_mib": max(rss),
        "rss_early_mib": early,
        "rss_late_mib": late,
        "rss_growth_mib": late - early,
        "rss_samples": len(rss),
    }
    return result


def shutdown_under_load(
    process: subprocess.Popen[bytes],
    hostport: str,
    requests: Sequence[Request],
    connections: int,
    sigterm_after: float,
    max_seconds: float = 30.0,
) -> dict[str, Any]:
    marks: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []  # a reference keeps the watcher alive

    def on_start(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        def sigterm() -> None:
            marks["sigterm"] = loop.time()
            process.send_signal(signal.SIGTERM)

        async def watch_exit() -> None:
            while process.poll() is None:
                await asyncio.sleep(0.01)
            marks["exit"] = loop.time()
            stop.set()

        loop.call_later(sigterm_after, sigterm)
        tasks.append(loop.create_task(watch_exit()))

    outcomes, _ = asyncio_load(
        hostport, requests, max_seconds, connections, on_start=on_start
    )
    code = process.wait(30)
    t = marks["sigterm"]
    # In flight at SIGTERM: written before it, answered (or failed) after it.
    in_flight = [o for o in outcomes if o.sent < t < o.done]
    before = [o for o in outcomes if o.done <= t]
    after = [o for o in outcomes if o.sent >= t]
    return {
        "exit_code": code,
        "shutdown_s": marks.get("exit", t) - t,
        "requests_before_sigterm": len(before),
        "errors_before_sigterm": sum(1 for o in before if o.status != 200),
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_completed_2xx": sum(
            1 for o in in_flight if o.status and 200 <= o.status < 300
        ),
        "in_flight_failed": [
            f"{o.name}: {o.status or o.error}"
            for o in in_flight
            if not (o.status and 200 <= o.status < 300)
        ],
        "sent_after_sigterm": len(after),
        "served_after_sigterm": sum(1 for o in after if o.status == 200),
        "refused_after_sigterm": sum(1 for o in after if o.status is None),
    }


def run(
    *,
    seconds: float = 20.0,
    connections: int = 64,
    workers: int = 2,
    generator: str = "auto",
    sigterm_after: float = 2.0,
    weights: Path | None = None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Both phases against fresh servers; returns the figures."""
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "asyncio"
    if generator == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    weights = weights or (BOOK_WEIGHTS if BOOK_WEIGHTS.exists() else PROJECT_WEIGHTS)
    requests = request_mix()
    with tempfile.TemporaryDirectory() as tmp:
        logs = log_dir or Path(tmp)
        env = {"MNIST_SERVE_GRACEFUL_TIMEOUT": "10"}
        process, hostport = start_server(weights, workers, logs / "soak.log", env)
        try:
            # Every request of the mix must be valid: a 4xx here is a bench bug.
            for r in requests:
                outcomes, _ = asyncio_load(hostport, [r], 0.2, 1, reconnect=False)
                if any(o.status != 200 for o in outcomes):
                    raise RuntimeError(f"request {r.name} is not valid: {outcomes[:1]}")
            result = soak(
                hostport, process.pid, requests, seconds, connections, generator
            )
            result["shutdown"] = shutdown_under_load(
                process, hostport, requests, connections, sigterm_after
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        log_text = (logs / "soak.log").read_text()
    result |= {
        "workers": workers,
        "weights": str(weights),
        "mix": [r.name for r in requests],
        "tracebacks_in_log": log_text.count("Traceback"),
    }
    return result


def render(result: dict[str, Any]) -> str:
    s = result["shutdown"]
    rows = [
        ("generator", result["generator"]),
        ("workers x connections", f"{result['workers']} x {result['connections']}"),
        ("duration (s)", f"{result['seconds']:.1f}"),
        ("requests", f"{result['requests']:,}"),
        ("requests/s", f"{result['requests'] / result['seconds']:,.0f}"),
        (
            "errors (non-2xx + socket)",
            f"{result['non_2xx']} + {result['socket_errors']}",
        ),
        (
            "latency p50 / p99 / max (ms)",
            f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f} / {result['max_ms']:.1f}",
        ),
        ("RSS peak, all processes (MiB)", f"{result['rss_peak_mib']:.0f}"),
        (
            "RSS first -> last quarter (MiB)",
            f"{result['rss_early_mib']:.0f} -> {result['rss_late_mib']:.0f} "
            f"({result['rss_growth_mib']:+.0f})",
        ),
        ("tracebacks in server log", str(result["tracebacks_in_log"])),
        ("SIGTERM: in flight", str(s["in_flight_at_sigterm"])),
        ("SIGTERM: in flight completed 2xx", str(s["in_flight_completed_2xx"])),
        (
            "SIGTERM: sent after / served / refused",
            f"{s['sent_after_sigterm']} / {s['served_after_sigterm']} / "
            f"{s['refused_after_sigterm']}",
        ),
        ("SIGTERM: shutdown time (s)", f"{s['shutdown_s']:.2f}"),
        ("SIGTERM: exit code", str(s["exit_code"])),
    ]
    return key_values(rows)


def verdict(
    result: dict[str, Any], rss_limit_mib: float, growth_limit_mib: float
) -> list[str]:
    """What failed; empty when the soak passed."""
    s = result["shutdown"]
    problems = []
    if result["errors"]:
        problems.append(f"{result['errors']} errors under load")
    if result["rss_peak_mib"] > rss_limit_mib:
        problems.append(f"peak RSS {result['rss_peak_mib']:.0f} MiB > {rss_limit_mib}")
    if result["rss_growth_mib"] > growth_limit_mib:
        problems.append(f"RSS grew {result['rss_growth_mib']:.0f} MiB")
    if result["tracebacks_in_log"]:
        problems.append("tracebacks in the server log")
    if s["errors_before_sigterm"]:
        problems.append(f"{s['errors_before_sigterm']} errors before SIGTERM")
    if s["in_flight_failed"]:
        problems.append(
            f"in-flight requests failed at SIGTERM: {s['in_flight_failed']}"
        )
    if s["exit_code"] != 0:
        problems.append(f"exit code {s['exit_code']}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "asyncio"), default="auto"
    )
    parser.add_argument("--sigterm-after", type=float, default=2.0)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--rss-limit-mib", type=float, default=1024.0)
    parser.add_argument("--rss-growth-limit-mib", type=float, default=64.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = run(
        seconds=args.seconds,
        connections=args.connections,
        workers=args.workers,
        generator=args.generator,
        sigterm_after=args.sigterm_after,
        weights=args.weights,
    )
    problems = verdict(result, args.rss_limit_mib, args.rss_growth_limit_mib)
    return finish(result, problems, render(result), args.out)


if __name__ == "__main__":
    sys.exit(main())
