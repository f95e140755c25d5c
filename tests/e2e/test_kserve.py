"""KServe's InferenceGRPCClient against mnist-serve's gRPC port.

KServe does not share our virtual environment (its dependency tree is its own
and takes minutes to install): the client runs as a script under
``MNIST_SERVE_KSERVE_PYTHON``, an interpreter with ``kserve`` installed
(``make kserve-test`` makes one). Without it the test skips, unless CI requires
it (``MNIST_SERVE_REQUIRE_KSERVE=1``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.procs import free_port, launch, wait_ready
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import Server, mnist_serve_command

pytestmark = pytest.mark.e2e

KSERVE_PYTHON = os.environ.get("MNIST_SERVE_KSERVE_PYTHON", "")


def _kserve_python() -> str:
    if KSERVE_PYTHON and Path(KSERVE_PYTHON).exists():
        return KSERVE_PYTHON
    message = (
        "no interpreter with kserve (set MNIST_SERVE_KSERVE_PYTHON; make kserve-test)"
    )
    if os.environ.get("MNIST_SERVE_REQUIRE_KSERVE") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_kserve_grpc_client_gets_predicts_answers(tmp_path: Path) -> None:
    python = _kserve_python()
    port, grpc_port = free_port(), free_port()
    log = tmp_path / "server.log"
    command = [
        *mnist_serve_command(),
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
    ]
    process = launch(command, log)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_ready(process, server.url, log, timeout=60)
        rng = np.random.default_rng(9)
        fp32 = rng.random((3, 784), dtype=np.float32)
        uint8 = rng.integers(0, 256, (3, 784), dtype=np.uint8)
        result = subprocess.run(
            [python, str(PROJECT_ROOT / "tests" / "kserve" / "client.py")],
            input=json.dumps(
                {
                    "url": f"127.0.0.1:{grpc_port}",
                    "fp32": fp32.tolist(),
                    "uint8": uint8.tolist(),
                }
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        answers = json.loads(result.stdout)
        assert answers["live"]
        assert answers["ready"]
        assert answers["model_ready"]
        for key, body, media in (
            ("fp32", json.dumps({"x": fp32.tolist()}), "application/json"),
            ("uint8", uint8.tobytes(), "application/octet-stream"),
        ):
            expected = httpx.post(
                f"{server.url}/predict", content=body, headers={"content-type": media}
            ).json()
            got = answers[key]
            probabilities = np.array(expected["probabilities"], dtype="<f4")
            assert bytes.fromhex(got["probabilities"]) == probabilities.tobytes()
            assert got["labels"] == expected["labels"]
            assert got["model_version"] == "1"
    finally:
        assert server.stop() == 0
