"""Description of the served model and its weights."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServiceDep
from app.models import Model
from app.schemas import ModelInfo, WeightsInfo

router = APIRouter(tags=["model"])


def model_info(model: Model) -> ModelInfo:
    weights = model.weights
    return ModelInfo(
        name=model.name,
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


@router.get("/model", response_model=ModelInfo)
async def model(service: ServiceDep) -> ModelInfo:
    """Architecture, weights file (format, sha256) and provenance of the served model."""
    return model_info(service.models.get())
