"""The chapter's activation functions (and a few later ones), with derivatives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request

from app import admission, codecs
from app.codecs import jsonbody
from app.deps import ServiceDep
from app.exceptions import InvalidRequestError
from app.responses import ORJSONResponse
from app.schemas import ActivationInfo, ActivationRequest, ActivationValues, problem_doc
from core import catalogue
from core.errors import InputError, LimitExceededError

router = APIRouter(prefix="/activations", tags=["activations"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_doc("A POST body that is not JSON."),
    404: problem_doc("Unknown name; `valid` lists the names."),
    413: problem_doc("More points than the limit."),
    415: problem_doc("A POST body that is not application/json (UTF-8)."),
    422: problem_doc("Non-finite x, bad parameters, or no points."),
}
_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ActivationRequest.model_json_schema(),
            }
        },
    }
}
_RESERVED = {"x", "start", "stop", "num"}

NamePath = Annotated[
    str,
    Path(
        description="An activation name or alias, e.g. sigmoid, relu, swish.",
        examples=["sigmoid"],
    ),
]


@router.get("", response_model=list[ActivationInfo])
async def list_activations() -> list[ActivationInfo]:
    """Every activation function: name, aliases, formula, parameters and notes."""
    return [
        ActivationInfo(
            name=a.name,
            aliases=list(a.aliases),
            formula=a.formula,
            params=dict(a.params),
            notes=a.notes,
        )
        for a in catalogue.ACTIVATIONS.values()
    ]


def _evaluate(name: str, x: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    activation, used, xs, y, dy = catalogue.evaluate(name, x, params)
    return {"name": activation.name, "params": used, "x": xs, "y": y, "dy": dy}


async def _answer(
    request: Request, name: str, x: Any, params: Mapping[str, Any], limit: int
) -> ORJSONResponse:
    size = len(x) if isinstance(x, list) else int(np.size(x))
    if size > limit:
        raise LimitExceededError(f"{size} points is over the limit of {limit}")
    await admission.charge(
        request.scope,
        size * admission.ACTIVATION_BYTES_PER_POINT,
        "evaluating the points",
    )
    # 100,000 points are tens of milliseconds of NumPy: in a thread.
    return ORJSONResponse(await codecs.run_sized(size * 8, _evaluate, name, x, params))


def _float_param(key: str, raw: str) -> float:
    # A query string's value is text: reading it as a number is this route's
    # decoding; whether the number is acceptable is core's to say.
    try:
        return float(raw)
    except ValueError:
        raise InvalidRequestError(
            f"parameter {key} must be a number, got a non-number",
            errors=[{"loc": ["query", key[:64]], "msg": "must be a number"}],
        ) from None


@router.get(
    "/{name}",
    response_model=ActivationValues,
    response_class=ORJSONResponse,
    responses=_ERRORS,
)
async def activation_values(
    request: Request,
    service: ServiceDep,
    name: NamePath,
    x: Annotated[
        list[float] | None, Query(description="Points, repeated: ?x=-1&x=0&x=1.")
    ] = None,
    start: Annotated[float | None, Query(description="First point of a grid.")] = None,
    stop: Annotated[
        float | None, Query(description="Last point of a grid (inclusive).")
    ] = None,
    num: Annotated[
        int, Query(ge=1, description="Points in the grid (like numpy.linspace).")
    ] = 101,
    alpha: Annotated[float | None, Query(description="leaky_relu, prelu, elu.")] = None,
    k: Annotated[int | None, Query(description="maxout: group size.")] = None,
) -> ORJSONResponse:
    """y and dy/dx at points given as ?x=... or as a grid ?start=&stop=&num=."""
    catalogue.get(name)  # 404 for an unknown name before anything else
    limit = service.settings.max_activation_points
    params: dict[str, float] = {}
    for key, raw in request.query_params.multi_items():
        if key not in _RESERVED:
            params[key] = _float_param(key, raw)
    if x is not None:
        if start is not None or stop is not None:
            raise InputError("give either x or start/stop/num, not both")
        return await _answer(request, name, x, params, limit)
    if start is None or stop is None:
        raise InputError(
            "give points as ?x=-1&x=0&x=1 or a grid as ?start=-5&stop=5&num=101"
        )
    if num > limit:
        raise LimitExceededError(f"num={num} is over the limit of {limit} points")
    if not (np.isfinite(start) and np.isfinite(stop)):
        raise InputError("start and stop must be finite")
    return await _answer(request, name, np.linspace(start, stop, num), params, limit)


@router.post(
    "/{name}",
    response_model=ActivationValues,
    response_class=ORJSONResponse,
    responses=_ERRORS,
    openapi_extra=_POST_BODY,
)
async def activation_values_post(
    request: Request, service: ServiceDep, name: NamePath
) -> ORJSONResponse:
    """y and dy/dx at many points: {"x": [...], <params>} in a JSON body."""
    catalogue.get(name)
    limit = service.settings.max_activation_points
    # The body goes through the codecs like /predict's: the same media type
    # rule, orjson (no BOM, no UTF-16, no NaN), strict number types.
    body = await codecs.read_json(request, "parsing the points")
    x, params = await codecs.run_sized(
        len(body), jsonbody.decode_activation, body, limit
    )
    return await _answer(request, name, x, params, limit)
