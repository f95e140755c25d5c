"""JSON bodies: arrays of numbers straight into NumPy, everything else as orjson reads it.

Two readers give the same outcome for every body:

* the fast one (:func:`app.codecs.fastjson.fast_numbers`): simdjson parses the text and copies one
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
from typing import Any

import numpy as np
import orjson
import pydantic
from numpy.typing import NDArray

from app.codecs.fastjson import count_upto, fast_numbers
from app.errors import clip
from app.exceptions import InvalidRequestError, MalformedBodyError, ServiceError
from app.schemas import ActivationRequest, PredictRequest
from core.batch import Batch, Scale
from core.errors import CoreError, InputError, LimitExceededError
from core.network import INPUT_SIZE

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
        count_upto(body, b'"', 2 * keys) == 2 * keys
        and count_upto(body, b"{", 1) == 1
        and count_upto(body, b"t", 1) + count_upto(body, b"f", 1) <= flag
        and count_upto(body, b"n", 1) <= flag
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
