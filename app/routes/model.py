"""Description of the served model and its weights."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import StateDep
from app.schemas import ModelInfo, WeightsInfo
from core.weights import LoadedWeights

router = APIRouter(tags=["model"])

BOOK_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"
BOOK_TEST_ACCURACY = 0.9352


def weights_source(loaded: LoadedWeights) -> tuple[str, float | None]:
    """Where the weights come from ("book", "project" or "custom") and their
    measured test accuracy, when known. Shared by /model, /v2 and /metrics."""
    if loaded.sha256 == BOOK_SHA256:
        return "book", BOOK_TEST_ACCURACY
    if loaded.provenance is not None:
        accuracy: Any = loaded.provenance.get("test_accuracy")
        return "project", accuracy if isinstance(accuracy, float) else None
    return "custom", None


@router.get("/model", response_model=ModelInfo)
async def model(state: StateDep) -> ModelInfo:
    """Architecture, weights file (format, sha256) and provenance of the served model."""
    loaded = state.weights
    network = state.network
    assert loaded is not None  # state.network raised otherwise
    provenance = loaded.provenance
    source, accuracy = weights_source(loaded)
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
        test_accuracy=accuracy,
    )
