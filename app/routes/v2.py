"""Open Inference Protocol (KServe V2 / Triton) REST endpoints, next to our own API.

Each served model answers under ``/v2/models/{name}`` (and
``/v2/models/{name}/versions/{version}``): input ``input`` of shape
``[-1, 784]`` (FP32 pixels in [0, 1], or UINT8 pixels 0-255), outputs
``probabilities`` (FP32 ``[-1, 10]``) and ``label`` (INT64 ``[-1]``). Tensors
travel as JSON ``data`` or with the binary tensor data extension
(:mod:`app.codecs.v2`). The numbers are those ``/predict`` gives for the same
pixels, bit for bit: both go through the same codecs' :class:`core.batch.Batch`
and the same inference path.

Errors under ``/v2`` are V2 bodies ``{"error": "..."}`` with the service's usual
status codes; the error edge (:mod:`app.errors`) picks that format for every
path under ``/v2``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import protocol
from app.codecs import v2 as codec
from app.codecs.tensors import INPUT_NAME
from app.deps import ServiceDep
from app.models import Model
from app.responses import ORJSONResponse
from core.network import INPUT_SIZE

router = APIRouter(prefix="/v2", tags=["v2"])

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {**_ERROR, "description": text}
    for status, text in (
        (400, "Malformed request: not JSON, binary sizes that do not add up."),
        (404, "Unknown model or version."),
        (413, "Batch or body over a limit."),
        (415, "A Content-Type other than JSON or octet-stream, or a compressed body."),
        (
            422,
            "Wrong tensor name, datatype or shape; non-finite or out-of-range values.",
        ),
        (503, "The model is not loaded yet."),
    )
}


def _ready(ready: bool, body: dict[str, Any]) -> ORJSONResponse:
    # The protocol: 200 means true, a 4xx means false.
    return ORJSONResponse(body, status_code=200 if ready else 400)


def _versions(service: ServiceDep, model: Model) -> list[int]:
    return list(service.models.serving.get(model.name, {}))


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server metadata: name, version and protocol extensions."""
    return protocol.server_metadata(request.app.version)


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """200 {"live": true} while the process serves requests."""
    return {"live": True}


@router.get(
    "/health/ready", responses={400: {"description": "Not ready: {'ready': false}"}}
)
async def server_ready(service: ServiceDep) -> ORJSONResponse:
    """200 {"ready": true} once the model is loaded, else 400 {"ready": false}."""
    return _ready(service.models.ready, {"ready": service.models.ready})


@router.get("/models/stats")
async def all_stats(service: ServiceDep) -> dict[str, Any]:
    """Statistics of every served model and version (Triton's extension)."""
    return protocol.model_statistics(service.models, service.models)


@router.get("/models/{model_name}/config", responses=_ERRORS)
async def model_config(model_name: str, service: ServiceDep) -> dict[str, Any]:
    """Triton's model configuration: tensors, dims without the batch, max batch."""
    return protocol.model_config(
        service.models.get(model_name), service.limits.max_rows
    )


@router.get(
    "/models/{model_name}/versions/{model_version}/config", include_in_schema=False
)
async def model_version_config(
    model_name: str, model_version: str, service: ServiceDep
) -> dict[str, Any]:
    model = service.models.get(model_name, model_version)
    return protocol.model_config(model, service.limits.max_rows)


@router.get("/models/{model_name}/stats", responses=_ERRORS)
async def model_stats(model_name: str, service: ServiceDep) -> dict[str, Any]:
    """Statistics of every served version of a model: counts and times."""
    model = service.models.get(model_name)
    versions = service.models.serving[model.name].values()
    return protocol.model_statistics(service.models, versions)


@router.get(
    "/models/{model_name}/versions/{model_version}/stats", include_in_schema=False
)
async def model_version_stats(
    model_name: str, model_version: str, service: ServiceDep
) -> dict[str, Any]:
    return protocol.model_statistics(
        service.models, [service.models.get(model_name, model_version)]
    )


@router.get("/models/{model_name}", responses=_ERRORS)
async def model_metadata(model_name: str, service: ServiceDep) -> dict[str, Any]:
    """Model metadata: versions, input and output tensors (UINT8 input too)."""
    model = service.models.get(model_name)
    return protocol.model_metadata(model, _versions(service, model))


@router.get(
    "/models/{model_name}/versions/{model_version}",
    include_in_schema=False,
)
async def model_version_metadata(
    model_name: str, model_version: str, service: ServiceDep
) -> dict[str, Any]:
    model = service.models.get(model_name, model_version)
    return protocol.model_metadata(model, [model.version])


@router.get("/models/{model_name}/ready", responses=_ERRORS)
async def model_ready(model_name: str, service: ServiceDep) -> ORJSONResponse:
    """200 {"name", "ready": true} once the model is loaded, else 400."""
    if not service.models.ready:
        return _ready(False, {"name": model_name, "ready": False})
    model = service.models.get(model_name)
    return _ready(True, {"name": model.name, "ready": True})


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    include_in_schema=False,
)
async def model_version_ready(
    model_name: str, model_version: str, service: ServiceDep
) -> ORJSONResponse:
    if not service.models.ready:
        return _ready(False, {"name": model_name, "ready": False})
    model = service.models.get(model_name, model_version)
    return _ready(True, {"name": model.name, "ready": True})


_INFER_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "examples": {
                    "json": {
                        "summary": "one image as JSON data (FP32 in [0, 1])",
                        "value": {
                            "inputs": [
                                {
                                    "name": INPUT_NAME,
                                    "shape": [1, INPUT_SIZE],
                                    "datatype": "FP32",
                                    "data": [0.0] * INPUT_SIZE,
                                }
                            ]
                        },
                    }
                },
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "binary tensor data extension: a JSON header of "
                    "Inference-Header-Content-Length bytes, then the raw tensors",
                }
            },
        },
    }
}


async def _infer(
    request: Request, service: ServiceDep, name: str, version: str | None
) -> Response:
    # Content-Encoding is refused by the guard, for every route alike.
    service.models.get(name, version)  # 404 before reading a body for nobody
    decoded = await codec.read(request, service.limits.max_rows)
    prediction = await service.inference.predict(decoded.batch, name, version)
    body, media_type, headers = codec.encode(decoded, prediction)
    return Response(body, media_type=media_type, headers=headers or None)


@router.post("/models/{model_name}/infer", openapi_extra=_INFER_DOC, responses=_ERRORS)
async def infer(model_name: str, request: Request, service: ServiceDep) -> Response:
    """Inference: JSON tensors or the binary tensor data extension."""
    return await _infer(request, service, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer", include_in_schema=False
)
async def infer_version(
    model_name: str, model_version: str, request: Request, service: ServiceDep
) -> Response:
    return await _infer(request, service, model_name, model_version)
