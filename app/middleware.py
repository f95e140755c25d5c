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

from app import errors
from app.logconfig import set_request_id
from app.metrics import Metrics

logger = logging.getLogger("mnist_serve")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class GuardMiddleware:
    """Refuse what the routes should never see, before they see it.

    Gives every request an id (``X-Request-ID``, in logs and error bodies),
    caps the requests in flight, reads the body under a size limit and a
    deadline, and turns any exception that escapes the routes into a 500 in
    the route's protocol.

    Parameters
    ----------
    max_body_bytes : int
        413 when ``Content-Length`` says more, or when more arrives.
    body_timeout : float
        408 when the whole body has not arrived within this many seconds.
    max_concurrency : int
        503 with ``Retry-After`` when this many requests are already in flight.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        max_concurrency: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        set_request_id(rid)
        rid_header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if self.in_flight >= self.max_concurrency:
            await _refuse(
                scope,
                send_with_id,
                errors.BusyError(
                    f"server busy: {self.max_concurrency} requests in flight; "
                    "retry shortly"
                ),
                rid,
            )
            return
        self.in_flight += 1
        try:
            body = await self._read_body(scope, receive, send_with_id, rid)
            if body is not None:
                await self.app(scope, _replay(body, receive), send_with_id)
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
            self.in_flight -= 1

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send, rid: str
    ) -> bytes | None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(scope, send, self._too_large(declared), rid, close=True)
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            # One timer for the whole body (asyncio.wait_for per read would
            # create a task per chunk).
            async with asyncio.timeout(self.body_timeout):
                while size <= self.max_body_bytes:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if chunk:
                        chunks.append(chunk)
                    if (
                        not message.get("more_body", False)
                        and size <= self.max_body_bytes
                    ):
                        return b"".join(chunks)
        except TimeoutError:
            timeout = errors.BodyTimeoutError(
                f"the body did not arrive within {self.body_timeout:g} s "
                f"({size} bytes received)"
            )
            await _refuse(scope, send, timeout, rid, close=True)
            return None
        await _refuse(scope, send, self._too_large(None), rid, close=True)
        return None

    def _too_large(self, declared: int | None) -> errors.BodyTooLargeError:
        size = f"body of {declared} bytes" if declared is not None else "body"
        return errors.BodyTooLargeError(
            f"{size} is over the limit of {self.max_body_bytes} bytes"
        )


def _request_id(scope: Scope) -> str:
    name: bytes
    value: bytes
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(
    scope: Scope, send: Send, exc: BaseException, rid: str, *, close: bool = False
) -> None:
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
    if close:
        # The rest of the body is never read: the connection cannot be reused.
        headers.append((b"connection", b"close"))
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
