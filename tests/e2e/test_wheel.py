"""The package as a user installs it: a wheel in a fresh venv, started anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.procs import free_port, launch, wait_ready
from core.weights import sha256_file
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What the wheel is built from: the sources a clone holds, nothing generated.
SOURCES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "app",
    "core",
    "mnist_client",
    "weights",
)


def _run(*command: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in command], cwd=cwd, check=True, timeout=600)


def test_wheel_in_a_fresh_venv_serves_the_shipped_weights_from_an_empty_dir(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            # Without the generated gRPC modules: the build must make them.
            shutil.copytree(
                source,
                src / name,
                ignore=shutil.ignore_patterns("__pycache__", "*_pb2*.py", "*.pyi"),
            )
        else:
            shutil.copy2(source, src / name)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src)
    [wheel] = dist.glob("mnist_serve-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)

    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_SERVE_")}
    grpc_port = free_port()
    env["MNIST_SERVE_GRPC_PORT"] = str(grpc_port)
    # Nothing from this checkout may leak in: not the path, not the venv.
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    command = [str(venv / "bin" / "mnist-serve"), "--port", str(port)]
    log = tmp_path / "server.log"
    process = launch(command, log, env=env, cwd=empty)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url, log, timeout=60)
        body = json.loads((PROJECT_ROOT / "examples" / "one.json").read_text())
        answer = httpx.post(f"{url}/predict", json=body, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["label"] == 1
        weights = httpx.get(f"{url}/model", timeout=10).json()["weights"]
        shipped = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
        assert weights["sha256"] == sha256_file(shipped)
        assert weights["source"] == "project"  # the provenance file came along
        # The gRPC modules were generated when the wheel was built.
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.terminate()
        assert process.wait(30) == 0
    assert list(empty.iterdir()) == []  # the service wrote nothing where it ran
