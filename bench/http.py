"""HTTP and gRPC: mnist-serve against its peers, under C load generators on 127.0.0.1.

Every row is one kind of request sent over a fixed number of connections by
wrk (HTTP/1.1) or h2load (gRPC), each a C program, so the client is not what
limits the rate. Each row has a peer measured in the same run:

* ``/predict`` rows: the floor (``bench/floor_app.py``), a bare FastAPI +
  Pydantic app that parses the same bodies and answers a constant;
* ``/v2`` and gRPC rows: Seldon MLServer's V2 server on the same weights
  (``bench/mlserver.py``), when its environment is installed.

All servers run at once, every row is measured ``repeats`` times in rounds
(each round runs every server in turn, so a burst of load from elsewhere hits
the rows being compared alike) and the median round is reported, with the
machine's load average when the row started. Each row is first checked to be a
success with the right number of answers, and to have had no error under load
(for gRPC, from the server's own count of failed calls where it keeps one).

    python -m bench http [--quick]
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import loadgen, mlserver
from bench.common import (
    default_weights,
    sample_pixels,
    table,
    target_row,
    targets_table,
)
from bench.procs import (
    RssSampler,
    free_port,
    launch,
    mnist_serve_command,
    wait_ready,
)

CONNECTIONS = 4
FLOOR, OURS, MLSERVER = "floor", "ours", "mlserver"
LABELS = {
    FLOOR: "floor (FastAPI+Pydantic)",
    OURS: "mnist-serve",
    MLSERVER: "MLServer",
}
INFER = "/v2/models/mnist/infer"
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
# Issue 19's goals for the 1-worker rows (see ratios()).
GOALS = {"json_single": 1.5, "json_batch": 6.0, "octet_batch": 80.0, "v2_json": 0.9}


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one server is sent for a case: an HTTP POST or a gRPC call."""

    path: str  # the HTTP path, or the gRPC method
    body: bytes  # for gRPC, the serialised message
    headers: dict[str, str] = field(default_factory=dict)
    grpc: bool = False


@dataclass(frozen=True)
class Case:
    """One kind of request, how many images it holds, and what each server gets.

    ``peer`` is the server whose row is the baseline of the others.
    """

    name: str
    images: int
    requests: dict[str, Request]
    peer: str = FLOOR


def _png(pixels: np.ndarray) -> bytes:
    import io

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


def _unit(pixels: np.ndarray) -> np.ndarray:
    # What a client holding the book's normalised data sends: floats in [0, 1].
    return pixels.astype(np.float64) / 255.0


def _posts(paths: dict[str, str], body: bytes, content_type: str) -> dict[str, Request]:
    headers = {"Content-Type": content_type}
    return {kind: Request(path, body, headers) for kind, path in paths.items()}


def cases(batch: int = 100, parts: int = 50) -> list[Case]:
    """/predict's five bodies (against the floor), then /v2's and gRPC's."""
    pixels = sample_pixels(max(batch, parts))
    images = _unit(pixels[:batch]).tolist()
    boundary = "mnistservebenchboundary"

    def predict(floor_path: str) -> dict[str, str]:
        return {FLOOR: floor_path, OURS: "/predict"}

    return [
        Case(
            "JSON single",
            1,
            _posts(predict("/json"), json.dumps({"x": images[0]}).encode(),
                   "application/json"),
        ),
        Case(
            f"JSON batch {batch}",
            batch,
            _posts(predict("/json"), json.dumps({"x": images}).encode(),
                   "application/json"),
        ),
        Case(
            f"octet-stream batch {batch}",
            batch,
            _posts(predict("/octet"), pixels[:batch].tobytes(),
                   "application/octet-stream"),
        ),
        Case("PNG single", 1,
             _posts(predict("/image"), _png(pixels[0]), "image/png")),
        Case(
            f"multipart {parts} PNG",
            parts,
            _posts(
                predict("/multipart"),
                _multipart([_png(p) for p in pixels[:parts]], boundary),
                f"multipart/form-data; boundary={boundary}",
            ),
        ),
        *v2_cases(pixels, batch),
        *grpc_cases(pixels, batch),
    ]  # fmt: skip


def v2_json(values: np.ndarray, datatype: str) -> bytes:
    """An Open Inference Protocol JSON request, the data flat (as tritonclient sends)."""
    tensor = {
        "name": "input",
        "shape": list(values.shape),
        "datatype": datatype,
        "data": values.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def v2_binary(values: np.ndarray, datatype: str) -> tuple[bytes, dict[str, str]]:
    """The same with the binary tensor data extension: JSON header, raw tensor."""
    raw = values.astype("<f4" if datatype == "FP32" else np.uint8).tobytes()
    tensor = {
        "name": "input",
        "shape": list(values.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor]}).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, headers


def v2_cases(pixels: np.ndarray, batch: int) -> list[Case]:
    floats = _unit(pixels[:batch]).astype(np.float32)
    body, headers = v2_binary(floats, "FP32")
    return [
        Case(
            f"V2 JSON batch {batch} FP32",
            batch,
            _posts({OURS: INFER, MLSERVER: INFER}, v2_json(floats, "FP32"),
                   "application/json"),
            peer=MLSERVER,
        ),
        # MLServer has no binary tensor extension over REST.
        Case(f"V2 binary batch {batch} FP32", batch,
             {OURS: Request(INFER, body, headers)}, peer=MLSERVER),
    ]  # fmt: skip


def _messages() -> Any:
    """The protocol's messages: the app's generated module, or tritonclient's
    when it registered the same package first in this process (the tests
    import both; the messages match field by field, tests/e2e/test_grpc.py)."""
    try:
        from app.grpc_api.protos import inference_pb2

        return inference_pb2
    except TypeError:
        from tritonclient.grpc import service_pb2

        return service_pb2


def grpc_request(values: np.ndarray, datatype: str) -> bytes:
    """A serialised ModelInferRequest with the tensor as raw contents."""
    pb = _messages()
    raw = values.astype("<f4" if datatype == "FP32" else np.uint8).tobytes()
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input", datatype=datatype, shape=list(values.shape)
    )
    message = pb.ModelInferRequest(
        model_name="mnist", inputs=[tensor], raw_input_contents=[raw]
    )
    return bytes(message.SerializeToString())


def grpc_cases(pixels: np.ndarray, batch: int) -> list[Case]:
    out = []
    for size, label in ((1, "single"), (batch, f"batch {batch}")):
        for datatype in ("FP32", "UINT8"):
            values = pixels[:size] if datatype == "UINT8" else _unit(pixels[:size])
            call = Request(GRPC_INFER, grpc_request(values, datatype), grpc=True)
            out.append(
                Case(f"gRPC {label} {datatype}", size,
                     {OURS: call, MLSERVER: call}, peer=MLSERVER)
            )  # fmt: skip
    return out


def octet_case(batch: int) -> Case:
    return Case(
        f"octet-stream batch {batch}",
        batch,
        _posts({OURS: "/predict"}, sample_pixels(batch).tobytes(),
               "application/octet-stream"),
    )  # fmt: skip


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    workers: int
    process: subprocess.Popen[bytes]
    url: str
    grpc: str | None
    startup_s: float
    log: Path
    cleanup: Callable[[], None] = lambda: None

    @property
    def name(self) -> str:
        return LABELS[self.kind]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.cleanup()


def _command(kind: str, port: int, workers: int, weights: Path) -> list[str]:
    if kind == OURS:
        return mnist_serve_command(
            port, weights, "--workers", str(workers), "--log-level", "warning"
        )
    if kind == FLOOR:
        return [sys.executable, "-m", "uvicorn", "bench.floor_app:create_app",
                "--factory", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--log-level", "warning",
                "--no-access-log"]  # fmt: skip
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
    """Start ``ours`` (with gRPC), ``floor`` or ``mlserver``; wait until ready."""
    weights = weights or default_weights()
    if kind == MLSERVER:
        started = time.perf_counter()
        process, url, grpc, folder = mlserver.start(weights, logdir)
        return Server(kind, 1, process, url, grpc, time.perf_counter() - started,
                      Path(process.args[-1]),
                      lambda: _remove(folder))  # fmt: skip
    port = free_port()
    logdir = logdir or Path(tempfile.gettempdir())
    log = logdir / f"bench-{kind}-{port}.log"
    url = f"http://127.0.0.1:{port}"
    grpc = None
    env = dict(env or {})
    if kind == OURS:
        grpc_port = free_port()
        env.setdefault("MNIST_SERVE_GRPC_PORT", str(grpc_port))
        grpc = f"127.0.0.1:{env['MNIST_SERVE_GRPC_PORT']}"
    process = launch(_command(kind, port, workers, weights), log, env)
    ready = wait_ready(process, url, log, timeout=timeout)
    if workers > 1:
        _wait_workers(url)
    return Server(kind, workers, process, url, grpc, ready, log)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


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


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def answers(body: bytes, headers: dict[str, str]) -> int:
    """How many images an answer holds: /predict's, the floor's, or a V2 one."""
    size = headers.get("inference-header-content-length")
    data = json.loads(body[: int(size)] if size else body)
    if "labels" in data:
        return len(data["labels"])
    if "outputs" in data:
        (label,) = [o for o in data["outputs"] if o["name"] == "label"]
        return int(label["shape"][0])
    return 1


def grpc_answers(message: bytes) -> int:
    response = _messages().ModelInferResponse.FromString(message)
    (label,) = [o for o in response.outputs if o.name == "label"]
    return int(label.shape[0])


def check(server: Server, case: Case) -> None:
    """One request before the load: a success with the right number of answers."""
    request = case.requests[server.kind]
    if request.grpc:
        import grpc

        with grpc.insecure_channel(server.grpc) as channel:
            got = grpc_answers(channel.unary_unary(request.path)(request.body))
    else:
        http_request = urllib.request.Request(
            server.url + request.path,
            data=request.body,
            headers=request.headers,
            method="POST",
        )
        with urllib.request.urlopen(http_request, timeout=30) as r:
            got = answers(r.read(), {k.lower(): v for k, v in r.headers.items()})
    if got != case.images:
        raise RuntimeError(
            f"{server.name} {case.name}: {got} answers, not {case.images}"
        )


def failed_grpc_calls(server: Server) -> int | None:
    """mnist-serve's count of ModelInfer calls that did not end OK (None: no count)."""
    if server.kind != OURS:
        return None
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    failed = 0.0
    for line in text.splitlines():
        if line.startswith("mnist_serve_grpc_requests_total{") and (
            'method="ModelInfer"' in line and 'code="OK"' not in line
        ):
            failed += float(line.rsplit(" ", 1)[1])
    return int(failed)


def load(
    server: Server, case: Case, seconds: float, connections: int
) -> dict[str, Any]:
    """Drive ``server`` with ``case`` for ``seconds`` over ``connections``."""
    request = case.requests[server.kind]
    if request.grpc:
        assert server.grpc is not None
        before = failed_grpc_calls(server)
        result = loadgen.grpc_load(
            server.grpc, request.path, request.body, seconds, connections
        )
        after = failed_grpc_calls(server)
        if before is not None and after is not None:
            result["errors"] += after - before
        return result
    return loadgen.http_load(
        server.url + request.path, request.body, request.headers, seconds, connections
    )


def measure(
    server: Server,
    case: Case,
    *,
    seconds: float,
    warmup: float,
    repeats: int = 1,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """One server's row for one case, alone (:func:`run` interleaves servers)."""
    check(server, case)
    if warmup > 0:
        load(server, case, warmup, connections)
    return summarise(
        case,
        [_timed(server, case, seconds, connections) for _ in range(repeats)],
    )


def _timed(
    server: Server, case: Case, seconds: float, connections: int
) -> dict[str, Any]:
    loadavg = os.getloadavg()[0]
    with RssSampler(server.process.pid) as rss:
        result = load(server, case, seconds, connections)
    if result["errors"]:
        raise RuntimeError(f"{server.name} {case.name}: errors under load: {result}")
    return {**result, "rss_peak_mib": rss.peak or None, "loadavg_1m": loadavg}


def summarise(case: Case, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round (by rate) of a row, with every round's rate kept."""
    rates = [r["requests"] / r["seconds"] for r in rounds]
    median = statistics.median(rates)
    chosen = rounds[min(range(len(rates)), key=lambda i: abs(rates[i] - median))]
    peaks = [r["rss_peak_mib"] for r in rounds if r["rss_peak_mib"]]
    return {
        "req_per_s": median,
        "images_per_s": median * case.images,
        "p50_ms": chosen["p50_ms"],
        "p99_ms": chosen["p99_ms"],
        "max_ms": chosen["max_ms"],
        "p99_over_p50": chosen["p99_ms"] / max(chosen["p50_ms"], 1e-6),
        "requests": sum(r["requests"] for r in rounds),
        "rounds_req_per_s": rates,
        "rss_peak_mib": max(peaks) if peaks else None,
        "loadavg_1m": max(r["loadavg_1m"] for r in rounds),
    }


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def run(
    *,
    weights: Path | None = None,
    seconds: float = 2.0,
    warmup: float = 0.5,
    repeats: int = 3,
    workers: tuple[int, ...] = (1, 2),
    batch: int = 100,
    parts: int = 50,
    connections: int = CONNECTIONS,
    peers: bool = True,
) -> dict[str, Any]:
    """Every case on every server that takes it; ratios within the run."""
    all_cases = cases(batch, parts)
    kinds = [(FLOOR, 1)] + [(OURS, w) for w in workers]
    if peers and mlserver.python() is not None:
        kinds.append((MLSERVER, 1))
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running(kind, workers=n, weights=weights))
            for kind, n in kinds
        ]
        for case in all_cases:
            taking = [s for s in servers if s.kind in case.requests]
            for server in taking:
                check(server, case)
                load(server, case, warmup, connections)
            rounds: dict[int, list[dict[str, Any]]] = {id(s): [] for s in taking}
            for _ in range(repeats):
                for server in taking:
                    rounds[id(server)].append(
                        _timed(server, case, seconds, connections)
                    )
            for server in taking:
                rows.append(
                    {
                        "case": case.name,
                        "server": server.name,
                        "workers": server.workers,
                        "peer": LABELS[case.peer],
                        **summarise(case, rounds[id(server)]),
                    }
                )
    for row in rows:
        peer = _get(rows, row["case"], row["peer"], 1)
        row["vs_peer"] = row["images_per_s"] / peer["images_per_s"] if peer else None
    return {
        "generator": {
            "http": loadgen.http_generator(),
            "grpc": loadgen.grpc_generator(),
        },
        "connections": connections,
        "seconds": seconds,
        "repeats": repeats,
        "mlserver": mlserver.version() if peers else None,
        "rows": rows,
        "ratios": ratios(rows, batch),
    }


def _get(
    rows: list[dict[str, Any]], case: str, server: str, workers: int
) -> dict[str, Any] | None:
    for row in rows:
        if (row["case"], row["server"], row["workers"]) == (case, server, workers):
            return row
    return None


def ratios(rows: list[dict[str, Any]], batch: int = 100) -> list[dict[str, Any]]:
    """Issue 19's targets, 1-worker rows, each a ratio within the run."""
    ours, floor = LABELS[OURS], LABELS[FLOOR]

    def rate(case: str, server: str, key: str = "images_per_s") -> float | None:
        row = _get(rows, case, server, 1)
        return row[key] if row else None

    floor_single = rate("JSON single", floor, "req_per_s")
    pairs = [
        ("JSON single req/s vs floor", rate("JSON single", ours), floor_single,
         ">=", GOALS["json_single"]),
        (f"JSON batch {batch} images/s vs floor (aim 8x)",
         rate(f"JSON batch {batch}", ours), rate(f"JSON batch {batch}", floor),
         ">=", GOALS["json_batch"]),
        (f"octet batch {batch} images/s vs floor JSON single req/s",
         rate(f"octet-stream batch {batch}", ours), floor_single,
         ">=", GOALS["octet_batch"]),
        (f"/v2 JSON batch {batch} vs /predict JSON batch {batch}",
         rate(f"V2 JSON batch {batch} FP32", ours), rate(f"JSON batch {batch}", ours),
         ">=", GOALS["v2_json"]),
    ]  # fmt: skip
    out = [
        target_row(f"{name} (1 worker)", value / base, op, goal)
        for name, value, base, op, goal in pairs
        if value is not None and base
    ]
    mine = [r for r in rows if r["server"] == ours]
    worst = max(mine, key=lambda r: r["p99_over_p50"], default=None)
    if worst:
        out.append(
            target_row(
                f"worst mnist-serve p99/p50 at {CONNECTIONS} connections "
                f"({worst['workers']}w, {worst['case']})",
                worst["p99_over_p50"],
                "<=",
                5.0,
            )
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
                    seconds=seconds,
                    warmup=warmup,
                    connections=connections,
                )
                rows.append({"batch": batch, "workers": n_workers, **row})
    return {
        "generator": loadgen.http_generator(),
        "connections": connections,
        "rows": rows,
    }


COLUMNS = [
    ("case", "case"),
    ("server", "server"),
    ("workers", "workers"),
    ("req_per_s", "req/s"),
    ("images_per_s", "images/s"),
    ("vs_peer", "x peer"),
    ("peer", "peer"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("p99_over_p50", "p99/p50"),
    ("rss_peak_mib", "RSS MiB"),
    ("loadavg_1m", "load"),
]


def render(result: dict[str, Any]) -> str:
    rows = table(result["rows"], COLUMNS)
    notes = ""
    if result.get("mlserver") is None:
        notes = (
            "\n\nMLServer is not installed (python -m bench.mlserver install): the "
            "/v2 and gRPC rows have no peer."
        )
    return f"{rows}\n\n{targets_table(result['ratios'], 'HTTP target')}{notes}"


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
