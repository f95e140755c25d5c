"""Load generators: wrk for HTTP/1.1, h2load for gRPC, and asyncio stand-ins.

wrk (Debian package ``wrk``) and h2load (``nghttp2-client``) are C programs,
so the client is not what limits a row; when one is missing, a small asyncio
client takes its place and the run says so (its rates are bound by Python).
Every generator returns the same summary: requests, seconds, latency
percentiles and the errors it saw. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# A wrk script ends with this: the summary as one JSON line on stdout.
WRK_DONE = r"""
done = function(summary, latency, requests)
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, " ..
    "\"p99_us\": %d, \"max_us\": %d, \"non_2xx\": %d, \"connect\": %d, " ..
    "\"read\": %d, \"write\": %d, \"timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
"""

# One request, repeated: its body from a file, its headers from a JSON file.
_ONE_REQUEST = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local h = assert(io.open(os.getenv("BENCH_HEADERS"), "rb"))
for line in h:lines() do
  local name, value = line:match("^([^:]+): (.*)$")
  wrk.headers[name] = value
end
h:close()
"""

GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}


def http_generator() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio (wrk not installed)"


def grpc_generator() -> str:
    return "h2load" if shutil.which("h2load") else "grpc.aio (h2load not installed)"


def run_wrk(
    script: str,
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run wrk with a Lua ``script`` (ending in :data:`WRK_DONE`); its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.lua"
        path.write_text(script)
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--timeout", f"{timeout:g}s", "-s", str(path), url],
            capture_output=True, text=True, timeout=seconds + 60,
            env={**os.environ, **(env or {})}, check=True,
        )  # fmt: skip
    line = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "non_2xx": raw["non_2xx"],
        "socket_errors": socket_errors,
        "errors": raw["non_2xx"] + socket_errors,
    }


def http_load(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """POST ``body`` to ``url`` over ``connections`` keep-alive connections."""
    if not shutil.which("wrk"):
        return asyncio_http_load(url, body, headers, seconds, connections)
    with tempfile.TemporaryDirectory() as tmp:
        body_file, header_file = Path(tmp) / "body", Path(tmp) / "headers"
        body_file.write_bytes(body)
        header_file.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
        return run_wrk(
            _ONE_REQUEST + WRK_DONE,
            url,
            seconds=seconds,
            connections=connections,
            env={"BENCH_BODY": str(body_file), "BENCH_HEADERS": str(header_file)},
        )


def _summary(latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    q = (
        np.percentile(np.array(latencies) * 1e3, [50, 99, 100])
        if latencies
        else [0] * 3
    )
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_ms": float(q[0]),
        "p99_ms": float(q[1]),
        "max_ms": float(q[2]),
        "non_2xx": errors,
        "socket_errors": 0,
        "errors": errors,
    }


async def _http_connection(
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


def asyncio_http_load(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """The stand-in for wrk: plain HTTP/1.1 keep-alive over asyncio streams."""
    hostport, _, path = url.removeprefix("http://").partition("/")
    host, port = hostport.split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []

    async def main() -> int:
        stop_at = time.perf_counter() + seconds
        bad = await asyncio.gather(
            *(
                _http_connection(host, int(port), request, stop_at, latencies)
                for _ in range(connections)
            )
        )
        return sum(bad)

    start = time.perf_counter()
    bad = asyncio.run(main())
    return _summary(latencies, time.perf_counter() - start, bad)


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message on the wire: uncompressed flag, big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_load(
    hostport: str, method: str, message: bytes, seconds: float, connections: int
) -> dict[str, Any]:
    """Unary calls of ``method`` with ``message``, ``connections`` at a time.

    h2load sends each call on its own stream, ``connections`` HTTP/2
    connections with one call in flight each (as wrk does for HTTP/1.1). It
    sees HTTP statuses, not gRPC's (those are in trailers): the caller checks
    the server's own count of failed calls.
    """
    if not shutil.which("h2load"):
        return asyncio_grpc_load(hostport, method, message, seconds, connections)
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log"
        body.write_bytes(grpc_frame(message))
        headers = [arg for k, v in GRPC_HEADERS.items() for arg in ("-H", f"{k}: {v}")]
        out = subprocess.run(
            ["h2load", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}",
             "-d", str(body), *headers, f"--log-file={log}",
             f"http://{hostport}{method}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        # Each line: start time (µs), HTTP status, seconds taken (µs).
        entries = [line.split("\t") for line in log.read_text().splitlines()]
    latencies = [int(e[2]) / 1e6 for e in entries if len(e) == 3]
    errors = sum(1 for e in entries if len(e) == 3 and e[1] != "200")
    finished = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("finished in")), ""
    )
    # "finished in 3.00s, 1011.67 req/s, ..." (or "999.92ms", "850.10us")
    elapsed = h2load_seconds(finished.split()[2]) if finished else seconds
    failed = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("requests:")), ""
    )
    if " 0 failed, 0 errored" not in failed:
        errors = max(errors, 1)
    return _summary(latencies, elapsed, errors)


def h2load_seconds(token: str) -> float:
    """h2load's duration ("3.00s,", "999.92ms,", "850.10us,") in seconds."""
    token = token.rstrip(",")
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if token.endswith(unit):
            return float(token[: -len(unit)]) * scale
    raise ValueError(f"not an h2load duration: {token!r}")


def asyncio_grpc_load(
    hostport: str, method: str, message: bytes, seconds: float, connections: int
) -> dict[str, Any]:
    """The stand-in for h2load: grpc.aio unary calls, one channel per connection."""
    import grpc

    latencies: list[float] = []

    async def caller(stop_at: float) -> int:
        bad = 0
        async with grpc.aio.insecure_channel(hostport) as channel:
            call = channel.unary_unary(method)
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    await call(message)
                except grpc.aio.AioRpcError:
                    bad += 1
                latencies.append(time.perf_counter() - start)
        return bad

    async def main() -> int:
        stop_at = time.perf_counter() + seconds
        return sum(await asyncio.gather(*(caller(stop_at) for _ in range(connections))))

    start = time.perf_counter()
    bad = asyncio.run(main())
    return _summary(latencies, time.perf_counter() - start, bad)
