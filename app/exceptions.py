"""The HTTP layer's own exceptions: what went wrong with a request, beyond its values.

Like ``core``'s errors they carry no HTTP: :mod:`app.errors` maps each class
to a status and renders it in the protocol of the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ServiceError(Exception):
    """An error of the request itself rather than of its values (the HTTP layer's)."""

    def __init__(
        self, message: str, *, errors: Sequence[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class MalformedBodyError(ServiceError):
    """The body cannot be parsed: not JSON, broken multipart, bad framing."""


class InvalidRequestError(ServiceError):
    """The body parses but its fields are wrong (a missing or unknown field)."""


class UnsupportedMediaTypeError(ServiceError):
    """A Content-Type (or Content-Encoding) the route does not read."""


class NotFoundError(ServiceError):
    """No such resource: a route, a static file, a model."""


class ModelLoadError(ServiceError):
    """The repository's files for a model cannot be loaded (a load request)."""


class UnauthorizedError(ServiceError):
    """No credentials where the route needs them."""


class ForbiddenError(ServiceError):
    """Credentials that do not grant this, or an action the mode forbids."""


class BodyTooLargeError(ServiceError):
    """The body is over the configured size limit."""


class BodyTimeoutError(ServiceError):
    """The body did not arrive in time."""


class BusyError(ServiceError):
    """Too many requests at once, or the memory budget in use: retry shortly."""


class OverBudgetError(ServiceError):
    """A request that would need more memory than the worker's whole budget."""


class NotReadyError(ServiceError):
    """The model is not loaded (yet): retry shortly."""


class ShuttingDownError(ServiceError):
    """The server was told to stop before this request could be answered."""


class UnsupportedEncodingError(UnsupportedMediaTypeError):
    """A ``Content-Encoding`` other than identity: bodies are read as sent."""


class MalformedRequestError(ServiceError):
    """The request's framing breaks HTTP/1.1 (reported by the parser)."""


class AmbiguousFramingError(MalformedRequestError):
    """Framing that two parsers could read differently (RFC 9112 6.3)."""


class HeadersTooLargeError(MalformedRequestError):
    """The request line and headers are over the header size limit."""


class UnsupportedTransferCodingError(MalformedRequestError):
    """A ``Transfer-Encoding`` other than chunked."""


class HeaderTimeoutError(ServiceError):
    """The request line and headers did not arrive in time."""


class TooManyConnectionsError(ServiceError):
    """The worker holds as many open connections as it may."""
