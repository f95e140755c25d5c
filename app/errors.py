"""The one error edge: every exception, one status table, a renderer per protocol.

Exceptions say what went wrong and carry no HTTP: ``core``'s errors (bad input
values, images, activation names) and the few of the HTTP layer below (a body
that is not JSON, an unsupported media type, a body over the size limit, ...).
:data:`ERRORS` maps each class (through its MRO, so subclasses inherit their
parent's row) to a status and a stable problem type; :func:`describe` turns an
exception into a :class:`Failure`, and :func:`render` writes it in the
protocol of the route it happened on:

* the native API: RFC 9457 ``application/problem+json``;
* the Open Inference Protocol (``/v2``): ``{"error": "..."}``;
* the same protocol over gRPC: a status code and its details
  (:func:`grpc_status`).

The guard's refusals (408, 413, 503), the router's 404/405, validation errors
and unexpected exceptions (500) all leave through :func:`render`, with the
request id; so do the connection-level refusals of :mod:`app.connection`
(malformed or ambiguous framing, header block too large or too slow, too many
connections), which happen before there is a request to route. A row with
``close`` makes the answer end the connection: the rest of what the client
sent is never read, or cannot be trusted (RFC 9112 6.3).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import Any

import orjson
import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.exceptions import (
    AmbiguousFramingError,
    BodyTimeoutError,
    BodyTooLargeError,
    BusyError,
    ForbiddenError,
    HeadersTooLargeError,
    HeaderTimeoutError,
    InvalidRequestError,
    MalformedBodyError,
    MalformedRequestError,
    ModelLoadError,
    NotFoundError,
    NotReadyError,
    OverBudgetError,
    ServiceError,
    ShuttingDownError,
    TooManyConnectionsError,
    UnauthorizedError,
    UnsupportedEncodingError,
    UnsupportedMediaTypeError,
    UnsupportedTransferCodingError,
)
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

# A problem never repeats large client input: details and echoed names are
# clipped, and a validation error lists at most MAX_ERRORS items.
MAX_DETAIL = 1000
MAX_ECHO = 64
MAX_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Kind:
    """A row of the error table."""

    status: int
    type: str
    headers: tuple[tuple[str, str], ...] = ()


# A row's headers: come back in a second (a 503 that clears by itself), and
# the connection cannot carry another request (the rest of what the client
# sent is never read, or cannot be trusted: RFC 9112 6.3).
_RETRY = ("Retry-After", "1")
_CLOSE = ("Connection", "close")

ERRORS: dict[type[BaseException], Kind] = {
    Exception: Kind(500, "internal-error"),
    CoreError: Kind(500, "internal-error"),
    InputError: Kind(422, "invalid-input"),
    LimitExceededError: Kind(413, "limit-exceeded"),
    BatchTooLargeError: Kind(413, "batch-too-large"),
    EmptyImageError: Kind(422, "empty-image"),
    ImageDecodeError: Kind(400, "undecodable-image"),
    UnsupportedImageError: Kind(415, "unsupported-image-type"),
    UnknownActivationError: Kind(404, "unknown-activation"),
    MalformedBodyError: Kind(400, "malformed-body"),
    InvalidRequestError: Kind(422, "invalid-input"),
    pydantic.ValidationError: Kind(422, "invalid-input"),
    RequestValidationError: Kind(422, "invalid-input"),
    UnsupportedMediaTypeError: Kind(415, "unsupported-media-type"),
    NotFoundError: Kind(404, "not-found"),
    ModelLoadError: Kind(409, "model-load-failed"),
    UnauthorizedError: Kind(
        401, "unauthorized", (("WWW-Authenticate", 'Bearer realm="mnist-serve"'),)
    ),
    ForbiddenError: Kind(403, "forbidden"),
    BodyTooLargeError: Kind(413, "body-too-large", (_CLOSE,)),
    BodyTimeoutError: Kind(408, "body-timeout", (_CLOSE,)),
    # 503s that clear by themselves: say when to come back.
    BusyError: Kind(503, "unavailable", (_RETRY,)),
    OverBudgetError: Kind(413, "over-memory-budget"),
    NotReadyError: Kind(503, "not-ready", (_RETRY,)),
    ShuttingDownError: Kind(503, "shutting-down", (_RETRY, _CLOSE)),
    # nginx's code for "the client closed the connection": metrics and logs
    # tell client aborts from server errors by it.
    ClientDisconnect: Kind(499, "client-closed-request", (_CLOSE,)),
    UnsupportedEncodingError: Kind(
        415,
        "unsupported-content-encoding",
        (("Accept-Encoding", "identity"),),  # RFC 9110 15.5.16
    ),
    MalformedRequestError: Kind(400, "malformed-request", (_CLOSE,)),
    AmbiguousFramingError: Kind(400, "ambiguous-framing", (_CLOSE,)),
    HeadersTooLargeError: Kind(431, "headers-too-large", (_CLOSE,)),
    UnsupportedTransferCodingError: Kind(501, "unsupported-transfer-coding", (_CLOSE,)),
    HeaderTimeoutError: Kind(408, "header-timeout", (_CLOSE,)),
    TooManyConnectionsError: Kind(503, "too-many-connections", (_RETRY, _CLOSE)),
}
# Statuses without a phrase in http.HTTPStatus.
_TITLES = {499: "Client Closed Request"}

# Starlette's own HTTPExceptions (router 404/405, a few of its parsers) have a
# status already; these are their problem types.
_HTTP_TYPES = {404: "not-found", 405: "method-not-allowed", 400: "malformed-body"}


class Protocol(Enum):
    PROBLEM = "problem+json"
    V2 = "v2"


def protocol_for(path: str) -> Protocol:
    """The error format of a path: the Open Inference Protocol's under ``/v2``."""
    return Protocol.V2 if path == "/v2" or path.startswith("/v2/") else Protocol.PROBLEM


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong, independent of the protocol that will say it."""

    status: int
    type: str
    detail: str
    errors: Sequence[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def kind_of(exc: BaseException) -> Kind:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return ERRORS[Exception]


def describe(
    exc: BaseException, *, method: str, path: str, request_id: str | None
) -> Failure:
    """The failure an exception stands for: status, type, detail and extras."""
    if isinstance(exc, StarletteHTTPException):
        return _http_failure(exc, method, path)
    if isinstance(exc, RequestValidationError):
        return _validation_failure(exc.errors(), in_body=False)
    if isinstance(exc, pydantic.ValidationError):  # a codec's, on the body
        return _validation_failure(exc.errors(), in_body=True)
    kind = kind_of(exc)
    headers = dict(kind.headers)
    if kind.status == 500:
        return Failure(
            500,
            kind.type,
            f"internal error; quote request id {request_id} when reporting it",
        )
    if isinstance(exc, CoreError):
        # Invalid input says where, in the body, it is invalid.
        errors = (
            [{"loc": ["body", *exc.loc], "msg": exc.message}]
            if isinstance(exc, InputError)
            else None
        )
        extra = {"valid": exc.valid} if isinstance(exc, UnknownActivationError) else {}
        return Failure(kind.status, kind.type, exc.message, errors, headers, extra)
    if isinstance(exc, ServiceError):
        return Failure(kind.status, kind.type, exc.message, exc.errors, headers)
    if isinstance(exc, ClientDisconnect):
        return Failure(kind.status, kind.type, "the client disconnected", None, headers)
    return Failure(kind.status, kind.type, str(exc), headers=headers)


def title(status: int) -> str:
    """The status's reason phrase."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _TITLES.get(status, "Error")


def _http_failure(exc: StarletteHTTPException, method: str, path: str) -> Failure:
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    headers = dict(exc.headers or {})
    if status == 404 and detail == "Not Found":
        detail = f"no route for {clip(path)}"
    elif status == 405:
        allowed = headers.get("Allow") or headers.get("allow")
        detail = f"method {clip(method)} is not allowed on {clip(path)}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    return Failure(status, _HTTP_TYPES.get(status, "error"), detail, headers=headers)


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else clip(str(part)) for part in loc]


# Pydantic's error types in words a client can act on; the others keep
# Pydantic's message, after the field's location.
_MESSAGES = {
    "missing": "field {name} is required",
    "extra_forbidden": "unknown field {name}",
    "bool_type": "{name} must be true or false",
    "bool_parsing": "{name} must be true or false",
    "string_type": "{name} must be a string",
    "int_type": "{name} must be an integer",
    "list_type": "{name} must be a list",
    "model_type": "{name} must be a JSON object",
    "model_attributes_type": "{name} must be a JSON object",
    "dict_type": "{name} must be a JSON object",
}


def _message(error: Any, loc: list[str | int]) -> str:
    template = _MESSAGES.get(error.get("type", ""))
    where = ".".join(str(p) for p in loc if p != "body") or "body"
    if template is not None:
        return template.format(name=where)
    return f"{where}: {clip(str(error.get('msg', '')), 200)}"


def _validation_failure(raw: Sequence[Any], in_body: bool) -> Failure:
    # Only loc and msg: pydantic's own entries echo the input, which may be
    # huge or hold the very values that were refused.
    if any(e.get("type") == "json_invalid" for e in raw):
        return Failure(400, "malformed-body", "body is not valid JSON")
    errors: list[dict[str, Any]] = []
    for e in raw[:MAX_ERRORS]:
        where = tuple(e.get("loc", ()))
        loc = _loc(("body", *where) if in_body else where)
        errors.append({"loc": loc, "msg": _message(e, loc)})
    # The detail says all of it at a glance; ``errors`` has the locations.
    detail = "; ".join(str(e["msg"]) for e in errors[:5]) or "invalid request"
    if len(raw) > MAX_ERRORS:
        detail += f" ({len(raw)} errors; the first {MAX_ERRORS} are listed)"
    return Failure(422, "invalid-input", detail, errors)


def render(
    failure: Failure, protocol: Protocol, request_id: str | None
) -> tuple[bytes, str]:
    """The body and media type of ``failure`` in ``protocol``."""
    detail = clip(failure.detail, MAX_DETAIL)
    if protocol is Protocol.V2:
        return orjson.dumps({"error": detail}), "application/json"
    body: dict[str, Any] = {
        "type": f"/problems/{failure.type}",
        "title": title(failure.status),
        "status": failure.status,
        "detail": detail,
    }
    if failure.errors is not None:
        # Bounded where they are made: MAX_ERRORS for validation, one entry
        # per file for an upload (at most max_upload_parts).
        body["errors"] = list(failure.errors)
    if request_id is not None:
        body["request_id"] = request_id
    body.update(failure.extra)
    return orjson.dumps(body), PROBLEM_JSON


# The gRPC status of each HTTP status (the Open Inference Protocol's mapping:
# bad input INVALID_ARGUMENT, unknown model NOT_FOUND, over a limit
# RESOURCE_EXHAUSTED, not ready UNAVAILABLE). Names of grpc.StatusCode.
GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def grpc_status(failure: Failure) -> tuple[str, str]:
    """The gRPC status code name and details of ``failure``."""
    return GRPC_CODES.get(failure.status, "UNKNOWN"), clip(failure.detail, MAX_DETAIL)


def request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def error_response(request: Request, exc: BaseException) -> Response:
    """The response for ``exc`` raised while handling ``request``."""
    rid = request_id(request)
    failure = describe(
        exc, method=request.method, path=request.url.path, request_id=rid
    )
    body, media_type = render(failure, protocol_for(request.url.path), rid)
    return Response(
        body,
        status_code=failure.status,
        media_type=media_type,
        headers=failure.headers or None,
    )


async def _handler(request: Request, exc: Exception) -> Response:
    return error_response(request, exc)


def install(app: FastAPI) -> None:
    """Route every expected exception class through the edge.

    Unexpected exceptions (500) are caught by the guard middleware, which
    renders them here too, with the request id header that a handler in
    Starlette's outermost layer could not add.
    """
    for cls in (
        CoreError,
        ServiceError,
        ClientDisconnect,
        StarletteHTTPException,
        RequestValidationError,
        pydantic.ValidationError,
    ):
        app.add_exception_handler(cls, _handler)


def raw_response(exc: BaseException, request_id: str) -> bytes:
    """A whole HTTP/1.1 answer for ``exc``, for refusals made before there is a request.

    The connection-level guard (:mod:`app.connection`) writes it straight to the
    socket: the request line may be unreadable, so the path (and with it the
    V2 format) is unknown, and the answer is problem+json.
    """
    failure = describe(exc, method="", path="", request_id=request_id)
    body, media_type = render(failure, Protocol.PROBLEM, request_id)
    lines = [
        f"HTTP/1.1 {failure.status} {title(failure.status)}",
        f"content-type: {media_type}",
        f"content-length: {len(body)}",
        f"x-request-id: {request_id}",
        *(f"{k.lower()}: {v}" for k, v in failure.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
