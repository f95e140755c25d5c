"""JSON bodies: arrays of numbers straight into NumPy, everything else as orjson reads it.

Two readers give the same outcome for every body:

* the fast one (:func:`fast_numbers`): simdjson parses the text and copies one
  array of numbers (``x``, or a tensor's ``data``) into a NumPy buffer with
  ``as_buffer``, never making a Python float. It takes only bodies it can
  prove it reads exactly as orjson does, and returns None for anything else;
* the general one: orjson to Python objects, then NumPy from the lists. Every
  error is this reader's: when the fast one declines, or when what it read is
  refused (by Pydantic or :class:`core.batch.Batch`), the body is read again
  here, so a refused body gets the very same error whichever way it came.

Both hand :class:`core.batch.Batch` the numbers; it alone decides whether they
are an acceptable input.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import orjson
import pydantic
import simdjson
from numpy.typing import NDArray

from app.errors import clip
from app.exceptions import InvalidRequestError, MalformedBodyError, ServiceError
from app.schemas import ActivationRequest, PredictRequest
from core.batch import Batch, Scale
from core.errors import CoreError, InputError, LimitExceededError
from core.network import INPUT_SIZE

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
# What a fast read may run into that the general reader must then put in words.
REFUSALS = (CoreError, ServiceError, pydantic.ValidationError)


def parse(body: bytes) -> Any:
    """``orjson.loads(body)``, its refusals sorted into two kinds.

    orjson refuses ``NaN``, ``Infinity`` and numbers such as ``1e999`` that
    overflow a double like any other syntax error. Those bodies are well-formed
    apart from one value: they are invalid input (422), not malformed (400),
    and the number is not repeated.

    Raises
    ------
    InputError
        A non-finite number.
    MalformedBodyError
        Anything else that is not JSON.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        token = body[exc.pos : exc.pos + 9] if exc.pos is not None else b""
        if "infinity" in exc.msg or token.lstrip(b"-+").startswith(
            (b"NaN", b"Infinity")
        ):
            raise InputError(
                "the body contains a non-finite number (not a number, infinite, or "
                "too large for a float); JSON numbers must be finite"
            ) from None
        raise MalformedBodyError(
            f"body is not valid JSON: {exc.msg} at character {exc.pos}"
        ) from None


# What the general reader may hold at once (orjson's Python objects, Pydantic's
# copies, NumPy's conversion), from the tokens that make Python objects: at
# most ~90 bytes per '[' seen, ~230 per '{', ~80 per number or string
# (``python -m bench.hostile costs``, the json-shape rows: nested arrays,
# objects, strings, numbers). The fast reader's own needs are under
# admission.JSON_BYTES_PER_BODY_BYTE; a body it declines or refuses is charged
# the difference (:func:`app.codecs.charge_general`) before orjson reads it.
GENERAL_BYTES_PER_TOKEN = {b"[": 128, b"{": 256, b",": 40, b'"': 48}
GENERAL_BYTES_PER_BYTE = 4


def general_cost(body: bytes) -> int:
    """Bytes the general reader may hold at once for ``body`` (an upper estimate)."""
    return GENERAL_BYTES_PER_BYTE * len(body) + sum(
        body.count(token) * cost for token, cost in GENERAL_BYTES_PER_TOKEN.items()
    )


def decode_predict(body: bytes, max_rows: int) -> Batch:
    """The JSON body of /predict and /explain: ``{"x": ..., "normalize": ...}``."""
    fast = fast_predict(body, max_rows)
    return fast if fast is not None else general_predict(body, max_rows)


def fast_predict(body: bytes, max_rows: int) -> Batch | None:
    """:func:`decode_predict` by the fast reader alone; None where it cannot say."""
    fast = fast_numbers(body, ("x",))
    if fast is not None:
        envelope, x = fast
        envelope["x"] = x
        try:
            return _predict_batch(PredictRequest.model_validate(envelope), x, max_rows)
        except REFUSALS:
            pass  # refused: the general reader says why, in its own words
    return None


def general_predict(body: bytes, max_rows: int) -> Batch:
    """:func:`decode_predict` by the general reader alone (orjson, then NumPy)."""
    data = parse(body)
    envelope = PredictRequest.model_validate(data)
    return _predict_batch(
        envelope, numbers_array(envelope.x, _numbers_only(body, data)), max_rows
    )


def _predict_batch(envelope: PredictRequest, x: object, max_rows: int) -> Batch:
    scale = Scale.PIXELS if envelope.normalize else Scale.UNIT
    return Batch.from_numbers(x, scale=scale, max_rows=max_rows, name="x")


def decode_activation(
    body: bytes, max_points: int
) -> tuple[list[float], dict[str, float]]:
    """The JSON body of POST /activations/{name}: ``{"x": [...], <params>}``.

    ``x`` holds JSON numbers only (no booleans or strings), the parameters
    are numbers that fit a float; which parameters a function takes, and
    their ranges, are ``core``'s to check.

    Raises
    ------
    MalformedBodyError
        Not JSON.
    LimitExceededError
        More than ``max_points`` points.
    pydantic.ValidationError, InvalidRequestError
        Not an object, ``x`` missing or not numbers, a parameter not a number.
    """
    data = parse(body)
    if isinstance(data, dict):
        x = data.get("x")
        if isinstance(x, list) and len(x) > max_points:
            raise LimitExceededError(
                f"{len(x)} points is over the limit of {max_points}"
            )
    envelope = ActivationRequest.model_validate(data)
    params: dict[str, float] = {}
    for key, value in (envelope.model_extra or {}).items():
        params[key] = _number(key, value)
    return envelope.x, params


def _number(key: str, value: object) -> float:
    where = {"loc": ["body", clip(key)], "msg": "must be a number"}
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(
            f"parameter {clip(key)} must be a number", errors=[where]
        )
    try:
        return float(value)
    except OverflowError:  # an integer beyond float's range
        raise InvalidRequestError(
            f"parameter {clip(key)} is too large for a number",
            errors=[{**where, "msg": "too large"}],
        ) from None


def _count_upto(body: bytes, byte: bytes, limit: int) -> int:
    # bytes.find of one byte is a memchr: microseconds for a 600 KB body,
    # where `b"true" in body` scans for milliseconds.
    count, i = 0, body.find(byte)
    while i >= 0 and count <= limit:
        count += 1
        i = body.find(byte, i + 1)
    return count


def _numbers_only(body: bytes, data: object) -> bool:
    """True when the JSON text leaves ``x`` room for nothing but numbers and lists.

    Strings need quotes, booleans a ``t`` or an ``f``, null an ``n``, objects
    a brace: when the only ones in the text are those of the envelope (the
    keys, ``normalize`` and its value), ``x`` holds numbers and lists.
    """
    if not isinstance(data, dict):
        return False
    keys = len(data)
    flag = 1 if "normalize" in data else 0  # "normalize" has an n; true/false a t/f
    return (
        _count_upto(body, b'"', 2 * keys) == 2 * keys
        and _count_upto(body, b"{", 1) == 1
        and _count_upto(body, b"t", 1) + _count_upto(body, b"f", 1) <= flag
        and _count_upto(body, b"n", 1) <= flag
    )


def numbers_array(x: object, numbers_only: bool) -> object:
    """``x`` as float32 when it is known to hold only numbers, else unchanged.

    The common shapes (784 numbers, or rows of 784) go through ``np.fromiter``,
    ~15% faster than ``np.asarray``, which first discovers the nesting.
    Ragged or unusual nesting is left to :class:`Batch` to describe.
    """
    if not numbers_only or not isinstance(x, list) or not x:
        return x
    with np.errstate(over="ignore"):  # past float32's range: inf, refused by Batch
        try:
            rows = _flat_rows(x)
            return rows if rows is not None else np.asarray(x, dtype=np.float32)
        except (ValueError, TypeError):
            return x


def _flat_rows(x: list[Any]) -> NDArray[np.float32] | None:
    if type(x[0]) is not list:
        if len(x) != INPUT_SIZE:
            return None
        return np.fromiter(x, dtype=np.float32, count=INPUT_SIZE)
    if not all(type(row) is list and len(row) == INPUT_SIZE for row in x):
        return None
    flat = np.fromiter(
        itertools.chain.from_iterable(x), dtype=np.float32, count=len(x) * INPUT_SIZE
    )
    return flat.reshape(len(x), INPUT_SIZE)


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
    if _count_upto(body, b"[", expected + 1) != expected:
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
