"""``mnist-serve``: start the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-serve",
        description="Serve MNIST inference with the book's 3-layer NumPy network. "
        "Every MNIST_SERVE_* environment variable is read too; flags win.",
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        help="port of the Open Inference Protocol over gRPC (default 8001; 0: off)",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument(
        "--model-repository",
        type=Path,
        help="a model repository: DIR/<name>/<version>/weights.pkl|npz "
        "(default: the shipped models)",
    )
    parser.add_argument(
        "--weights", type=Path, help="one weights file (.pkl or .npz) as model mnist"
    )
    parser.add_argument(
        "--model",
        dest="models",
        type=_named_path,
        action="append",
        metavar="NAME=PATH",
        help="one more single-file model, e.g. book=sample_weight.pkl (repeatable)",
    )
    parser.add_argument("--default-model", help="the model of requests naming none")
    parser.add_argument(
        "--model-control",
        choices=("none", "poll", "explicit"),
        help="none (default): load at startup; poll: follow the files; "
        "explicit: load/unload on request",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    access = parser.add_mutually_exclusive_group()
    access.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=None,
        help="log one line per request",
    )
    access.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no per-request log lines (the default)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text (default) or one JSON object a line, with request ids",
    )
    return parser


def _named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path).expanduser().resolve()


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Flags override the environment: Settings takes them as init values.
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items() if value is not None
    }
    for key in ("weights", "model_repository"):
        if key in overrides:
            # Made absolute only: resolving symlinks (a loop raises) is the loader's.
            overrides[key] = overrides[key].expanduser().absolute()
    if "models" in overrides:
        overrides["models"] = dict(overrides["models"])

    # Imported here, not at the top: each worker uvicorn spawns re-imports this
    # module (the main module) before it can answer the supervisor's health
    # check, and pydantic is not needed for that.
    import numpy as np
    from pydantic import ValidationError

    from app.admission import tune_allocator
    from app.service import build_service, load_models
    from app.settings import Settings, export
    from core.errors import CoreError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        print(
            f"mnist-serve: bad setting {name} (--{name.replace('_', '-')} or "
            f"MNIST_SERVE_{name.upper()}): {first['msg']}",
            file=sys.stderr,
        )
        return 2
    tune_allocator()  # before anything large is allocated, and for the workers
    # Fail fast, with one line, before uvicorn starts any worker. The
    # repository's own log lines would repeat it: they wait for the workers.
    quiet = logging.getLogger("mnist_serve")
    quiet.disabled = True
    made_control: Path | None = None
    if settings.model_control == "explicit" and settings.workers > 1:
        # Where one worker writes a load or unload down for the others, and
        # where this check writes what every worker loads at startup.
        made_control = Path(tempfile.mkdtemp(prefix="mnist-serve-control-"))
        control = settings.control_file or made_control / "models.json"
        settings = settings.model_copy(update={"control_file": control})
    service = build_service(settings)
    try:
        # NumPy's overflow warnings on absurd weights would be lines of their own.
        with np.errstate(all="ignore"):
            asyncio.run(load_models(service))
    except CoreError as exc:
        print(f"mnist-serve: cannot load weights: {exc.message}", file=sys.stderr)
        return 2
    finally:
        quiet.disabled = False
    service.repository.write_startup()
    # Every worker process rebuilds these exact settings from the environment.
    export(settings)

    import uvicorn

    from app.connection import GuardedH11Protocol
    from app.logconfig import log_config
    from app.signals import ignore_sighup_in_process

    metrics_dir = _metrics_dir(settings.workers) if settings.metrics else None
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the
    # process dies "by signal". A stop that went as planned should exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    ignore_sighup_in_process()
    try:
        uvicorn.run(
            "app.main:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=settings.access_log,
            log_config=log_config(settings.log_level, settings.log_format),
            timeout_graceful_shutdown=int(settings.graceful_timeout),
            # No server header and date: less per response, nothing to fingerprint.
            server_header=False,
            date_header=False,
            # h11, even when httptools is installed: httptools has no limit on
            # header size (one 200 MiB header line grew a worker by 360 MiB).
            # Our subclass adds header, body and send deadlines, a connection
            # cap and strict framing (app/connection.py).
            http=GuardedH11Protocol,
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if made_control is not None:
            shutil.rmtree(made_control, ignore_errors=True)
    return 0


def _metrics_dir(workers: int) -> str | None:
    """Point prometheus_client at a clean directory when values must be shared.

    ``PROMETHEUS_MULTIPROC_DIR`` is prometheus_client's own setting. With
    several workers, each writes its values to files there and every worker's
    /metrics adds them all up. Returns the directory to remove at exit when
    this function made it.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        # prometheus_client needs the directory cleared at each start.
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    if workers == 1:
        return None
    made = tempfile.mkdtemp(prefix="mnist-serve-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


if __name__ == "__main__":
    sys.exit(main())
