"""The served models: GET /models, GET /models/{name}, and GET /model (the default)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.deps import ServiceDep
from app.models import Model
from app.schemas import ModelInfo, ModelSummary, WeightsInfo, problem_doc

router = APIRouter(tags=["models"])

Version = Annotated[
    str | None,
    Query(description="A version of the model (default: its newest ready one)."),
]


def model_info(model: Model) -> ModelInfo:
    weights = model.weights
    return ModelInfo(
        name=model.name,
        version=str(model.version),
        description=model.description,
        layers=list(model.network.layer_sizes),
        activations=model.activations,
        parameters=model.network.parameter_count,
        dtype="float32",
        weights=WeightsInfo(
            file=weights.path.name,
            format=weights.format,
            sha256=weights.sha256,
            size=weights.size,
            source=model.source,
        ),
        provenance=weights.provenance,
        test_accuracy=model.test_accuracy,
    )


@router.get("/models", response_model=list[ModelSummary])
async def list_models(service: ServiceDep) -> list[ModelSummary]:
    """Every served model: its versions, whether it is the default, its description."""
    out = []
    for name, versions in service.models.serving.items():
        newest = versions[max(versions)]
        out.append(
            ModelSummary(
                name=name,
                versions=[str(v) for v in versions],
                default=name == service.models.default,
                ready=True,
                description=newest.description,
                hidden_activation=newest.network.hidden_activation,
                test_accuracy=newest.test_accuracy,
            )
        )
    return out


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    responses={404: problem_doc("No such model or version.")},
)
async def get_model(
    service: ServiceDep,
    name: Annotated[str, Path(description="A model name, as GET /models lists.")],
    version: Version = None,
) -> ModelInfo:
    """Architecture, weights file (format, sha256), provenance and accuracy of a model."""
    return model_info(service.models.get(name, version))


@router.get("/model", response_model=ModelInfo)
async def default_model(service: ServiceDep) -> ModelInfo:
    """What GET /models/{name} says of the default model."""
    return model_info(service.models.get())
