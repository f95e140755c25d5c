"""The guard in front of every route: request ids, a concurrency cap, and a
body reader that enforces the size limit and a read timeout while streaming.

It is plain ASGI rather than ``BaseHTTPMiddleware`` so that it can refuse a
body before it is buffered, and so that it adds no task or thread per request.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, problem_body

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class GuardMiddleware:
    """Refuse what the routes should never see, before they see it.

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
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if self.in_flight >= self.max_concurrency:
            await _refuse(
                send_with_id,
                503,
                f"server busy: {self.max_concurrency} requests in flight; retry shortly",
                rid,
                extra_headers=[(b"retry-after", b"1")],
            )
            return
        self.in_flight += 1
        try:
            body = await self._read_body(scope, receive, send_with_id, rid)
            if body is None:
                return
            await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            self.in_flight -= 1

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send, rid: str
    ) -> bytes | None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(
                send,
                413,
                f"body of {declared} bytes is over the limit of {self.max_body_bytes} bytes",
                rid,
                close=True,
                type_="body-too-large",
            )
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
            await _refuse(
                send,
                408,
                f"the body did not arrive within {self.body_timeout:g} s "
                f"({size} bytes received)",
                rid,
                close=True,
            )
            return None
        await _refuse(
            send,
            413,
            f"body is over the limit of {self.max_body_bytes} bytes",
            rid,
            close=True,
            type_="body-too-large",
        )
        return None


def _request_id(scope: Scope) -> str:
    name: bytes
    value: bytes
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
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
    send: Send,
    status: int,
    detail: str,
    rid: str,
    *,
    close: bool = False,
    type_: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = problem_body(status, detail, type_, request_id=rid)
    headers: list[Any] = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    if close:
        # The rest of the body is never read: the connection cannot be reused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
