"""Triton's model repository extension: the index, load and unload.

Every route here needs ``Authorization: Bearer <MNIST_SERVE_ADMIN_TOKEN>``: 401
without it, 403 with a wrong one (compared in constant time) and 403 when no
token is configured. Load and unload work in ``explicit`` model control only;
in ``none`` and ``poll`` modes the files decide, and they answer 403 saying so.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app import protocol
from app.auth import check_admin
from app.codecs import charge_json, negotiate, run_sized
from app.codecs.v2 import MEDIA_TYPES as V2_MEDIA_TYPES
from app.deps import ServiceDep
from app.exceptions import InvalidRequestError
from app.responses import ORJSONResponse
from app.service import Service

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text}
    for status, text in (
        (401, "No bearer token."),
        (403, "Wrong token, no token configured, or not explicit model control."),
        (404, "No such model in the repository."),
        (409, "The model's files cannot be loaded (the index says why)."),
    )
}


async def require_admin(request: Request, service: ServiceDep) -> None:
    """Let the request through only with the admin bearer token."""
    check_admin(service.settings.admin_token, request.headers.get("authorization"))


router = APIRouter(
    prefix="/v2/repository",
    tags=["repository"],
    dependencies=[Depends(require_admin)],
    responses=_ERRORS,
)


def _explicit(service: Service, action: str) -> None:
    service.repository.require_explicit(action)


async def _options(request: Request) -> dict[str, Any]:
    # The V2 rule of every body route: JSON, octet-stream or no Content-Type.
    negotiate(request, V2_MEDIA_TYPES)
    body = await request.body()
    if not body.strip():
        return {}
    # Charged and parsed like any JSON body (an 8 MiB one blocks no one); an
    # empty one is not charged, so it takes no work slot.
    await charge_json(request, body, "reading the options")
    try:
        data = await run_sized(len(body), orjson.loads, body)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("the request body must be JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return data


@router.post("/index")
async def index(request: Request, service: ServiceDep) -> ORJSONResponse:
    """Every model and version in the repository, with its state and the reason."""
    options = await _options(request)
    ready_only = options.get("ready") is True
    return ORJSONResponse(
        protocol.repository_index(service.repository.index(), ready_only)
    )


@router.post("/models/{model_name}/load")
async def load(model_name: str, request: Request, service: ServiceDep) -> Response:
    """Load (or reload) every version of a model from the repository (explicit mode)."""
    _explicit(service, "load")
    protocol.check_load_parameters((await _options(request)).get("parameters") or {})
    await service.repository.load(model_name)
    return Response(status_code=200)


@router.post("/models/{model_name}/unload")
async def unload(model_name: str, request: Request, service: ServiceDep) -> Response:
    """Stop serving every version of a model (explicit mode)."""
    _explicit(service, "unload")
    await _options(request)
    await service.repository.unload(model_name)
    return Response(status_code=200)
