"""Description of the served model and its weights."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import StateDep
from app.schemas import ModelInfo, WeightsInfo

router = APIRouter(tags=["model"])

BOOK_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"
BOOK_TEST_ACCURACY = 0.9352


@router.get("/model", response_model=ModelInfo)
async def model(state: StateDep) -> ModelInfo:
    """Architecture, weights file (format, sha256) and provenance of the served model."""
    loaded = state.weights
    network = state.network
    assert loaded is not None  # state.network raised otherwise
    provenance = loaded.provenance
    accuracy: Any
    if loaded.sha256 == BOOK_SHA256:
        source, accuracy = "book", BOOK_TEST_ACCURACY
    elif provenance is not None:
        source, accuracy = "project", provenance.get("test_accuracy")
    else:
        source, accuracy = "custom", None
    hidden = [network.hidden_activation] * (len(network.weights) - 1)
    return ModelInfo(
        name="mnist",
        layers=list(network.layer_sizes),
        activations=[*hidden, network.output],
        parameters=network.parameter_count,
        dtype="float32",
        weights=WeightsInfo(
            file=loaded.path.name,
            format=loaded.format,
            sha256=loaded.sha256,
            size=loaded.size,
            source=source,
        ),
        provenance=provenance,
        test_accuracy=accuracy if isinstance(accuracy, float) else None,
    )
