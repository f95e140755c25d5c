"""Hostile conditions II (issue 15) against real ``mnist-serve`` processes on 127.0.0.1.

Sockets that hold a server down (slow bodies, unfinished headers, too many
connections), the memory budget, typed input on every path, one
content-negotiation rule, ambiguous framing, redirects, HEAD, client aborts
in the metrics, SIGHUP and a second SIGINT, and the pixels of one request.
Each test waits for the condition it needs; deadlines are short settings.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from core.weights import save_network
from tests.conftest import random_network
from tests.e2e.conftest import (
    Server,
    served_cleanly,
    start_server,
    wait_in_flight,
)
from tests.e2e.test_hostile import (
    QUICK,
    VALID,
    _connect,
    _json_x,
    _read_until_closed,
    _status_and_body,
    assert_still_serves,
    check_problem,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
LIMITS = {
    "MNIST_SERVE_HEADER_TIMEOUT": "1",
    "MNIST_SERVE_BODY_TIMEOUT": "2",
    "MNIST_SERVE_SEND_TIMEOUT": "2",
    "MNIST_SERVE_MAX_CONCURRENCY": "4",
    "MNIST_SERVE_MAX_REQUEST_PIXELS": "3000000",
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "weights.pkl"
    save_network(random_network(np.random.default_rng(0)), path)
    return path


@pytest.fixture(scope="module")
def server(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with served_cleanly(
        weights, tmp_path_factory.mktemp("conditions"), env=LIMITS
    ) as s:
        yield s
        # Still serving after the module: a clean exit of its own would pass
        # served_cleanly's checks (status 0, no traceback).
        assert s.process.poll() is None, s.log.read_text()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _raw(server: Server, data: bytes, wait: float = QUICK) -> tuple[bytes, bool]:
    with _connect(server) as sock:
        sock.sendall(data)
        return _read_until_closed(sock, wait)


def _statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def _png(side: int) -> bytes:
    image = Image.new("L", (side, side))
    image.paste(255, (side // 3, side // 5, side // 2, side * 4 // 5))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _multipart(parts: list[bytes], boundary: str = "xyzzy") -> tuple[bytes, str]:
    body = (
        b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{i}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + part
            + b"\r\n"
            for i, part in enumerate(parts)
        )
        + f"--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------
# 1. Slow bodies and unfinished headers do not deny the probes or the work
# --------------------------------------------------------------------------


PROBES = ("/health/live", "/health/ready", "/metrics", "/", "/v2/health/ready")


def test_probes_and_work_are_served_while_sockets_hold_slow_bodies(
    server: Server, client: httpx.Client
) -> None:
    held: list[socket.socket] = []
    heads = [
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10\r\n\r\n",
        b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        b"POST /activations/relu HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b'\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"x',
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n",  # headers never finish
    ]
    try:
        # Many times the work cap (4): none of them holds a slot.
        for i in range(32):
            sock = _connect(server)
            sock.sendall(heads[i % len(heads)])
            held.append(sock)
        for _ in range(3):
            for path in PROBES:
                start = time.monotonic()
                r = client.get(path)
                assert r.status_code == 200, (path, r.text[:200])
                assert time.monotonic() - start < 1.0, path
            assert client.post("/predict", json=VALID).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_probe_with_an_unsent_body_is_answered_without_waiting(
    server: Server,
) -> None:
    # A route that reads no body answers at once; the unread body means the
    # connection cannot be reused, so it is closed.
    start = time.monotonic()
    raw, closed = _raw(
        server, b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    )
    status, headers, _ = _status_and_body(raw)
    assert status == 200
    assert headers[b"connection"] == b"close"
    assert closed
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        pytest.param(b"", None, id="nothing-sent"),
        pytest.param(b"GET /health/live HTTP/1.1\r\n", 408, id="request-line-only"),
        pytest.param(b"GET /health/li", 408, id="half-a-request-line"),
        pytest.param(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-", 408, id="mid-header"),
    ],
)  # fmt: skip
def test_header_deadline_closes_stalled_connections(
    server: Server, client: httpx.Client, sent: bytes, answer: int | None
) -> None:
    start = time.monotonic()
    raw, closed = _raw(server, sent, wait=1 + QUICK)
    elapsed = time.monotonic() - start
    assert closed
    assert 0.9 <= elapsed < 1 + QUICK, elapsed  # MNIST_SERVE_HEADER_TIMEOUT=1
    if answer is None:
        assert raw == b""  # an idle connection is closed without a word
    else:
        status, headers, body = _status_and_body(raw)
        assert status == answer
        assert headers[b"content-type"] == b"application/problem+json"
        assert b"/problems/header-timeout" in body
    assert_still_serves(client)


def test_header_deadline_on_a_kept_alive_connection(server: Server) -> None:
    # The first request is served; the second never finishes its headers.
    with _connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(QUICK)
        first = b""
        while not first.endswith(b'"live"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-")
        start = time.monotonic()
        raw, closed = _read_until_closed(sock, 1 + QUICK)
    assert closed
    assert raw.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < 1 + QUICK


def test_unread_trickling_body_is_cut_off_at_the_body_deadline(server: Server) -> None:
    # A body nobody reads, trickled byte by byte (each byte would reset an
    # idle timer): the connection closes at the body deadline (2 s + 1).
    with _connect(server) as sock:
        sock.sendall(
            b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        )
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 3 + QUICK:
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            _, closed = _read_until_closed(sock, 0.2)
            if closed:
                break
    assert closed
    assert time.monotonic() - start < 3 + QUICK


def test_too_many_connections_get_a_fast_503_not_silence(
    weights: Path, tmp_path: Path
) -> None:
    s = start_server(weights, tmp_path, env={"MNIST_SERVE_MAX_CONNECTIONS": "8"})
    held: list[socket.socket] = []
    try:
        for _ in range(8):
            held.append(_connect(s))
        with httpx.Client(base_url=s.url, timeout=10) as c:
            # Wait until the server has taken all eight in: then the next is refused.
            deadline = time.monotonic() + QUICK
            while True:
                start = time.monotonic()
                r = c.get("/health/live", headers={"connection": "close"})
                assert time.monotonic() - start < 1.0
                if r.status_code == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            check_problem(r, 503, "8 connections")
            assert r.headers["retry-after"] == "1"
            assert r.headers["connection"] == "close"
            for sock in held[:4]:
                sock.close()
            r = c.get("/health/live", headers={"connection": "close"})
            deadline = time.monotonic() + QUICK
            while r.status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
                r = c.get("/health/live", headers={"connection": "close"})
            assert r.status_code == 200
        # The refusals are logged, but not once per connection.
        log = s.log.read_text()
        assert 1 <= log.count("refusing connections") <= 2, log
    finally:
        for sock in held:
            sock.close()
        assert s.stop() == 0


# --------------------------------------------------------------------------
# 2. The memory budget
# --------------------------------------------------------------------------


def test_memory_budget_admits_waits_refuses_and_recovers(
    weights: Path, tmp_path: Path
) -> None:
    s = start_server(
        weights,
        tmp_path,
        env={
            "MNIST_SERVE_MEMORY_BUDGET": str(16 * MiB),
            "MNIST_SERVE_QUEUE_TIMEOUT": "0.5",
            "MNIST_SERVE_BODY_TIMEOUT": "10",
        },
    )
    octets = bytes(784 * 1024)  # 784 KiB, charged 10x plus the body twice
    try:
        with httpx.Client(base_url=s.url, timeout=10) as c:
            octet = {
                "content": octets,
                "headers": {"content-type": "application/octet-stream"},
            }
            assert c.post("/predict", **octet).status_code == 200
            # A request that could never fit in the whole budget: 413, not 503.
            big = _json_x(b"0.5", 784 * 300)  # ~1 MiB of JSON, charged 28x
            r = c.post(
                "/predict", content=big, headers={"content-type": "application/json"}
            )
            check_problem(r, 413, "memory budget")
            assert r.json()["type"] == "/problems/over-memory-budget"
            with _connect(s) as hog:
                # 7 MiB of a body held back: 14 MiB of the 16 are charged.
                hog.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                    % (8 * MiB)
                    + bytes(7 * MiB)
                )
                busy = _wait_for(c, lambda c: c.post("/predict", **octet), 503)
                check_problem(busy, 503, "memory budget")
                assert busy.headers["retry-after"] == "1"
                # Probes charge nothing.
                assert c.get("/health/ready").status_code == 200
            # The hog went away: its charge is released.
            ok = _wait_for(c, lambda c: c.post("/predict", **octet), 200)
            assert ok.status_code == 200
    finally:
        assert s.stop() == 0


def _wait_for(c: httpx.Client, send: Any, status: int, limit: float = 10) -> Any:
    deadline = time.monotonic() + limit
    while True:
        r = send(c)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_big_valid_work_does_not_stall_the_probes(
    server: Server, client: httpx.Client
) -> None:
    # Four 4 MiB JSON bodies and four 100,000-point grids at once: parsing,
    # computing and answering happen off the event loop or in small pieces,
    # so /health/live answers within the kubelet's 2 s throughout.
    rows = _json_x(b"0.5", 784)[len(b'{"x": ') : -1]
    body = b'{"x": [' + b",".join([rows] * 1300) + b"]}"
    import threading

    results: list[int] = []

    def heavy(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            if i % 2:
                r = c.post(
                    "/predict",
                    content=body,
                    headers={"content-type": "application/json"},
                )
            else:
                r = c.get("/activations/gelu?start=-5&stop=5&num=100000")
            results.append(r.status_code)

    threads = [threading.Thread(target=heavy, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    worst = 0.0
    while any(t.is_alive() for t in threads):
        start = time.monotonic()
        assert client.get("/health/live").status_code == 200
        worst = max(worst, time.monotonic() - start)
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert set(results) <= {200, 503}, results
    assert 200 in results
    assert worst < 2.0, worst


def test_big_answers_stream_and_equal_the_whole(client: httpx.Client) -> None:
    r = client.get("/activations/identity?start=-5&stop=5&num=100000")
    assert r.status_code == 200
    assert "content-length" not in r.headers  # chunked: never whole in memory
    data = r.json()
    assert len(data["y"]) == 100_000
    assert data["x"] == data["y"]
    r = client.post(
        "/predict?return_input=true",
        content=bytes(784 * 100),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200
    assert np.asarray(r.json()["input"]).shape == (100, 28, 28)


# --------------------------------------------------------------------------
# 3. Typed, bounded input on every path, one content-negotiation rule
# --------------------------------------------------------------------------


BIG_INT = b"1" + b"0" * 400


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/activations/elu", b'{"x": [1], "alpha": ' + BIG_INT + b"}", 422),
        ("/activations/leaky_relu", b'{"x": [1], "alpha": -' + BIG_INT + b"}", 422),
        ("/activations/maxout", b'{"x": [1, 2], "k": ' + BIG_INT + b"}", 422),
        ("/activations/relu", b'{"x": [' + BIG_INT + b"]}", 422),
        ("/activations/elu", b'{"x": [1], "alpha": true}', 422),
        ("/activations/elu", b'{"x": [1], "alpha": "1"}', 422),
        ("/activations/elu", b'{"x": [1], "alpha": [1]}', 422),
        ("/activations/relu", b'{"x": [true, 1]}', 422),
        ("/activations/relu", b'{"x": ["1"]}', 422),
        ("/activations/relu", b'{"x": [[1]]}', 422),
        ("/activations/relu", b'{"x": 1}', 422),
        ("/activations/relu", b"[1, 2]", 422),
        ("/activations/relu", b'\xef\xbb\xbf{"x": [1]}', 400),
        ("/activations/relu", '{"x": [1]}'.encode("utf-16"), 400),
        ("/activations/relu", '{"x": [1]}'.encode("utf-16-le"), 400),
        ("/predict", b'\xef\xbb\xbf{"x": [0]}', 400),
        ("/predict", b'{"x": [0], "normalize": ' + BIG_INT + b"}", 422),
        ("/explain?target=" + "9" * 400, _json_x(b"0", 784), 422),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_client_input_is_typed_and_bounded(
    client: httpx.Client, path: str, body: bytes, status: int
) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    check_problem(r, status)
    assert BIG_INT[:50] not in r.content


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"name": "input", "shape": [1, 784], "datatype": ["FP32"], "data": [0] * 784}]},
        {"inputs": [{"name": "input", "shape": [1, 784], "datatype": {"a": 1}, "data": [0] * 784}]},
        {"inputs": [{"name": ["input"], "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}]},
        {"inputs": [{"name": "input", "shape": [1, "784"], "datatype": "FP32", "data": [0] * 784}]},
        {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}],
         "outputs": [{"name": ["label"]}]},
        {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}],
         "outputs": [{"name": {"a": 1}}]},
        {"inputs": [{"name": "input", "shape": [10**30, 784], "datatype": "FP32", "data": [0]}]},
        {"inputs": {"name": "input"}},
        {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784,
                     "parameters": {"binary_data_size": [1]}}]},
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "path", ["/v2/models/mnist/infer", "/v2/models/mnist/versions/1/infer"]
)
def test_v2_wrong_json_types_are_4xx_in_v2_format(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    r = client.post(path, content=json.dumps(body))
    assert 400 <= r.status_code < 500, r.text
    assert r.status_code != 404 or "versions" in path
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error"}


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/activations/relu", "text/plain"),
        ("/activations/relu", None),
        ("/activations/relu", "application/x-www-form-urlencoded"),
        ("/activations/relu", "application/json; charset=utf-16"),
        ("/predict", "application/json; charset=latin-1"),
        ("/explain", "text/plain"),
        ("/v2/models/mnist/infer", "text/plain"),
        ("/v2/models/mnist/infer", "multipart/form-data; boundary=x"),
    ],
)
def test_wrong_content_type_is_415_on_every_body_route(
    client: httpx.Client, path: str, ctype: str | None
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = client.post(path, content=b'{"x": [1]}', headers=headers)
    assert r.status_code == 415, r.text
    if path.startswith("/v2"):
        assert set(r.json()) == {"error"}
    else:
        check_problem(r, 415)


@pytest.mark.parametrize(
    "path", ["/predict", "/explain", "/activations/relu", "/v2/models/mnist/infer"]
)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip"])
@pytest.mark.parametrize("compressed", [True, False], ids=["gzipped", "plain"])
def test_content_encoding_is_refused_the_same_way_everywhere(
    client: httpx.Client, path: str, encoding: str, compressed: bool
) -> None:
    body = json.dumps({"x": [0.0] * 784}).encode()
    r = client.post(
        path,
        content=gzip.compress(body) if compressed else body,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert r.status_code == 415, r.text
    assert r.headers["accept-encoding"] == "identity"
    if path.startswith("/v2"):
        assert "Content-Encoding" in r.json()["error"]
    else:
        body_ = check_problem(r, 415, "Content-Encoding")
        assert body_["type"] == "/problems/unsupported-content-encoding"
    # identity is what a body without Content-Encoding is.
    r = client.post(
        path,
        content=body,
        headers={"content-type": "application/json", "content-encoding": "identity"},
    )
    assert r.status_code != 415


# --------------------------------------------------------------------------
# 4. Framing, redirects, HEAD, header limit
# --------------------------------------------------------------------------


SMUGGLED = b"GET /model HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: CHUNKED\r\n",
        b"Content-length: 5\r\ntransfer-encoding: chunked\r\n",
    ],
)
def test_content_length_with_transfer_encoding_is_refused_and_closed(
    server: Server, client: httpx.Client, head: bytes
) -> None:
    raw, closed = _raw(
        server,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + head
        + b"\r\n0\r\n\r\n"
        + SMUGGLED,
    )
    assert _statuses(raw) == [400], raw[:300]
    _, headers, body = _status_and_body(raw)
    assert headers[b"content-type"] == b"application/problem+json"
    assert b"/problems/ambiguous-framing" in body
    assert closed
    assert b'"layers"' not in raw  # the smuggled GET /model was never served
    assert_still_serves(client)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        (b"Content-Length: +5\r\n", 400),
        (b"Content-Length : 5\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),
        (b"Transfer-Encoding: identity\r\n", 501),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
    ],
)
def test_other_bad_framing_is_a_problem_and_closed(
    server: Server, head: bytes, status: int
) -> None:
    raw, closed = _raw(
        server,
        b"POST /predict HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n12345" + SMUGGLED,
    )
    assert _statuses(raw) == [status], raw[:300]
    assert b"application/problem+json" in raw
    assert closed


@pytest.mark.parametrize(
    "path", ["/activations/", "/health/live/", "/predict/", "/model/", "/v2/"]
)
def test_no_redirect_is_built_from_the_host_header(
    client: httpx.Client, path: str
) -> None:
    r = client.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    assert "location" not in r.headers
    assert r.status_code in (404, 405)
    assert b"evil.example" not in r.content


GET_ROUTES = [
    "/",
    "/health/live",
    "/health/ready",
    "/model",
    "/activations",
    "/activations/relu?x=1&x=2",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/static/style.css",
    "/v2",
    "/v2/health/live",
    "/v2/models/mnist",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_wherever_get(client: httpx.Client, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert got.status_code == 200
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if "content-length" in got.headers and path != "/metrics":
        assert head.headers["content-length"] == got.headers["content-length"]


def test_head_on_a_post_route_is_405_like_get(client: httpx.Client) -> None:
    assert client.head("/predict").status_code == 405
    assert client.head("/nope").status_code == 404


# --------------------------------------------------------------------------
# 5. Client aborts are 499 in the metrics, never 500
# --------------------------------------------------------------------------


def _samples(client: httpx.Client, route: str) -> dict[str, float]:
    text = client.get("/metrics").text
    found = re.findall(
        r'^mnist_serve_http_requests_total\{method="POST",route="'
        + re.escape(route)
        + r'",status="(\d+)"\} (\S+)$',
        text,
        re.M,
    )
    return {status: float(value) for status, value in found}


def _wait_499s(
    client: httpx.Client, route: str, before: dict[str, float], count: int
) -> dict[str, float]:
    """The samples once ``count`` more 499s than ``before`` are counted (or QUICK passed)."""
    deadline = time.monotonic() + QUICK
    while True:
        after = _samples(client, route)
        if (
            after.get("499", 0) - before.get("499", 0) >= count
            or time.monotonic() > deadline
        ):
            return after
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/activations/relu", "/activations/{name}"),
        ("/explain", "/explain"),
        ("/v2/models/mnist/infer", "/v2/models/{model_name}/infer"),
    ],
)
def test_client_disconnects_mid_body_count_as_499(
    server: Server, client: httpx.Client, path: str, route: str
) -> None:
    before = _samples(client, route)
    for sent in range(1, 4):
        with _connect(server) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 5000\r\n\r\n".encode()
                + b'{"x": [1'
            )
            # The server has the request (reading its body) when the client leaves.
            wait_in_flight(server.url, 1)
        # That one is counted, and no longer in flight, before the next is sent.
        after = _wait_499s(client, route, before, sent)
    assert after.get("499", 0) - before.get("499", 0) == 3, after
    assert after.get("500", 0) == before.get("500", 0)


# --------------------------------------------------------------------------
# 6. Signals
# --------------------------------------------------------------------------


def _held_requests(s: Server, count: int) -> list[tuple[socket.socket, bytes]]:
    """``count`` /predict requests in flight (their bodies half sent)."""
    body = _json_x(b"0", 784)
    out = []
    for _ in range(count):
        sock = _connect(s, timeout=30)
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:100]
        )
        out.append((sock, body[100:]))
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_is_logged_and_ignored_in_flight_requests_finish(
    weights: Path, tmp_path: Path, workers: int
) -> None:
    s = start_server(
        weights,
        tmp_path,
        "--workers",
        str(workers),
        env={"MNIST_SERVE_BODY_TIMEOUT": "30", "MNIST_SERVE_GRACEFUL_TIMEOUT": "30"},
    )
    try:
        # Every worker serving: several ready answers in a row.
        with httpx.Client(base_url=s.url, timeout=10) as c:
            for _ in range(10):
                assert c.get("/health/ready").status_code == 200
            held = _held_requests(s, 4)
            wait_in_flight(s.url, 4)
            s.process.send_signal(signal.SIGHUP)
            # Handled (logged), not a kill: the default action ends the process.
            if workers == 1:
                _wait_logged(s, "SIGHUP received by the server: ignored")
            else:
                _wait_logged(s, "Received SIGHUP, restarting processes")
            assert s.process.poll() is None
            _finish(held)
            r = _wait_for(c, lambda c: c.post("/predict", json=VALID), 200, limit=30)
            assert r.status_code == 200
    finally:
        assert s.stop() == 0


def _finish(held: list[tuple[socket.socket, bytes]]) -> None:
    """Send the rest of every held body, then check every answer is a 200."""
    for sock, rest in held:
        sock.sendall(rest)
    for sock, _ in held:
        sock.settimeout(QUICK)
        raw = sock.recv(65536)
        sock.close()
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]


def _wait_logged(s: Server, line: str, timeout: float = QUICK) -> None:
    """Return once ``line`` is in the server's log; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while line not in (log := s.log.read_text(errors="replace")):
        if s.process.poll() is not None:
            raise AssertionError(
                f"exited ({s.process.returncode}) before {line!r}:\n{log}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not logged within {timeout:g} s:\n{log}")
        time.sleep(0.02)


def test_sighup_to_the_process_group_kills_no_worker(
    weights: Path, tmp_path: Path
) -> None:
    # Its own process group: the SIGHUP below must reach nothing of the tests.
    s = start_server(
        weights,
        tmp_path,
        "--workers",
        "2",
        env={"MNIST_SERVE_BODY_TIMEOUT": "30", "MNIST_SERVE_GRACEFUL_TIMEOUT": "30"},
        new_session=True,
    )
    try:
        import os

        held = _held_requests(s, 2)
        wait_in_flight(s.url, 2)
        group = os.getpgid(s.process.pid)
        assert group != os.getpgid(0)
        os.killpg(group, signal.SIGHUP)
        _wait_logged(s, "Received SIGHUP, restarting processes")
        assert s.process.poll() is None
        _finish(held)
    finally:
        assert s.stop() == 0


def test_second_sigint_answers_in_flight_requests_in_their_format(
    weights: Path, tmp_path: Path
) -> None:
    s = start_server(
        weights,
        tmp_path,
        env={"MNIST_SERVE_BODY_TIMEOUT": "30", "MNIST_SERVE_GRACEFUL_TIMEOUT": "30"},
    )
    try:
        held = _held_requests(s, 2)
        v2 = _connect(s, timeout=30)
        v2.sendall(
            b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        wait_in_flight(s.url, 3)
        s.process.send_signal(signal.SIGINT)
        # The graceful shutdown has begun (it would wait 30 s): the next SIGINT
        # is a second one, not merged with the first.
        _wait_logged(s, "Shutting down")
        s.process.send_signal(signal.SIGINT)
        for sock, _ in held:
            raw, _ = _read_until_closed(sock, QUICK)
            sock.close()
            status, headers, body = _status_and_body(raw)
            assert status == 503, raw[:300]
            assert headers[b"content-type"] == b"application/problem+json"
            assert b"/problems/shutting-down" in body
        raw, _ = _read_until_closed(v2, QUICK)
        v2.close()
        status, headers, body = _status_and_body(raw)
        assert status == 503
        assert headers[b"content-type"] == b"application/json"
        assert json.loads(body)["error"].startswith("the server is shutting down")
        s.process.wait(15)
    finally:
        if s.process.poll() is None:
            s.process.kill()
            s.process.wait()


# --------------------------------------------------------------------------
# 7. Pixels per request
# --------------------------------------------------------------------------


def test_total_pixels_per_request_is_limited_before_decoding(
    client: httpx.Client,
) -> None:
    # 4 x 1000x1000 = 4 M pixels > the 3 M limit of this server: 413 from the
    # headers, before a pixel is decoded.
    body, ctype = _multipart([_png(1000)] * 4)
    start = time.monotonic()
    r = client.post("/predict", content=body, headers={"content-type": ctype})
    check_problem(r, 413, "pixels per request")
    assert time.monotonic() - start < 1.0
    body, ctype = _multipart([_png(1000)] * 2)
    assert (
        client.post(
            "/predict", content=body, headers={"content-type": ctype}
        ).status_code
        == 200
    )


def test_many_huge_pngs_are_refused_in_milliseconds_at_the_defaults(
    weights: Path, tmp_path: Path
) -> None:
    # The report's amplification: 64 PNG parts of 4000x4000 cost 13 s of CPU.
    big = _png(4000)
    s = start_server(weights, tmp_path)
    try:
        body, ctype = _multipart([big] * 64)
        assert len(body) < 8 * MiB
        with httpx.Client(base_url=s.url, timeout=30) as c:
            start = time.monotonic()
            r = c.post("/predict", content=body, headers={"content-type": ctype})
            check_problem(r, 413, "pixels per request")
            assert time.monotonic() - start < 2.0
    finally:
        assert s.stop() == 0


def test_the_soak_mix_still_passes_through_the_guard(client: httpx.Client) -> None:
    from bench import soak

    for request in soak.request_mix():
        r = client.request(
            request.method,
            request.path,
            content=request.body or None,
            headers={"content-type": request.content_type}
            if request.content_type
            else {},
        )
        assert r.status_code == 200, (request.name, r.text[:200])


# --------------------------------------------------------------------------
# 8. Hostile weights: every startup failure is one line and exit status 2
# --------------------------------------------------------------------------


class _HugeArray:
    """Pickles as ``numpy.ndarray((784, 200000), float32)``: 7 KB claiming 627 MB."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (np.ndarray, ((784, 200_000), np.dtype("float32")))


def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    net = random_network(rng)
    return {
        "W1": net.w1, "b1": net.b1, "W2": net.w2, "b2": net.b2, "W3": net.w3,
        "b3": net.b3,
    }  # fmt: skip


def _hostile_weights(kind: str, tmp: Path) -> Path:
    import hashlib
    import os
    import pickle
    import zipfile

    arrays = {k: np.asarray(v) for k, v in _arrays(np.random.default_rng(1)).items()}
    if kind == "pickle-huge-shape":
        path = tmp / "w.pkl"
        path.write_bytes(pickle.dumps({**arrays, "W1": _HugeArray()}, protocol=2))
    elif kind == "npz-huge-header":
        path = tmp / "w.npz"
        plain = tmp / "plain.npz"
        np.savez(plain, **arrays)
        with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as out:
            for name in src.namelist():
                data = src.read(name)
                if name == "W1.npy":
                    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
                    header = header.ljust(117) + "\n"
                    data = (
                        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                        + header.encode() + data[128:]
                    )  # fmt: skip
                out.writestr(name, data)
    elif kind == "symlink-loop":
        path = tmp / "a.pkl"
        os.symlink(tmp / "b.pkl", path)
        os.symlink(path, tmp / "b.pkl")
    elif kind == "provenance-nested-200k":
        path = tmp / "w.npz"
        np.savez(path, **arrays)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        deep = "[" * 200_000 + "]" * 200_000
        (tmp / "w.json").write_text(f'{{"sha256": "{digest}", "x": {deep}}}')
    else:  # finite weights whose forward pass overflows: the self-test fails
        path = tmp / "w.npz"
        arrays["W3"] = np.full((100, 10), 3e38, np.float32)
        arrays["b3"] = np.full(10, -3e38, np.float32)
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "pickle-huge-shape",
        "npz-huge-header",
        "symlink-loop",
        "provenance-nested-200k",
        "self-test-fails",
    ],
)
def test_hostile_weights_stop_startup_with_one_line_and_exit_2(
    tmp_path: Path, kind: str
) -> None:
    from tests.e2e.conftest import free_port, mnist_serve_command

    path = _hostile_weights(kind, tmp_path)
    start = time.monotonic()
    result = subprocess.run(
        [*mnist_serve_command(), "--port", str(free_port()), "--weights", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("mnist-serve: cannot load weights"), lines[0]
    assert len(lines[0]) < 1000
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------
# 9. The bounded hostile run, and the manifests' memory limit
# --------------------------------------------------------------------------


def test_short_hostile_run_keeps_probes_at_200_and_memory_under_the_bound(
    tmp_path: Path,
) -> None:
    from bench import hostile

    # Short deadlines, so that the held sockets are closed (and come back)
    # within the run; every other setting is the default.
    env = {"MNIST_SERVE_HEADER_TIMEOUT": "1", "MNIST_SERVE_BODY_TIMEOUT": "2"}
    result = hostile.run(seconds=4, connections=4, slow=16, log_dir=tmp_path, env=env)
    report = hostile.render(result)
    assert result["probes"] > 10, report
    assert result["probes_not_200"] == 0, report
    assert result["probe_max_ms"] < 2000, report  # the kubelet's timeout
    assert result["rss_peak_mib"] <= result["rss_bound_mib"], report
    assert result["k8s_limit_mib"] >= result["rss_bound_mib"], report
    assert result["attacker_reconnects"] > 0, report  # the deadlines closed them
    assert hostile.verdict(result) == [], report


def test_k8s_memory_settings_are_the_ones_the_bound_was_computed_from() -> None:
    import yaml

    from bench.hostile import CONNECTION_KIB, DEPLOYMENT, k8s_memory_limit_mib

    doc = next(
        d
        for d in yaml.safe_load_all(DEPLOYMENT.read_text())
        if d["kind"] == "Deployment"
    )
    env = {
        e["name"]: e["value"]
        for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    budget = int(env["MNIST_SERVE_MEMORY_BUDGET"]) / MiB
    connections = int(env["MNIST_SERVE_MAX_CONNECTIONS"]) * CONNECTION_KIB / 1024
    # One worker idles at ~104 MiB with the shipped models and gRPC (measured
    # by bench.hostile); the limit keeps headroom above the bound.
    idle = 120
    limit = k8s_memory_limit_mib()
    assert limit is not None
    assert limit >= idle + budget + connections
