"""POST /predict: one endpoint, dispatched on Content-Type (see API.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app import codecs
from app.deps import ServiceDep
from app.inference import Prediction
from app.openapi import (
    ModelQuery,
    VersionQuery,
    answered_by,
    example_stroke,
    image_request_body,
)
from app.responses import ORJSONResponse
from app.schemas import PredictAnswer, PredictRequest, problem_doc
from core.batch import Batch
from core.images import Preprocess
from core.network import IMAGE_SHAPE

router = APIRouter(tags=["predict"])

PREPROCESS_DOC = (
    "Image uploads: auto (default) leaves an MNIST-like 28x28 as it is and "
    "normalises anything else like MNIST; mnist always normalises; raw needs 28x28."
)


def _examples() -> dict[str, Any]:
    one = [v for row in example_stroke() for v in row]
    return {
        "single": {"summary": "one image, 784 numbers in [0, 1]", "value": {"x": one}},
        "batch": {"summary": "a batch of two", "value": {"x": [one, one]}},
        "pixels": {
            "summary": "raw 0-255 pixels with normalize",
            "value": {"x": [v * 255 for v in one], "normalize": True},
        },
    }


def _answer(batch: Batch, prediction: Prediction, return_input: bool) -> dict[str, Any]:
    if batch.single:
        out: dict[str, Any] = {
            "label": int(prediction.labels[0]),
            "probabilities": prediction.probabilities[0],
        }
        if return_input:
            out["input"] = batch.x[0].reshape(IMAGE_SHAPE)
    else:
        out = {"labels": prediction.labels, "probabilities": prediction.probabilities}
        if return_input:
            out["input"] = batch.x.reshape(-1, *IMAGE_SHAPE)
    return out


@router.post(
    "/predict",
    response_model=PredictAnswer,
    response_class=ORJSONResponse,
    openapi_extra=image_request_body(PredictRequest, _examples(), many=True),
    responses={
        400: problem_doc(
            "Malformed body: not JSON, broken multipart, undecodable image."
        ),
        413: problem_doc("Body, batch, parts or image pixels over a limit."),
        404: problem_doc("No such model or version (GET /models lists them)."),
        415: problem_doc("Unsupported Content-Type or image format."),
        422: problem_doc("Wrong shape, out of range, non-finite, no ink."),
    },
)
async def predict(
    request: Request,
    service: ServiceDep,
    preprocess: Annotated[Preprocess, Query(description=PREPROCESS_DOC)] = (
        Preprocess.AUTO
    ),
    return_input: Annotated[
        bool,
        Query(
            description="Add `input`: the 28x28 image(s) the network saw, in [0, 1]."
        ),
    ] = False,
    model: ModelQuery = None,
    version: VersionQuery = None,
) -> ORJSONResponse:
    """Classify one image or a batch; the Content-Type says what the body holds.

    `model` and `version` pick the model (GET /models lists them); the
    `X-Model` and `X-Model-Version` headers of the answer say which answered.
    """
    service.models.get(model, version)  # 404 before reading a body for nobody
    batch = await codecs.read_batch(request, service.limits, preprocess)
    prediction = await service.inference.predict(batch, model, version)
    return ORJSONResponse(
        _answer(batch, prediction, return_input),
        headers=answered_by(prediction.model),
    )
