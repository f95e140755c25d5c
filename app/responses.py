"""Fast JSON responses: orjson serialises NumPy arrays directly; big answers stream.

An answer is rendered whole (with ``Content-Length``) when its estimated JSON
size is at most :data:`STREAM_ABOVE`. A larger one (``?return_input=true`` on
thousands of images, /activations grids of 100,000 points) is written in
pieces of about :data:`PIECE_BYTES` with chunked transfer coding: each piece
is rendered by orjson from a slice of the arrays (about a millisecond), and
waits for the client to take the previous ones. So a 30 MB answer never
exists whole in memory, never holds the event loop for more than a piece,
and costs the worker a piece's worth of memory on top of the arrays it is
made from (which the request has already been charged for).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

STREAM_ABOVE = 256 * 1024
PIECE_BYTES = 64 * 1024
# Longest JSON text of one element, its comma included, by dtype kind and
# size: "-1.2345678e-38," for float32, "-1.2345678901234567e-308," for float64.
_MAX_CHARS = {("f", 4): 16, ("f", 8): 26, ("f", 2): 12}


def _element_chars(array: np.ndarray[Any, Any]) -> int:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f":
        return _MAX_CHARS.get((kind, size), 26)
    if kind in "iu":
        return 21
    return 26


def estimate(content: Any) -> int:
    """An upper bound of the JSON size of ``content``'s arrays (small values count 32)."""
    if isinstance(content, np.ndarray):
        return int(content.size) * _element_chars(content) + 2 * content.ndim
    if isinstance(content, Mapping):
        return sum(estimate(v) + 32 for v in content.values())
    if isinstance(content, list | tuple):
        if len(content) > 64:
            return 26 * len(content)  # a list of numbers, at most float64's
        return sum(estimate(v) + 1 for v in content) + 2
    return 32


class ORJSONResponse(JSONResponse):
    """A JSONResponse (so FastAPI documents the route's response model) rendered by orjson."""

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self._stream = estimate(content) > STREAM_ABOVE
        self._content = content if self._stream else None
        super().__init__(content, status_code, headers, media_type, background)
        if self._stream:
            # Chunked transfer coding: the length is known only at the end.
            del self.headers["content-length"]

    def render(self, content: Any) -> bytes:
        if getattr(self, "_stream", False):
            return b""
        return orjson.dumps(content, option=_OPTIONS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._stream:
            await super().__call__(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            }
        )
        pending: list[bytes] = []
        size = 0
        for piece in pieces(self._content):
            pending.append(piece)
            size += len(piece)
            if size >= PIECE_BYTES:
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"".join(pending),
                        "more_body": True,
                    }
                )
                pending, size = [], 0
        await send({"type": "http.response.body", "body": b"".join(pending)})
        self._content = None
        if self.background is not None:
            await self.background()


def pieces(content: Any) -> Iterator[bytes]:
    """``orjson.dumps(content)``, byte for byte, as a sequence of small pieces."""
    if isinstance(content, np.ndarray) and content.ndim >= 1 and content.size:
        per_row = max(1, content.size // max(1, len(content)))
        rows = max(1, PIECE_BYTES // (per_row * _element_chars(content)))
        if rows >= len(content):
            yield orjson.dumps(content, option=_OPTIONS)
            return
        yield b"["
        for start in range(0, len(content), rows):
            if start:
                yield b","
            # Slices along the first axis of a C-contiguous array are too.
            yield orjson.dumps(content[start : start + rows], option=_OPTIONS)[1:-1]
        yield b"]"
    elif isinstance(content, Mapping):
        yield b"{"
        for i, (key, value) in enumerate(content.items()):
            yield (b"," if i else b"") + orjson.dumps(key) + b":"
            yield from pieces(value)
        yield b"}"
    elif isinstance(content, list | tuple) and len(content) <= 64:
        yield b"["
        for i, value in enumerate(content):
            if i:
                yield b","
            yield from pieces(value)
        yield b"]"
    else:
        yield orjson.dumps(content, option=_OPTIONS)
