"""Parameters and OpenAPI fragments shared by the routes that read images like /predict."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import Query
from pydantic import BaseModel

from app.codecs import IMAGE_TYPES
from app.models import Model
from core.network import IMAGE_SHAPE

ModelQuery = Annotated[
    str | None,
    Query(description="The model to ask (GET /models); default: the default model."),
]
VersionQuery = Annotated[
    str | None,
    Query(description="A version of the model; default: its newest ready version."),
]


def answered_by(model: Model) -> dict[str, str]:
    """Headers that say which model and version answered."""
    return {"X-Model": model.name, "X-Model-Version": str(model.version)}


def example_stroke() -> list[list[float]]:
    """A vertical stroke as 28x28 values in [0, 1]: every weights file here reads a 1."""
    image = np.zeros(IMAGE_SHAPE, dtype=np.float32)
    image[4:24, 13:15] = 1.0
    return [[float(v) for v in row] for row in image]


def image_request_body(
    model: type[BaseModel], examples: dict[str, Any], *, many: bool
) -> dict[str, Any]:
    """The request body of a route that reads images like /predict.

    JSON described by ``model``, multipart parts named ``file`` (several when
    ``many``), raw image bodies and octet-stream pixels.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    binary = {"type": "string", "format": "binary"}
    files = (
        {"type": "array", "items": binary, "description": "one or more image files"}
        if many
        else {**binary, "description": "one image file"}
    )
    pixels = "n * 784" if many else "784"
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema, "examples": examples},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": files},
                    }
                },
                **{t: {"schema": binary} for t in IMAGE_TYPES},
                "application/octet-stream": {
                    "schema": {
                        **binary,
                        "description": f"{pixels} uint8 pixels, row-major",
                    }
                },
            },
        }
    }
