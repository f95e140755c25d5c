"""RFC 9457 problem responses, and every exception handler of the service.

One table maps ``core`` errors to a status and a stable problem type; one
handler writes the body. The router's own 404/405, request validation errors
and unexpected exceptions go through the same writer, so every 4xx/5xx body is
``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core.errors import (
    BatchTooLargeError,
    CoreError,
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
    UnknownActivationError,
    UnsupportedImageError,
)

logger = logging.getLogger("mnist_serve")

PROBLEM_JSON = "application/problem+json"

# Looked up through the class's MRO, so a subclass inherits its parent's row
# unless it has its own.
ERROR_TABLE: dict[type[CoreError], tuple[int, str]] = {
    CoreError: (500, "internal-error"),
    InputError: (422, "invalid-input"),
    LimitExceededError: (413, "limit-exceeded"),
    BatchTooLargeError: (413, "batch-too-large"),
    EmptyImageError: (422, "empty-image"),
    ImageDecodeError: (400, "undecodable-image"),
    UnsupportedImageError: (415, "unsupported-image-type"),
    UnknownActivationError: (404, "unknown-activation"),
}

# Problem types of errors raised by the HTTP layer itself.
STATUS_TYPES = {
    400: "malformed-body",
    404: "not-found",
    405: "method-not-allowed",
    408: "body-timeout",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    500: "internal-error",
    503: "unavailable",
}


# A problem never repeats large client input: details and echoed names are
# clipped, and a validation error lists at most MAX_ERRORS items.
MAX_DETAIL = 1000
MAX_ECHO = 64
MAX_ERRORS = 20


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class ProblemError(Exception):
    """An HTTP-level error that should be answered with a problem body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str | None = None,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type_ = type_ or STATUS_TYPES.get(status, "error")
        self.errors = errors
        self.headers = headers


def problem_body(
    status: int,
    detail: str,
    type_: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    **extra: Any,
) -> bytes:
    """The bytes of an RFC 9457 problem document."""
    body: dict[str, Any] = {
        "type": f"/problems/{type_ or STATUS_TYPES.get(status, 'error')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": clip(detail, MAX_DETAIL),
    }
    if errors is not None:
        body["errors"] = list(errors)[:MAX_ERRORS]
    body.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps(body)


def request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def problem_response(
    request: Request,
    status: int,
    detail: str,
    type_: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        problem_body(
            status, detail, type_, errors, request_id=request_id(request), **extra
        ),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def status_of(exc: CoreError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[CoreError]


async def _core_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoreError)  # registered for CoreError only
    status, type_ = status_of(exc)
    valid = exc.valid if isinstance(exc, UnknownActivationError) else None
    return problem_response(request, status, exc.message, type_, valid=valid)


async def _problem_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.detail, exc.type_, exc.errors, exc.headers
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    if status == 404 and detail == "Not Found":
        detail = f"no route for {clip(request.url.path)}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        path = clip(request.url.path)
        detail = f"method {clip(request.method)} is not allowed on {path}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, status, detail, headers=headers)


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else clip(str(part)) for part in loc]


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Only loc and msg: the stock body echoes the input, which may be huge or
    # hold the very values that were refused.
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        # FastAPI reports a body that is not JSON as a validation error; the
        # contract says 400, as for the routes that parse JSON themselves.
        return problem_response(request, 400, "body is not valid JSON")
    errors = [
        {"loc": _loc(e.get("loc", ())), "msg": clip(str(e.get("msg", "")), 200)}
        for e in raw[:MAX_ERRORS]
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    if len(raw) > MAX_ERRORS:
        detail += f" ({len(raw)} errors; the first {MAX_ERRORS} are listed)"
    return problem_response(request, 422, detail, "invalid-input", errors)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    logger.exception(
        "unhandled error in %s %s (request id %s)",
        request.method,
        request.url.path,
        rid,
    )
    return problem_response(
        request, 500, f"internal error; quote request id {rid} when reporting it"
    )


def install(app: FastAPI) -> None:
    """Register every exception handler of the service on ``app``."""
    app.add_exception_handler(CoreError, _core_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
