"""The fast JSON reader: one array of numbers straight from the text into NumPy.

simdjson parses the text and ``as_buffer`` copies one array of numbers (``x``,
or a tensor's ``data``) into a NumPy buffer, never making a Python float. It
takes only bodies it can prove it reads exactly as orjson does and returns
None for anything else; :mod:`app.codecs.jsonbody` then reads them with
orjson, and words every error.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import simdjson
from numpy.typing import NDArray

Path = tuple[str | int, ...]
Kind = Literal["d", "i"]  # as_buffer's float64 or int64
# Envelopes are a few keys and short lists; the fast reader walks them in
# Python, so a body with a large one is left to orjson.
MAX_ENVELOPE_NODES = 1_000
# simdjson's parser grows its buffers to the largest body it has read and
# keeps them. Allocating them afresh per request cost a 100-image JSON batch
# ~760 page faults and 1.2 ms of its 2.9 (python -m bench http), so a thread
# keeps its parser after bodies up to KEEP_PARSER_BYTES (a 100-image batch of
# full-precision floats is 595 KB). What a kept parser holds is at most
# PARSER_BYTES_PER_BODY_BYTE per byte of that size (measured: 13.2 for a body
# of "0,0,0,...", 2.2 for a batch of images; ``python -m bench.hostile costs``,
# "kept" column), reserved from the worker's memory budget by create_app.
# Only the event loop's thread keeps one: bodies up to codecs.INLINE_BYTES,
# which is larger, are parsed there, and larger ones in the work threads.
KEEP_PARSER_BYTES = 640 * 1024
PARSER_BYTES_PER_BODY_BYTE = 14
_keep_bytes = KEEP_PARSER_BYTES
_BOM = b"\xef\xbb\xbf"


def count_upto(body: bytes, byte: bytes, limit: int) -> int:
    # bytes.find of one byte is a memchr: microseconds for a 600 KB body,
    # where `b"true" in body` scans for milliseconds.
    count, i = 0, body.find(byte)
    while i >= 0 and count <= limit:
        count += 1
        i = body.find(byte, i + 1)
    return count


# --------------------------------------------------------------------------
# The fast reader
# --------------------------------------------------------------------------


class _Declined(Exception):
    """The body is valid JSON but not one the fast reader vouches for."""


class _Parsers(threading.local):
    # A simdjson parser keeps its buffers (about the size of the largest body
    # it has read) between documents; one per thread, since a parser's
    # documents must be released before it parses the next one.
    parser: simdjson.Parser | None = None


_parsers = _Parsers()


def fast_numbers(
    body: bytes,
    path: Path,
    kind: Callable[[dict[str, Any]], Kind] = lambda envelope: "d",
) -> tuple[dict[str, Any], NDArray[Any]] | None:
    """The array at ``path`` read straight into NumPy, and the rest as orjson reads it.

    Parameters
    ----------
    body : bytes
        A JSON text whose top level is an object.
    path : tuple
        Keys and list indices down to the array of numbers, e.g. ``("x",)``.
    kind : callable
        Given the rest of the document, ``"d"`` to read the numbers as float64
        or ``"i"`` as int64 (then a number written with a fraction or an
        exponent declines, as the general reader's integers-only rule wants).

    Returns
    -------
    (envelope, array) or None
        The document without the array, as Python objects, and the array
        with the shape of its nesting. None when the body is not one the fast
        reader can prove it reads as orjson does: not JSON, a byte order mark
        or any backslash escape, duplicate keys, a large envelope, no array at
        ``path``, or an array that is not numbers nested to a regular shape.
    """
    if body.startswith(_BOM) or body.find(b"\\") >= 0:
        # orjson refuses a byte order mark where simdjson skips it; without
        # escapes, the text of every key and string is its value, which the
        # bracket count below relies on.
        return None
    try:
        return _read(_parser(), body, path, kind)
    except _Declined:
        return None
    except RuntimeError:
        _parsers.parser = None  # a parser in a bad state is not used again
        return None
    except (ValueError, TypeError, KeyError, IndexError, MemoryError):
        return None  # simdjson's refusals: the general reader words them
    finally:
        if len(body) > _keep_bytes:
            # Its buffers now fit this big body: let them go with the request
            # (whose decoding was charged to the memory budget) rather than
            # keep more than the budget reserved for ever.
            _parsers.parser = None


def keep_parsers(memory_budget: int) -> int:
    """Set the largest body after which a thread keeps its parser; the bytes to reserve.

    KEEP_PARSER_BYTES, or less when that would reserve more than a sixteenth of
    ``memory_budget``. Process-wide: the last application created sets it.
    """
    global _keep_bytes
    _keep_bytes = min(
        KEEP_PARSER_BYTES, memory_budget // (16 * PARSER_BYTES_PER_BODY_BYTE)
    )
    return _keep_bytes * PARSER_BYTES_PER_BODY_BYTE


def _parser() -> simdjson.Parser:
    if _parsers.parser is None:
        _parsers.parser = simdjson.Parser()
    return _parsers.parser


def _read(
    parser: simdjson.Parser,
    body: bytes,
    path: Path,
    kind: Callable[[dict[str, Any]], Kind],
) -> tuple[dict[str, Any], NDArray[Any]]:
    walk = _Walk(path)
    envelope = walk.plain(parser.parse(body), ())
    array = walk.found
    if not isinstance(envelope, dict) or not isinstance(array, simdjson.Array):
        raise _Declined
    shape = _first_shape(array)
    arrays = sum(math.prod(shape[:level]) for level in range(len(shape)))
    # Every '[' of the text is an array of the envelope, a '[' inside one of
    # its keys or strings, or an array inside the numbers. With exactly as
    # many in the numbers as a regular nesting of this shape has, and each of
    # those arrays of the right length, every element below is a scalar,
    # which as_buffer then requires to be a number.
    expected = walk.brackets + arrays
    if count_upto(body, b"[", expected + 1) != expected:
        raise _Declined
    if len(shape) > 1 and not _regular(array, shape):
        raise _Declined
    code = kind(envelope)
    dtype = np.int64 if code == "i" else np.float64
    flat = np.frombuffer(array.as_buffer(of_type=code), dtype=dtype)
    return envelope, flat.reshape(shape)


class _Walk:
    """Converts a simdjson document to Python objects, except the array at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: object = None
        self.brackets = 0  # the envelope's arrays and the '[' in its text
        self.nodes = 0

    def plain(self, node: object, at: Path) -> object:
        self.nodes += 1
        if self.nodes > MAX_ENVELOPE_NODES:
            raise _Declined
        if isinstance(node, simdjson.Object):
            keys = list(node.keys())
            if len(set(keys)) != len(keys):
                raise _Declined  # orjson keeps the last of a repeated key
            out = {}
            for key in keys:
                self.brackets += key.count("[")
                where = (*at, key)
                if where == self.path:
                    self.found = node[key]
                else:
                    out[key] = self.plain(node[key], where)
            return out
        if isinstance(node, simdjson.Array):
            self.brackets += 1
            return [self.plain(item, (*at, i)) for i, item in enumerate(node)]
        if isinstance(node, str):
            self.brackets += node.count("[")
        return node


def _first_shape(array: simdjson.Array) -> tuple[int, ...]:
    """The shape the nesting would have if it is regular, read along first items."""
    shape = []
    node: object = array
    while isinstance(node, simdjson.Array):
        shape.append(len(node))
        if not shape[-1]:
            break
        node = node[0]
    return tuple(shape)


def _regular(array: simdjson.Array, shape: tuple[int, ...]) -> bool:
    """Every array above the numbers has the length ``shape`` says."""
    for item in array:
        if not isinstance(item, simdjson.Array) or len(item) != shape[1]:
            return False
        if len(shape) > 2 and not _regular(item, shape[1:]):
            return False
    return True
