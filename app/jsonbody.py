"""Parsing JSON request bodies with orjson, telling bad syntax from bad numbers."""

from __future__ import annotations

from typing import Any

import orjson


class MalformedJSONError(ValueError):
    """The body is not JSON (answered with 400)."""


class NonFiniteNumberError(ValueError):
    """The body is JSON but for a NaN, Infinity or overflowing number (422)."""


def parse(body: bytes) -> Any:
    """``orjson.loads(body)``, with its rejections sorted into two kinds.

    orjson refuses ``NaN``, ``Infinity`` and numbers such as ``1e999`` that
    overflow a double, like any other syntax error. Those bodies are
    well-formed apart from one value, so callers answer them as invalid
    values, without repeating the number.

    Raises
    ------
    NonFiniteNumberError
    MalformedJSONError
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        token = body[exc.pos : exc.pos + 9] if exc.pos is not None else b""
        if "infinity" in exc.msg or token.lstrip(b"-+").startswith(
            (b"NaN", b"Infinity")
        ):
            raise NonFiniteNumberError("a number is not finite") from None
        raise MalformedJSONError(f"{exc.msg} at character {exc.pos}") from None
