"""Seldon MLServer's V2 server on the same weights: the peer of /v2 and gRPC rows.

MLServer lives in its own virtual environment (its dependency tree is large
and pins things this project does not, such as ``uvloop<0.22``), by default
``.venv-mlserver`` beside the project's ``.venv``:

    python -m bench.mlserver install   # ~2 minutes: MLServer 1.7 and uvloop<0.22
    python -m bench http               # MLServer rows join when the venv exists

It serves ``bench/mlserver_runtime.py`` (the book's forward pass in NumPy)
in-process (``parallel_workers: 0``, as mnist-serve runs inference), with
access logs off, over REST and gRPC on 127.0.0.1. MLServer has no REST binary
tensor extension, so it has no binary row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import PROJECT_ROOT
from bench.procs import free_port, launch, wait_ready

VENV = Path(
    os.environ.get("MNIST_SERVE_BENCH_MLSERVER", PROJECT_ROOT / ".venv-mlserver")
)
REQUIREMENTS = ("mlserver==1.7.1", "uvloop<0.22")
RUNTIME = Path(__file__).with_name("mlserver_runtime.py")


def python() -> Path | None:
    """MLServer's interpreter, if its environment is installed."""
    exe = VENV / "bin" / "python"
    return exe if (VENV / "bin" / "mlserver").exists() else None


def version() -> str | None:
    exe = python()
    if exe is None:
        return None
    out = subprocess.run(
        [str(exe), "-c", "import mlserver; print(mlserver.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def install() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", *REQUIREMENTS], check=True)


def write_repository(folder: Path, weights: Path, ports: dict[str, int]) -> None:
    """MLServer's settings and one model, ``mnist``, on the served weights."""
    from core.weights import load_network

    model = folder / "mnist"
    model.mkdir(parents=True)
    np.savez(model / "weights.npz", **load_network(weights).params())
    shutil.copy(RUNTIME, model / RUNTIME.name)
    settings = {
        "host": "127.0.0.1",
        "http_port": ports["http"],
        "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"],
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "mnist",
                "implementation": "mlserver_runtime.MnistRuntime",
                "parameters": {"uri": str(model / "weights.npz")},
            }
        )
    )


def start(
    weights: Path, logdir: Path | None = None
) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """Start MLServer; its process, REST URL, gRPC host:port and repository."""
    exe = python()
    if exe is None:
        raise RuntimeError(f"MLServer is not installed in {VENV}")
    folder = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    write_repository(folder, weights, ports)
    log = (
        logdir or Path(tempfile.gettempdir())
    ) / f"bench-mlserver-{ports['http']}.log"
    url = f"http://127.0.0.1:{ports['http']}"
    process = launch([str(VENV / "bin" / "mlserver"), "start", str(folder)], log)
    wait_ready(process, url, log, timeout=120, path="/v2/models/mnist/ready")
    return process, url, f"127.0.0.1:{ports['grpc']}", folder


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m bench.mlserver install")
    install()
    print(f"MLServer {version()} installed in {VENV}")
