"""``mnist-serve``: start the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-serve",
        description="Serve MNIST inference with the book's 3-layer NumPy network. "
        "Every MNIST_SERVE_* environment variable is read too; flags win.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("MNIST_SERVE_WORKERS", "1")),
        help="worker processes (default 1, or MNIST_SERVE_WORKERS)",
    )
    parser.add_argument(
        "--weights", type=Path, help="weights file (overrides MNIST_SERVE_WEIGHTS)"
    )
    parser.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        help="log level (default info, or MNIST_SERVE_LOG_LEVEL)",
    )
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
        help="log lines as text or one JSON object a line, with request ids "
        "(default text, or MNIST_SERVE_LOG_FORMAT)",
    )
    return parser


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workers < 1:
        print("mnist-serve: --workers must be >= 1", file=sys.stderr)
        return 2
    # Flags become environment variables so that every worker process, which
    # builds its own Settings, sees them.
    if args.weights is not None:
        os.environ["MNIST_SERVE_WEIGHTS"] = str(args.weights.expanduser().resolve())
    if args.log_level is not None:
        os.environ["MNIST_SERVE_LOG_LEVEL"] = args.log_level
    if args.access_log is not None:
        os.environ["MNIST_SERVE_ACCESS_LOG"] = "true" if args.access_log else "false"
    if args.log_format is not None:
        os.environ["MNIST_SERVE_LOG_FORMAT"] = args.log_format

    from app.settings import Settings
    from core.errors import CoreError
    from core.weights import load_weights

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(
            f"mnist-serve: bad setting MNIST_SERVE_{str(first['loc'][0]).upper()}: "
            f"{first['msg']}",
            file=sys.stderr,
        )
        return 2
    path = settings.resolved_weights()
    try:
        # Fail fast, with one line, before uvicorn starts any worker.
        load_weights(path, settings.weights_max_bytes)
    except CoreError as exc:
        print(
            f"mnist-serve: cannot load weights {path}: {exc.message}", file=sys.stderr
        )
        return 2
    os.environ["MNIST_SERVE_WEIGHTS"] = str(path)

    import uvicorn

    from app.logconfig import log_config

    metrics_dir = _metrics_dir(args.workers) if settings.metrics else None
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the
    # process dies "by signal". A stop that went as planned should exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            access_log=settings.access_log,
            log_config=log_config(settings.log_level, settings.log_format),
            timeout_graceful_shutdown=int(settings.graceful_timeout),
            # No server header and date: less per response, nothing to fingerprint.
            server_header=False,
            date_header=False,
            # h11, even when httptools is installed: httptools has no limit on
            # header size (one 200 MiB header line grew a worker by 360 MiB),
            # h11 answers 400 past 16 KiB.
            http="h11",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _metrics_dir(workers: int) -> str | None:
    """Point prometheus_client at a clean directory when values must be shared.

    With several workers, each writes its values to files there and every
    worker's /metrics adds them all up. Returns the directory to remove at
    exit when this function made it.
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
