"""Fast JSON responses: orjson serialises NumPy arrays directly."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class ORJSONResponse(JSONResponse):
    """A JSONResponse (so FastAPI documents the route's response model) rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)
