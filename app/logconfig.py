"""Log records with request ids, as text or as one JSON object a line.

``mnist-serve --log-format json`` (or ``MNIST_SERVE_LOG_FORMAT=json``) hands
:func:`log_config` to uvicorn, so uvicorn's own loggers, its access log and the
service's ``mnist_serve`` logger all write the same format. Every record made
while a request is handled carries that request's id (the one echoed in
``X-Request-ID`` and put in problem bodies): the guard sets a context
variable, and :class:`RequestIdFilter` copies it onto the record.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

_request_id: ContextVar[str | None] = ContextVar("mnist_serve_request_id", default=None)


def set_request_id(request_id: str) -> None:
    """Tag every record made while this request is handled (the guard calls it).

    Each request runs in its own task, hence its own context: the variable
    needs no reset, and it stays set for the error handlers and uvicorn's
    access log line, which run after the inner app has returned.
    """
    _request_id.set(request_id)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` (``"-"`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(getattr(record, "request_id", None), str):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, and for
    uvicorn's access log the client, method, path and status as fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if isinstance(rid, str) and rid != "-":
            out["request_id"] = rid
        args = record.args
        if (
            record.name == "uvicorn.access"
            and isinstance(args, tuple)
            and len(args) == 5
        ):
            client, method, path, version, status = args
            out.update(
                client=client,
                method=method,
                path=path,
                http_version=version,
                status=status,
            )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def log_config(level: str = "info", fmt: LogFormat = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``."""
    if fmt == "json":
        default: dict[str, Any] = {"()": "app.logconfig.JsonFormatter"}
        access: dict[str, Any] = {"()": "app.logconfig.JsonFormatter"}
    else:
        default = {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        }
        access = {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" '
            "%(status_code)s [%(request_id)s]",
        }
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "filters": ["request_id"],
    }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "app.logconfig.RequestIdFilter"}},
        "formatters": {"default": default, "access": access},
        "handlers": {
            "default": {**handler, "formatter": "default"},
            "access": {**handler, "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {
                "handlers": ["access"],
                "level": level,
                "propagate": False,
            },
            "mnist_serve": {
                "handlers": ["default"],
                "level": level,
                "propagate": False,
            },
        },
    }
