from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.procs import free_port, launch, wait_ready
from core.weights import load_network
from tests.e2e.conftest import (
    Server,
    mnist_serve_command,
    start_server,
    wait_in_flight,
)

pytestmark = pytest.mark.e2e


def test_serves_the_contract(
    server: Server, weights_file: Path, rng: np.random.Generator
) -> None:
    network = load_network(weights_file)
    x = rng.random((4, 784)).astype(np.float32)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/predict", json={"x": x.tolist()})
        assert r.status_code == 200
        assert r.json()["labels"] == network.predict(x).tolist()
        raw = rng.integers(0, 256, (3, 784), dtype=np.uint8)
        r = c.post(
            "/predict",
            content=raw.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
        assert r.json()["labels"] == network.predict(raw / 255).tolist()
        bad = c.post(
            "/predict",
            content=b'{"x": [NaN]}',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert c.get("/activations/tanh?x=0").json()["dy"] == [1.0]
        assert c.get("/model").json()["parameters"] == 45360
        assert c.get("/nope").headers["content-type"] == "application/problem+json"
        # Still serving after the bad requests.
        assert c.post("/predict", json={"x": x[0].tolist()}).status_code == 200
    assert server.stop() == 0


def test_oversize_body_refused_before_it_is_read(server: Server) -> None:
    # Content-Length says 100 MB; the server answers without waiting for it.
    with httpx.Client(base_url=server.url, timeout=10) as c:
        start = time.monotonic()
        r = c.post(
            "/predict",
            content=b"0" * (9 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert time.monotonic() - start < 5
        assert c.get("/health/ready").status_code == 200


def test_sigterm_finishes_in_flight_requests_and_exits_0(server: Server) -> None:
    body = b'{"x": [' + b"0," * 783 + b"0]}"
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        ) % len(body)
        sock.sendall(head + body[:100])
        # The server is reading this request's body when the signal arrives.
        wait_in_flight(server.url, 1)
        server.process.send_signal(signal.SIGTERM)
        sock.sendall(body[100:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                break
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"label":' in answer
    assert server.process.wait(15) == 0


def test_refuses_to_start_without_weights(tmp_path: Path) -> None:
    start = time.monotonic()
    result = subprocess.run(
        [
            *mnist_serve_command(),
            "--port",
            "1",
            "--weights",
            str(tmp_path / "missing.pkl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("mnist-serve: cannot load weights")
    assert "does not exist" in lines[0]
    assert time.monotonic() - start < 30


def test_uvicorn_import_string_works(weights_file: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "app.main:app",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    process = launch(command, log, {"MNIST_SERVE_WEIGHTS": str(weights_file)})
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", log, timeout=30)
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"x": [0.0] * 784})
        assert r.status_code == 200
    finally:
        process.terminate()
        # Plain uvicorn re-raises SIGTERM after its graceful shutdown.
        assert process.wait(20) in (0, -15)


def test_two_workers(weights_file: Path, tmp_path: Path) -> None:
    s = start_server(weights_file, tmp_path, "--workers", "2")
    try:
        with httpx.Client(base_url=s.url, timeout=10) as c:
            assert all(c.get("/health/ready").status_code == 200 for _ in range(20))
    finally:
        assert s.stop() == 0
