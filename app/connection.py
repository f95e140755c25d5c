"""The connection-level guard: uvicorn's h11 protocol with deadlines, a cap and strict framing.

What an ASGI middleware cannot see happens on the connection before there is
a request: a header block that never ends, a body nobody reads, an answer
nobody reads, more sockets than file descriptors. uvicorn (with h11) has only
``timeout_keep_alive`` for idle connections between requests and
``limit_concurrency``, whose 503 is plain text, counts running tasks as well
as connections, and logs a warning per refusal. Its documented extension
point is the protocol class (``uvicorn.run(http=<class>)``), so this module
subclasses its h11 protocol:

* **header deadline**: a request line and headers must be complete within
  ``header_timeout`` seconds of the connection opening, or of the first byte
  of the next request on a kept-alive connection; otherwise 408 (or, when
  nothing at all was sent, a silent close);
* **body deadline** (a backstop): a body that is still arriving
  ``body_timeout`` + 1 s after its headers closes the connection, including
  bodies no route reads (the guard's own 408 comes first for bodies that are
  read);
* **send deadline**: a client that stops reading its answer for
  ``send_timeout`` seconds is disconnected, so an unread answer cannot pin
  the worker's memory;
* **connection cap**: beyond ``max_connections`` open connections a worker
  answers 503 problem+json at once and closes, long before the process runs
  out of file descriptors (when ``accept()`` fails, clients get silence);
* **framing**: ``Content-Length`` together with ``Transfer-Encoding`` is
  refused and the connection closed (RFC 9112 6.3: h11 would let chunked win
  and keep the connection, which lets a front end that trusts the length
  smuggle a request); a header block over ``max_header_bytes`` is refused
  with 431 even when it arrives whole in one read (h11 only limits
  *incomplete* header blocks); h11's own refusals are problem+json too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app import errors, exceptions

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger("mnist_serve")

# How long a refused connection is kept half-closed, so that the client reads
# the 503 before the socket goes (closing with unread input sends a reset).
LINGER_SECONDS = 1.0
# Warnings about refused connections: at most one in this many seconds.
WARN_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection deadlines and caps, from the settings.

    Attributes
    ----------
    header_timeout : float
        Seconds for a whole request line and header block.
    body_timeout : float
        Seconds for a whole body (the guard answers 408 at this deadline; the
        connection closes one second later whatever happens).
    send_timeout : float
        Seconds a client may leave its answer unread before it is dropped.
    max_connections : int
        Open connections per worker; more are answered 503 and closed.
    max_header_bytes : int
        Largest request line + header block (431 beyond).
    """

    header_timeout: float
    body_timeout: float
    send_timeout: float
    max_connections: int
    max_header_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            send_timeout=settings.send_timeout,
            max_connections=settings.max_connections,
            max_header_bytes=settings.max_header_bytes,
        )


@cache
def _limits() -> ConnectionLimits:
    # uvicorn builds a protocol per connection from the class alone, in every
    # worker process; the settings come from the environment, where
    # ``mnist-serve`` exported them (app.settings.export).
    from app.settings import Settings

    return ConnectionLimits.of(Settings())


class _Connection(h11.Connection):
    """h11's server side, which also refuses what it would let through."""

    def __init__(self, max_header_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_header_bytes = max_header_bytes
        self.last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        before = self._buffered()
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise
        if type(event) is h11.Request:
            problem = self._refusal(event, before - self._buffered())
            if problem is not None:
                self.last_error = problem
                raise problem
        return event

    def _buffered(self) -> int:
        return len(self._receive_buffer)

    def _refusal(self, event: h11.Request, head_bytes: int) -> Any:
        if head_bytes > self.max_header_bytes:
            return _Refusal(
                exceptions.HeadersTooLargeError(
                    f"the request line and headers are {head_bytes} bytes, over "
                    f"the limit of {self.max_header_bytes}"
                )
            )
        names = {name.lower() for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            return _Refusal(
                exceptions.AmbiguousFramingError(
                    "a request may not carry both Content-Length and "
                    "Transfer-Encoding; the connection is closed"
                )
            )
        return None


class _Refusal(h11.RemoteProtocolError):
    """A request h11 accepted that this server refuses, with the reason."""

    def __init__(self, reason: exceptions.ServiceError) -> None:
        super().__init__(reason.message)
        self.reason = reason


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines, a connection cap and strict framing."""

    _last_warning = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits()
        self._h11 = _Connection(self.limits.max_header_bytes)
        self.conn = self._h11
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""
        self._send_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # -- connections -----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse_connection()
            return
        self._arm("header", self.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_send()
        super().connection_lost(exc)

    def _refuse_connection(self) -> None:
        self._refused = True
        # A refused connection is not one of the server's: it neither counts
        # against the cap nor holds up a graceful shutdown.
        self.connections.discard(self)
        now = time.monotonic()
        if now - GuardedH11Protocol._last_warning >= WARN_EVERY:
            GuardedH11Protocol._last_warning = now
            logger.warning(
                "refusing connections: %d open, the limit is %d per worker "
                "(MNIST_SERVE_MAX_CONNECTIONS)",
                len(self.connections),
                self.limits.max_connections,
            )
        self.transport.write(
            errors.raw_response(
                exceptions.TooManyConnectionsError(
                    f"the server holds {self.limits.max_connections} connections; "
                    "retry shortly"
                ),
                uuid.uuid4().hex,
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the client closes or the linger ends
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    # -- deadlines -------------------------------------------------------

    def handle_events(self) -> None:
        super().handle_events()
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # A kept-alive connection: uvicorn's keep-alive timer covers the
            # silence; the first byte of a new request starts the clock.
            if self._phase != "header" and self.conn._receive_buffer:
                self._arm("header", self.limits.header_timeout, self._header_timeout)
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout + 1.0, self._body_timeout)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        # A kept-alive connection waits for its next request under uvicorn's
        # keep-alive timer, unless a body is still arriving (then the body
        # deadline goes on).
        if self._phase == "header":
            self._disarm()
        super().on_response_complete()

    def _arm(self, phase: str, seconds: float, callback: Any) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = ""

    def _header_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn._receive_buffer:
            self.transport.write(
                errors.raw_response(
                    exceptions.HeaderTimeoutError(
                        "the request line and headers did not arrive within "
                        f"{self.limits.header_timeout:g} s"
                    ),
                    uuid.uuid4().hex,
                )
            )
        # Nothing sent at all: an idle connection, closed without a word.
        self.transport.close()

    def _body_timeout(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            # The guard has answered 408 already if a route was reading it;
            # a body nobody reads has had its chance too.
            self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(
                self.limits.send_timeout, self._send_timeout
            )

    def resume_writing(self) -> None:
        self._disarm_send()
        super().resume_writing()

    def _disarm_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_timeout(self) -> None:
        self._send_deadline = None
        # The client stopped reading: what is buffered for it is dropped.
        self.transport.abort()

    # -- refusals --------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        error = self._h11.last_error
        reason: exceptions.ServiceError
        if isinstance(error, _Refusal):
            reason = error.reason
        elif error is not None and error.error_status_hint == 431:
            reason = exceptions.HeadersTooLargeError(
                "the request line and headers are over the limit of "
                f"{self.limits.max_header_bytes} bytes"
            )
        elif error is not None and error.error_status_hint == 501:
            reason = exceptions.UnsupportedTransferCodingError(
                f"{error}; only Transfer-Encoding: chunked is supported"
            )
        else:
            detail = str(error) if error is not None else msg
            reason = exceptions.MalformedRequestError(
                f"malformed HTTP request: {detail}"
            )
        self._disarm()
        self.transport.write(errors.raw_response(reason, uuid.uuid4().hex))
        self.transport.close()
