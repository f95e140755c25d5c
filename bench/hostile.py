"""Hostile conditions, bounded: ``python -m bench.hostile [costs|run]``.

``run`` (the default) starts ``mnist-serve`` with its default settings (one
worker, as in Docker and Kubernetes) on 127.0.0.1 and, for ``--seconds``:

* holds ``--slow`` sockets that declared a body and send none of it, and as
  many that trickle a header block that never ends, reconnecting each one the
  server closes (the attacker of issue 15);
* drives the worst valid mix over ``--connections`` connections: 8 MiB JSON
  bodies to /predict and /v2, 4,096-row octet-stream batches with
  ``?return_input=true``, /activations grids and bodies of 100,000 points,
  multipart uploads at the per-request pixel limit, a 16-megapixel PNG,
  /explain;
* probes ``/health/live``, ``/health/ready`` and ``/metrics`` every 0.1 s with
  the Kubernetes probes' 2 s timeout;

and reports the probes' statuses and latencies, what the mix got (200, 503),
and the worker's peak resident memory (VmHWM) against its idle size, the
memory bound (idle + ``MNIST_SERVE_MEMORY_BUDGET`` + the connections'
buffers + the free memory glibc may keep) and the memory limit in ``deploy/k8s/deployment.yaml``.

``costs`` sends each heavy request alone and compares the worker's peak
memory growth with what the admission charged for it (the constants of
``app/admission.py`` come from here). ``connections`` opens 500 connections
each way one can be held open (idle, an incomplete header block at the size
limit, a body the route has not read yet) and reports the resident memory
each one costs (:data:`CONNECTION_KIB` comes from here).

Only 127.0.0.1 is targeted; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import io
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from bench.common import finish, key_values
from bench.procs import free_port, launch, mnist_serve_command, wait_ready
from bench.soak import PROJECT_WEIGHTS, Request, asyncio_load

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = PROJECT_ROOT / "deploy" / "k8s" / "deployment.yaml"
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results" / "hostile.json"
MiB = 1024 * 1024
BODY = 8 * MiB  # the default MNIST_SERVE_MAX_BODY_BYTES


# --------------------------------------------------------------------------
# The worst valid requests at the default limits
# --------------------------------------------------------------------------


def _digit_png(side: int, mode: str = "L") -> bytes:
    image = Image.new(mode, (side, side), "black")
    ImageDraw.Draw(image).line(
        [(side // 3, side // 5), (side * 2 // 3, side * 4 // 5)],
        fill="white",
        width=max(2, side // 12),
    )
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _json_rows(rows: int, value: str = "0.5") -> bytes:
    row = "[" + ",".join([value] * 784) + "]"
    return ('{"x": [' + ",".join([row] * rows) + "]}").encode()


def _largest_rows(per_row: int, overhead: int, limit: int = BODY) -> int:
    return min(4096, (limit - overhead) // per_row)


def _png_of(side: int, mode: str) -> bytes:
    image = Image.new(mode, (side, side))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def image_variants() -> list[Request]:
    """16-megapixel images (the per-image limit) in the modes that cost most,
    and images at the pipeline's working size (2 megapixels) and below."""
    out = [
        Request(
            f"{route}-png-{side}x{side}",
            "POST",
            f"/{route}",
            "image/png",
            _digit_png(side),
        )
        for side in (300, 1000, 1414)
        for route in ("predict", "explain")
    ]
    for mode in ("RGBA", "I;16", "P", "LA"):
        out.append(
            Request(
                f"png-16mpx-{mode}",
                "POST",
                "/predict",
                "image/png",
                _png_of(4000, mode),
            )
        )
    jpeg = io.BytesIO()
    Image.new("RGB", (4000, 4000)).save(jpeg, "JPEG")
    out.append(Request("jpeg-16mpx", "POST", "/predict", "image/jpeg", jpeg.getvalue()))
    return out


def worst_mix() -> list[Request]:
    """Each kind of request at the largest size the default limits accept."""
    # {"x": [ROW,ROW,...]}: 8 bytes, then 3,136 per row and a comma between.
    json_rows = _largest_rows(len(_json_rows(1)) - 9 + 1, 9)
    v2_rows = json_rows - 1
    v2 = (
        b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [%d, 784], '
        b'"data": ' % v2_rows + _json_rows(v2_rows)[len(b'{"x": ') : -1] + b"}]}"
    )
    boundary = "hostileboundary"
    # 64 parts (the part limit) of 500,000 pixels: 32 M, the per-request limit.
    part = _digit_png(707)
    multipart = (
        b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{i}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + part
            + b"\r\n"
            for i in range(64)
        )
        + f"--{boundary}--\r\n".encode()
    )
    points = ",".join(f"{v:.4f}" for v in np.linspace(-5, 5, 100_000))
    return [
        Request("json-8mib", "POST", "/predict", "application/json", _json_rows(json_rows)),
        Request("v2-json-8mib", "POST", "/v2/models/mnist/infer", "application/json", v2),
        Request(
            "octet-4096-return-input",
            "POST",
            "/predict?return_input=true",
            "application/octet-stream",
            bytes(784 * 4096),
        ),
        Request("act-grid-100k", "GET", "/activations/gelu?start=-5&stop=5&num=100000"),
        Request(
            "act-post-100k",
            "POST",
            "/activations/elu",
            "application/json",
            ('{"x": [' + points + '], "alpha": 1}').encode(),
        ),
        Request(
            "multipart-64x500kpx",
            "POST",
            "/predict",
            f"multipart/form-data; boundary={boundary}",
            multipart,
        ),
        Request("png-16mpx", "POST", "/predict", "image/png", _digit_png(4000, "RGBA")),
        Request("explain-png", "POST", "/explain", "image/png", _digit_png(1000)),
    ]  # fmt: skip


def json_shapes() -> list[Request]:
    """8 MiB JSON texts of the shapes that make the most Python objects per byte."""
    out = []
    for name, item in (
        ("nested", "[0]"),
        ("nested-deep", "[[[0]]]"),
        ("empty-arrays", "[[]]"),
        ("objects", '{"a":{}}'),
        ("strings", '""'),
        ("zeros", "0"),
    ):
        count = (BODY - 16) // (len(item) + 1)
        body = ('{"x": [' + ",".join([item] * count) + "]}").encode()
        out.append(
            Request(f"json-{name}", "POST", "/predict", "application/json", body)
        )
    nested = ",".join(["[0]"] * ((BODY - 128) // 4))
    out.append(
        Request(
            "v2-json-nested",
            "POST",
            "/v2/models/mnist/infer",
            "application/json",
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 784], '
            b'"data": [' + nested.encode() + b"]}]}",
        )
    )
    points = ",".join(["[0]"] * ((BODY - 16) // 4))
    out.append(
        Request(
            "act-post-nested",
            "POST",
            "/activations/elu",
            "application/json",
            ('{"x": [' + points + "]}").encode(),
        )
    )
    return out


def parser_keep() -> list[Request]:
    """JSON bodies at the size after which the loop keeps its simdjson parser.

    The worst shapes for what the parser's buffers hold per body byte (a
    number per two bytes, an array per four), and a batch of 40 images.
    """
    from app.codecs.fastjson import KEEP_PARSER_BYTES

    def filled(item: str) -> bytes:
        count = (KEEP_PARSER_BYTES - 8) // (len(item) + 1)
        return ('{"x": [' + ",".join([item] * count) + "]}").encode()

    return [
        Request("json-keep-zeros", "POST", "/predict", "application/json", filled("0")),
        Request("json-keep-nested", "POST", "/predict", "application/json", filled("[0]")),
        Request(
            "json-batch-40",
            "POST",
            "/predict",
            "application/json",
            _json_rows(40, "0.35294117647058826"),
        ),
    ]  # fmt: skip


# --------------------------------------------------------------------------
# The server's memory
# --------------------------------------------------------------------------


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


def reset_peak(pid: int) -> None:
    """Set VmHWM back to the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def start(
    log: Path, env: dict[str, str] | None = None, weights: Path = PROJECT_WEIGHTS
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = launch(mnist_serve_command(port, weights), log, env)
    wait_ready(process, f"http://127.0.0.1:{port}", log)
    return process, f"127.0.0.1:{port}"


def _one(hostport: str, request: Request) -> int | None:
    outcomes, _ = asyncio_load(hostport, [request], 0.01, 1, reconnect=False)
    return outcomes[0].status if outcomes else None


def costs(log_dir: Path) -> list[dict[str, Any]]:
    """Peak memory growth of each heavy request, sent alone to a fresh worker,
    and what the worker still holds after it (``kept``)."""
    env = {"MNIST_SERVE_MEMORY_BUDGET": str(4096 * MiB)}
    rows = []
    for request in [*worst_mix(), *image_variants(), *json_shapes(), *parser_keep()]:
        process, hostport = start(log_dir / "costs.log", env)
        try:
            _one(hostport, Request("warm", "GET", "/health/ready"))
            base = status_kib(process.pid, "VmRSS")
            reset_peak(process.pid)
            status = _one(hostport, request)
            growth = status_kib(process.pid, "VmHWM") - base
            kept = status_kib(process.pid, "VmRSS") - base
        finally:
            process.terminate()
            process.wait(30)
        rows.append(
            {
                "request": request.name,
                "status": status,
                "body_mib": len(request.body) / MiB,
                "peak_growth_mib": growth / 1024,
                "kept_mib": kept / 1024,
                "charged_mib": charge_of(request) / MiB,
            }
        )
    return rows


def connections(log_dir: Path, count: int = 500) -> list[dict[str, Any]]:
    """Resident memory per open connection, for each way of holding one open."""
    env = {
        "MNIST_SERVE_MAX_CONNECTIONS": str(count + 10),
        "MNIST_SERVE_HEADER_TIMEOUT": "120",
        "MNIST_SERVE_BODY_TIMEOUT": "120",
    }
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: "
    ways = {
        "idle (nothing sent)": b"",
        "incomplete 16 KiB header block": head + b"a" * (16 * 1024 - len(head) - 8),
        "256 KiB of body waiting for budget": (
            b"POST /activations/relu HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: 8000000\r\n\r\n" + b" " * 256 * 1024
        ),
    }
    rows = []
    for name, data in ways.items():
        # A full budget (16 MiB, taken by the first few bodies): the others'
        # bytes wait in uvicorn's buffers, uncharged; the 16 MiB are taken off.
        waiting = name.startswith("256 KiB")
        extra = (
            {
                "MNIST_SERVE_MEMORY_BUDGET": str(16 * MiB),
                "MNIST_SERVE_QUEUE_TIMEOUT": "120",
            }
            if waiting
            else {}
        )
        process, hostport = start(log_dir / "connections.log", {**env, **extra})
        host, port = hostport.split(":")
        socks = []
        try:
            base = status_kib(process.pid, "VmRSS")
            for _ in range(count):
                sock = socket.create_connection((host, int(port)))
                if data:
                    sock.sendall(data)
                socks.append(sock)
            time.sleep(1.0)  # let the server read what was sent
            held = (
                status_kib(process.pid, "VmRSS") - base - (16 * 1024 if waiting else 0)
            )
        finally:
            for sock in socks:
                sock.close()
            process.terminate()
            process.wait(30)
        rows.append({"way": name, "connections": count, "kib_each": held / count})
    return rows


def charge_of(request: Request) -> int:
    """What the admission charges for ``request``, from the same functions."""
    from app import admission
    from app.codecs import images, jsonbody, v2
    from app.codecs.v2 import ANSWER_BYTES_PER_ROW

    body = len(request.body)
    charged = 2 * body
    ctype = (request.content_type or "").split(";")[0]
    json_charge = body * admission.JSON_BYTES_PER_BODY_BYTE
    # The general reader's extra, charged when the fast reader cannot say.
    general = max(0, jsonbody.general_cost(request.body) - json_charge)
    if request.path.startswith("/activations"):
        charged += 100_000 * admission.ACTIVATION_BYTES_PER_POINT
        if ctype == "application/json":
            charged += json_charge + general
    elif request.path.startswith("/v2"):
        charged += json_charge + 4096 * ANSWER_BYTES_PER_ROW
        if v2.fast_decode(request.body, None, 4096) is None:
            charged += general
    elif ctype == "application/json":
        charged += json_charge
        if jsonbody.fast_predict(request.body, 4096) is None:
            charged += general
    elif ctype == "application/octet-stream":
        charged += body * admission.OCTET_BYTES_PER_BODY_BYTE
    elif ctype == "multipart/form-data":
        parts = images.split_multipart(
            request.body, request.content_type or "", max_parts=64, max_part_bytes=BODY
        )
        charged += images.decode_work(parts, 2**62).cost
    else:
        charged += images.decode_work([images.Upload(None, request.body)], 2**62).cost
    return charged


# --------------------------------------------------------------------------
# The bounded run
# --------------------------------------------------------------------------


class Attackers:
    """Sockets held open: bodies that never come, header blocks that never end."""

    def __init__(self, hostport: str, count: int) -> None:
        host, port = hostport.split(":")
        self.address = (host, int(port))
        self.count = count
        self.stop = threading.Event()
        self.reconnects = 0
        self.refused = 0
        self._threads = [
            threading.Thread(target=self._hold, args=(kind,), daemon=True)
            for kind in ("body", "headers")
        ]

    def _open(self, kind: str) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=2)
        except OSError:
            self.refused += 1
            return None
        sock.setblocking(False)
        head = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\n\r\n"
            if kind == "body"
            else b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
        )
        try:
            sock.send(head)
        except OSError:
            sock.close()
            return None
        return sock

    def _hold(self, kind: str) -> None:
        socks: list[socket.socket] = []
        while not self.stop.is_set():
            alive = []
            for sock in socks:
                try:
                    data = sock.recv(4096)
                    closed = not data
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    sock.close()
                    self.reconnects += 1
                else:
                    if kind == "headers":
                        try:
                            sock.send(b"X-a: b\r\n")
                        except OSError:
                            pass
                    alive.append(sock)
            socks = alive
            while len(socks) < self.count and not self.stop.is_set():
                sock = self._open(kind)
                if sock is None:
                    break
                socks.append(sock)
            self.stop.wait(0.2)
        for sock in socks:
            sock.close()

    def __enter__(self) -> Attackers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()


class Prober:
    """GET the probes every 0.1 s with a 2 s timeout, as the kubelet would."""

    PATHS = ("/health/live", "/health/ready", "/metrics")

    def __init__(self, hostport: str) -> None:
        self.hostport = hostport
        self.results: list[tuple[str, int | None, float]] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import http.client

        host, port = self.hostport.split(":")
        while not self.stop.is_set():
            for path in self.PATHS:
                start = time.perf_counter()
                status: int | None
                try:
                    conn = http.client.HTTPConnection(host, int(port), timeout=2)
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    conn.close()
                except OSError:
                    status = None
                self.results.append((path, status, time.perf_counter() - start))
            self.stop.wait(0.1)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()


def k8s_memory_limit_mib(path: Path = DEPLOYMENT) -> float | None:
    """The container's memory limit in deployment.yaml, MiB."""
    import yaml

    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            raw = str(container["resources"]["limits"]["memory"])
            units = {"Mi": 1, "Gi": 1024, "M": 1e6 / MiB, "G": 1e9 / MiB}
            for suffix, scale in units.items():
                if raw.endswith(suffix):
                    return float(raw[: -len(suffix)]) * scale
            return float(raw) / MiB
    return None


def run(
    *,
    seconds: float = 20.0,
    connections: int = 16,
    slow: int = 64,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    from app.settings import Settings

    settings = Settings(_env_file=None, **_lower(env or {}))  # type: ignore[call-arg]
    mix = worst_mix()
    with tempfile.TemporaryDirectory() as tmp:
        logs = log_dir or Path(tmp)
        process, hostport = start(logs / "hostile.log", env)
        try:
            for r in mix:  # every request of the mix is valid, alone
                status = _one(hostport, r)
                if status != 200:
                    raise RuntimeError(f"request {r.name} answered {status}, not 200")
            idle = status_kib(process.pid, "VmRSS") / 1024
            reset_peak(process.pid)
            with Attackers(hostport, slow) as attackers, Prober(hostport) as prober:
                outcomes, _ = asyncio_load(hostport, mix, seconds, connections)
            peak = status_kib(process.pid, "VmHWM") / 1024
            # Requests the load generator gave up on may still be finishing.
            deadline = time.monotonic() + 30
            while (after := _one(hostport, mix[0])) != 200:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            process.terminate()
            code = process.wait(30)
        log_text = (logs / "hostile.log").read_text()
    statuses: Counter[str] = Counter()
    for o in outcomes:
        statuses[f"{o.name} {o.status or o.error}"] += 1
    probe_latency = [t for _, s, t in prober.results if s is not None]
    from app.admission import ALLOCATOR_SLACK

    conn_mib = settings.max_connections * CONNECTION_KIB / 1024
    slack_mib = ALLOCATOR_SLACK / MiB
    bound = idle + settings.memory_budget / MiB + conn_mib + slack_mib
    return {
        "seconds": seconds,
        "connections": connections,
        "slow_sockets": 2 * slow,
        "attacker_reconnects": attackers.reconnects,
        "attacker_refused": attackers.refused,
        "requests": len(outcomes),
        "statuses": dict(sorted(statuses.items())),
        "probes": len(prober.results),
        "probes_not_200": sum(1 for _, s, _ in prober.results if s != 200),
        "probe_p99_ms": float(np.percentile(probe_latency, 99) * 1e3)
        if probe_latency
        else None,
        "probe_max_ms": max(probe_latency, default=0.0) * 1e3,
        "rss_idle_mib": idle,
        "rss_peak_mib": peak,
        "memory_budget_mib": settings.memory_budget / MiB,
        "connections_allowance_mib": conn_mib,
        "allocator_slack_mib": slack_mib,
        "rss_bound_mib": bound,
        "k8s_limit_mib": k8s_memory_limit_mib(),
        "served_after": after,
        "exit_code": code,
        "tracebacks_in_log": log_text.count("Traceback"),
    }


# Resident memory one open connection may hold at most in uvicorn and h11,
# from `python -m bench.hostile connections`: 4 KiB idle, 21 KiB with an
# incomplete header block at the 16 KiB limit, 219 KiB with 256 KiB of body
# waiting for budget. The worst case is uvicorn's flow-control buffer (it
# stops reading past 64 KiB) plus one read of the transport (256 KiB).
CONNECTION_KIB = 320


def _lower(env: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix("MNIST_SERVE_").lower(): v for k, v in env.items()}


def render(result: dict[str, Any]) -> str:
    rows = [
        ("load", f"{result['connections']} connections x {result['seconds']:.0f} s"),
        ("held sockets (slow body + slowloris)", str(result["slow_sockets"])),
        ("attacker reconnects (server closed)", str(result["attacker_reconnects"])),
        ("requests", f"{result['requests']:,}"),
        *((f"  {k}", str(v)) for k, v in result["statuses"].items()),
        ("probes (live, ready, metrics)", str(result["probes"])),
        ("probes not 200", str(result["probes_not_200"])),
        (
            "probe latency p99 / max (ms)",
            f"{result['probe_p99_ms'] or 0:.0f} / {result['probe_max_ms']:.0f}",
        ),
        ("RSS idle (MiB)", f"{result['rss_idle_mib']:.0f}"),
        ("RSS peak (MiB)", f"{result['rss_peak_mib']:.0f}"),
        (
            "bound: idle + budget + connections + allocator slack (MiB)",
            f"{result['rss_idle_mib']:.0f} + {result['memory_budget_mib']:.0f} + "
            f"{result['connections_allowance_mib']:.0f} + "
            f"{result.get('allocator_slack_mib', 0):.0f} = {result['rss_bound_mib']:.0f}",
        ),
        ("k8s memory limit (MiB)", f"{result['k8s_limit_mib']}"),
        ("tracebacks in server log", str(result["tracebacks_in_log"])),
    ]
    return key_values(rows)


def verdict(result: dict[str, Any]) -> list[str]:
    problems = []
    if result["probes_not_200"]:
        problems.append(f"{result['probes_not_200']} probes not 200")
    if result["rss_peak_mib"] > result["rss_bound_mib"]:
        problems.append("peak RSS over the stated bound")
    limit = result["k8s_limit_mib"]
    if limit is not None and result["rss_peak_mib"] > limit:
        problems.append("peak RSS over the k8s memory limit")
    # The run overloads one worker on purpose: 503s are the admission at
    # work; a reset is a 503 sent while the client was still uploading, and a
    # timeout is the client's own 10 s. Any other status is a failure.
    statuses = [k.split()[1] for k in result["statuses"]]
    if any(s.isdigit() and s not in ("200", "503") for s in statuses):
        problems.append("answers other than 200 and 503 in the valid mix")
    if result["served_after"] != 200:
        problems.append("not serving after the run")
    if result["tracebacks_in_log"]:
        problems.append("tracebacks in the server log")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hostile", description=__doc__
    )
    parser.add_argument(
        "what", nargs="?", choices=("run", "costs", "connections"), default="run"
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--slow", type=int, default=64, help="sockets of each kind")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "connections":
            for row in connections(Path(tmp)):
                print(
                    f"{row['way']:34s} {row['connections']} connections: "
                    f"{row['kib_each']:6.1f} KiB each"
                )
            return 0
        if args.what == "costs":
            rows = costs(Path(tmp))
            for row in rows:
                print(
                    f"{row['request']:26s} status {row['status']}  body "
                    f"{row['body_mib']:6.2f} MiB  peak growth "
                    f"{row['peak_growth_mib']:7.1f} MiB  charged "
                    f"{row['charged_mib']:7.1f} MiB  kept {row['kept_mib']:5.1f} MiB"
                )
            return 0
        result = run(seconds=args.seconds, connections=args.connections, slow=args.slow)
    problems = verdict(result)
    return finish(result, problems, render(result), args.out)


if __name__ == "__main__":
    sys.exit(main())
