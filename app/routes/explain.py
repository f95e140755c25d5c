"""POST /explain: one image, looked at inside (the web page draws from it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app import codecs
from app.deps import ServiceDep
from app.exceptions import InvalidRequestError
from app.openapi import (
    ModelQuery,
    VersionQuery,
    answered_by,
    example_stroke,
    image_request_body,
)
from app.responses import ORJSONResponse
from app.schemas import ExplainRequest, ExplainResponse, problem_doc
from core.images import Preprocess
from core.network import IMAGE_SHAPE

router = APIRouter(tags=["ui"])


@router.post(
    "/explain",
    response_model=ExplainResponse,
    response_class=ORJSONResponse,
    openapi_extra=image_request_body(
        ExplainRequest,
        {
            "stroke": {
                "summary": "a vertical stroke, 28x28 in [0, 1]",
                "value": {"x": example_stroke()},
            }
        },
        many=False,
    ),
    responses={
        400: problem_doc("Malformed body or undecodable image."),
        413: problem_doc("Body or image pixels over a limit."),
        404: problem_doc("No such model or version (GET /models lists them)."),
        415: problem_doc("Unsupported Content-Type or image format."),
        422: problem_doc(
            "More than one image, wrong shape, out of range, no ink, "
            "or a target outside 0..9."
        ),
    },
)
async def explain(
    request: Request,
    service: ServiceDep,
    preprocess: Annotated[
        Preprocess,
        Query(description="Image uploads: as for /predict (auto, mnist or raw)."),
    ] = Preprocess.AUTO,
    target: Annotated[
        int | None,
        Query(
            ge=0,
            le=9,
            description="The class whose probability to differentiate; "
            "default: the predicted one.",
        ),
    ] = None,
    model: ModelQuery = None,
    version: VersionQuery = None,
) -> ORJSONResponse:
    """Hidden activations, logits, probabilities and a saliency map for one image.

    Takes the single-image bodies of /predict (JSON, one image file, one
    multipart part, or 784 octet-stream bytes). `saliency` is the gradient of
    the target class's probability with respect to each of the 784 input
    pixels, computed by backpropagation in float64.
    """
    service.models.get(model, version)  # 404 before reading a body for nobody
    batch = await codecs.read_batch(request, service.limits, preprocess)
    if batch.rows != 1:
        raise InvalidRequestError(
            f"/explain takes one image, got {batch.rows}; use /predict for a batch",
            errors=[{"loc": ["body"], "msg": "exactly one image"}],
        )
    found, result = await service.inference.explain(batch, target, model, version)
    return ORJSONResponse(
        {
            "label": int(result.labels[0]),
            "target": int(result.targets[0]),
            "probabilities": result.probabilities[0],
            "logits": result.logits[0],
            "hidden": [h[0] for h in result.hidden],
            "saliency": result.saliency[0].reshape(IMAGE_SHAPE),
            "input": batch.x[0].reshape(IMAGE_SHAPE),
        },
        headers=answered_by(found),
    )
