"""The layers around every route: the guard, and request metrics.

Both are plain ASGI rather than ``BaseHTTPMiddleware``, so that the guard can
refuse a body before it is buffered and neither adds a task or a thread per
request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors, exceptions
from app.admission import Budget, Ticket
from app.logconfig import set_request_id
from app.metrics import Metrics

logger = logging.getLogger("mnist_serve")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class GuardMiddleware:
    """Refuse what the routes should never see, and bound what they may hold.

    Gives every request an id (``X-Request-ID``, in logs and error bodies),
    answers HEAD wherever GET is answered, refuses ambiguous framing and
    encoded bodies, and hands the routes a ``receive`` that reads the body
    under a size limit and a deadline, charging its bytes to the worker's
    memory budget (:mod:`app.admission`) as they arrive. The body is read
    when, and only if, a route reads it: a probe never waits for a body, and
    reading one holds no work slot. Any exception that escapes the routes
    becomes a 500 in the route's protocol; a request cut short by a forced
    shutdown gets a 503.

    Parameters
    ----------
    max_body_bytes : int
        413 when ``Content-Length`` says more, or when more arrives.
    body_timeout : float
        408 when the whole body has not arrived within this many seconds of
        the request's arrival.
    budget : Budget
        The worker's memory budget and work slots; each request gets a
        :class:`Ticket` on it (``scope["state"]["ticket"]``), released when
        its answer has been handed to the connection.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        budget: Budget,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        set_request_id(rid)
        if scope["method"] == "HEAD":
            # A GET whose body uvicorn leaves out (its own scope still says
            # HEAD), with the GET's headers, Content-Length included.
            scope = {**scope, "method": "GET"}
        rid_header = (b"x-request-id", rid.encode())
        body = _Body(scope, receive, self.max_body_bytes)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), rid_header]
                if body.unread and (b"connection", b"close") not in headers:
                    # What is left of the body is never read: the connection
                    # cannot carry another request.
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
                await send(message)
                return
            await _send_body(send, message)

        refusal = body.refusal()
        if refusal is not None:
            await _refuse(scope, send_with_id, refusal, rid)
            return
        ticket = Ticket(self.budget)
        scope["state"]["ticket"] = ticket
        body.deadline = asyncio.get_running_loop().time() + self.body_timeout
        body.ticket = ticket
        body.timeout = self.body_timeout
        try:
            await self.app(scope, body.receive, send_with_id)
        except asyncio.CancelledError:
            # Only a stopping server cancels a request (a second Ctrl+C, or
            # the graceful timeout running out): say so in the route's format
            # rather than let uvicorn answer a plain-text 500.
            if started:
                raise
            await _refuse(
                scope,
                send_with_id,
                exceptions.ShuttingDownError(
                    "the server is shutting down; retry on another instance"
                ),
                rid,
            )
        except Exception as exc:
            if started:
                raise  # nothing can be said any more: the connection is closed
            logger.exception(
                "unhandled error in %s %s (request id %s)",
                scope["method"],
                scope["path"],
                rid,
            )
            await _refuse(scope, send_with_id, exc, rid)
        finally:
            ticket.release()


# Answers are handed to the connection in pieces of this size: each waits for
# the socket to take the previous ones (uvicorn's flow control), so an answer
# of many megabytes is never copied whole into the transport's buffer.
SEND_CHUNK = 64 * 1024


async def _send_body(send: Send, message: Message) -> None:
    data = message.get("body", b"")
    if message["type"] != "http.response.body" or len(data) <= 4 * SEND_CHUNK:
        await send(message)
        return
    more = message.get("more_body", False)
    view = memoryview(data)
    for offset in range(0, len(data), SEND_CHUNK):
        last = offset + SEND_CHUNK >= len(data)
        await send(
            {
                "type": "http.response.body",
                "body": bytes(view[offset : offset + SEND_CHUNK]),
                "more_body": more or not last,
            }
        )


class _Body:
    """A request's body as the routes read it: limited, timed and charged."""

    def __init__(self, scope: Scope, receive: Receive, max_bytes: int) -> None:
        self.scope = scope
        self._receive = receive
        self.max_bytes = max_bytes
        self.received = 0
        self.deadline = 0.0
        self.timeout = 0.0
        self.ticket: Ticket | None = None
        self.length: int | None = None
        chunked = False
        self.encoding = ""
        name: bytes
        value: bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                self.length = _int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-encoding":
                self.encoding = value.decode("latin-1").strip().lower()
        self.chunked = chunked
        self.expected = chunked or bool(self.length)
        self.done = not self.expected

    @property
    def unread(self) -> bool:
        return not self.done

    def refusal(self) -> Exception | None:
        """Why the request is refused before its body is read, if it is."""
        if self.chunked and self.length is not None:
            # uvicorn's protocol refuses this first (app.connection); this
            # holds under any other server too.
            return exceptions.AmbiguousFramingError(
                "a request may not carry both Content-Length and "
                "Transfer-Encoding; the connection is closed"
            )
        if self.expected and self.encoding not in ("", "identity"):
            # One rule for every route: bodies are read as sent.
            return exceptions.UnsupportedEncodingError(
                f"Content-Encoding {errors.clip(self.encoding, 32)!r} is not "
                "supported; send the body uncompressed (identity)"
            )
        if self.length is not None and self.length > self.max_bytes:
            return _too_large(self.length, self.max_bytes)
        return None

    async def receive(self) -> Message:
        if self.done:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            raise exceptions.BodyTimeoutError(
                f"the body did not arrive within {self.timeout:g} s "
                f"({self.received} bytes received)"
            ) from None
        if message["type"] != "http.request":
            self.done = True  # the client is gone (http.disconnect)
            return message
        size = len(message.get("body", b""))
        self.received += size
        if self.received > self.max_bytes:
            raise _too_large(None, self.max_bytes)
        if self.ticket is not None and size:
            # Twice: the chunks and the joined body coexist for a moment.
            # Time spent waiting for room is the server's, not the client's:
            # the deadline moves by as much.
            loop = asyncio.get_running_loop()
            waited = loop.time()
            await self.ticket.charge_body(2 * size)
            self.deadline += loop.time() - waited
        if not message.get("more_body", False):
            self.done = True
        return message


def _int(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _too_large(declared: int | None, limit: int) -> exceptions.BodyTooLargeError:
    size = f"body of {declared} bytes" if declared is not None else "body"
    return exceptions.BodyTooLargeError(f"{size} is over the limit of {limit} bytes")


def request_id_or_new(given: str | None) -> str:
    """The client's request id when it is a sane one, else a new one."""
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _request_id(scope: Scope) -> str:
    name: bytes
    value: bytes
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return request_id_or_new(value.decode("latin-1"))
    return request_id_or_new(None)


async def _refuse(scope: Scope, send: Send, exc: BaseException, rid: str) -> None:
    """Answer ``exc`` through the error edge, in the protocol of the path."""
    failure = errors.describe(
        exc, method=scope["method"], path=scope["path"], request_id=rid
    )
    body, media_type = errors.render(failure, errors.protocol_for(scope["path"]), rid)
    headers: list[Any] = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in failure.headers.items()),
    ]
    await send(
        {"type": "http.response.start", "status": failure.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Count and time every HTTP request by method, route template and status."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._flat: list[BaseRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            method = scope["method"]
            self.metrics.observe_request(
                method if method in METHODS else "other",
                self._route(scope),
                status,
                time.perf_counter() - start,
            )

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Not routed: refused by the guard before the router ran, or no route
        # at all. Only these few requests pay for a lookup.
        if self._flat is None:
            self._flat = list(_flatten(self.routes))
        for candidate in self._flat:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                found = getattr(candidate, "path", None)
                if isinstance(found, str):
                    return found
        return UNMATCHED


def _flatten(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        # FastAPI >= 0.16x keeps an included router whole, behind a wrapper.
        # The routers here carry their own prefix, so the inner paths are full.
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flatten(inner.routes)
        else:
            yield route
