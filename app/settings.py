"""Service settings, read from ``MNIST_SERVE_*`` environment variables or ``.env``.

Read once: by the ``mnist-serve`` command (flags win over the environment),
which hands the resolved values to every worker process through
:func:`export`, or by :func:`app.main.create_app` under plain uvicorn. Every
other module receives plain values from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import weights as shipped_weights
from core.weights import MAX_WEIGHTS_BYTES

MiB = 1024 * 1024
DEFAULT_MODEL = "mnist"
ENV_PREFIX = "MNIST_SERVE_"


class Settings(BaseSettings):
    """Every limit and switch of the service, each with a documented default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    """Address to listen on (``--host``); 0.0.0.0 in a container."""
    port: int = Field(8000, ge=0, le=65535)
    """Port to listen on (``--port``)."""
    grpc_port: int = Field(8001, ge=0, le=65535)
    """Port of the Open Inference Protocol over gRPC (``--grpc-port``); 0: off."""
    workers: int = Field(1, ge=1)
    """Worker processes (``--workers``); each loads the model and serves the port."""

    model_repository: Path | None = None
    """A model repository (Triton's layout): ``DIR/<name>/<version>/weights.pkl``
    (or ``.npz``) and an optional ``DIR/<name>/model.json``. Default: the
    models shipped with the package, unless ``weights`` is given."""
    weights: Path | None = None
    """One weights file served as model ``mnist``, version 1, instead of a
    repository: a book-format ``.pkl`` or an ``.npz`` with the same keys (a
    relative path is relative to the working directory)."""
    models: dict[str, Path] = {}
    """More single-file models, by name (``--model book=PATH``; in the
    environment a JSON object), served as version 1 next to the others."""
    default_model: str | None = None
    """The model of requests that name none: ``mnist``, or the only model."""
    model_control: Literal["none", "poll", "explicit"] = "none"
    """``none``: load at startup, never change; ``poll``: rescan every
    ``poll_seconds`` (new versions load, removed ones unload, changed files
    reload); ``explicit``: load at startup, then only on load/unload requests."""
    poll_seconds: float = Field(5.0, gt=0)
    """Seconds between two scans of the repository in ``poll`` mode."""
    control_file: Path | None = None
    """Set by ``mnist-serve --workers N`` in ``explicit`` mode: where one worker
    writes a load or unload down for the others to follow."""
    admin_token: SecretStr | None = None
    """Bearer token of the repository endpoints (index, load, unload); without
    one they answer 403. Set it in the environment, not on a command line."""
    weights_max_bytes: int = Field(MAX_WEIGHTS_BYTES, gt=0)
    """Refuse weight files larger than this."""

    max_body_bytes: int = Field(8 * MiB, gt=0)
    """Largest request body; larger ones get 413 before they are read whole."""
    max_batch_size: int = Field(4096, gt=0)
    """Most images in one /predict request (413 beyond)."""
    max_activation_points: int = Field(100_000, gt=0)
    """Most x values in one /activations request (413 beyond)."""
    max_image_pixels: int = Field(16_000_000, gt=0)
    """Most pixels (width x height, read from the header) in one uploaded image (413)."""
    max_upload_parts: int = Field(64, gt=0)
    """Most files in one multipart upload (413 beyond)."""
    max_part_bytes: int = Field(4 * MiB, gt=0)
    """Largest single file part in a multipart upload (413 beyond)."""
    max_request_pixels: int = Field(32_000_000, gt=0)
    """Most pixels (summed over the files, read from their headers) in one
    request (413 beyond, before any is decoded): decoding costs CPU per pixel."""
    body_timeout: float = Field(10.0, gt=0)
    """Seconds a client may take to send its whole body (408 beyond)."""
    header_timeout: float = Field(10.0, gt=0)
    """Seconds for a request line and headers to arrive, from the connection's
    opening or the next request's first byte (408 and closed beyond)."""
    send_timeout: float = Field(10.0, gt=0)
    """Seconds a client may leave its answer unread before it is disconnected."""
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    """Largest request line + header block (431 beyond)."""
    max_connections: int = Field(256, gt=0)
    """Open connections per worker; more are answered 503 and closed at once."""
    max_concurrency: int = Field(64, gt=0)
    """Requests decoding, computing or answering at once per worker; more get
    503 with Retry-After. Requests still sending their body and requests that
    need no work (health, metrics, the page) do not count."""
    queue_timeout: float = Field(5.0, ge=0)
    """Seconds a request may wait, in arrival order, for memory or a work slot
    before it gets 503 with Retry-After."""
    work_threads: int = Field(2, gt=0)
    """Heavy jobs (large bodies, images, big batches) run in threads, at most
    this many at once per worker: more only compete with the event loop."""
    memory_budget: int = Field(256 * MiB, ge=16 * MiB)
    """Bytes that the requests of one worker may hold at once: bodies, decoded
    inputs, answers (503 with Retry-After beyond; 413 for one request that
    could never fit). Peak RSS per worker stays under idle + this + the
    connections' buffers (see the README)."""
    graceful_timeout: float = Field(10.0, gt=0)
    """Seconds in-flight requests may run on after SIGTERM before the worker exits."""

    blas_threads: int = Field(1, ge=0)
    """BLAS threads per worker (0: leave the library's default). One thread per
    worker keeps the event loop and the other workers from fighting for cores."""
    inline_rows: int = Field(1024, ge=0)
    """Batches up to this many rows run on the event loop; larger ones in a thread.
    With one BLAS thread per worker, the hop to a thread costs more than it frees
    up for batches of up to about a thousand rows (~1.5 ms of work)."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level of the service and uvicorn."""
    access_log: bool = False
    """Log one line per request (off by default: it costs time on the hot path)."""
    log_format: Literal["text", "json"] = "text"
    """Log lines as text, or as one JSON object a line (with the request id)."""
    metrics: bool = True
    """Serve Prometheus metrics at /metrics and count every request (a few µs each)."""

    def model_files(self) -> dict[str, Path]:
        """Single-file models (``weights`` as ``mnist``, then ``models``), absolute."""
        files = {} if self.weights is None else {DEFAULT_MODEL: self.weights}
        files.update(self.models)
        return {name: _absolute(path) for name, path in files.items()}

    def repository(self) -> Path | None:
        """The repository directory: the given one, the shipped one, or none
        when only single files are served."""
        if self.model_repository is not None:
            return self.model_repository.expanduser().resolve()
        return None if self.weights is not None else shipped_weights.shipped()


def _absolute(path: Path) -> Path:
    """``path`` resolved, or only made absolute when it cannot be (a symlink
    loop: the loader then says so in one line)."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):
        return path.expanduser().absolute()


def export(settings: Settings) -> None:
    """Put every setting in the environment, for worker processes to read back.

    uvicorn starts workers as fresh processes that import the app by name; they
    rebuild ``Settings()`` from the environment and so get exactly these
    values, flags and resolved paths included.
    """
    values = settings.model_dump(mode="json")
    if settings.admin_token is not None:  # dumped masked otherwise
        values["admin_token"] = settings.admin_token.get_secret_value()
    for name, value in values.items():
        key = ENV_PREFIX + name.upper()
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value if isinstance(value, str) else json.dumps(value)
