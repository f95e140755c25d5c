"""Pydantic models of request and response bodies, for validation and OpenAPI.

A request model checks a body's envelope (which fields, their types) and
documents it; the numbers themselves are validated once, by
:class:`core.batch.Batch` (so ``x`` is ``Any`` here, documented as images).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    Strict,
    StrictBool,
    TypeAdapter,
    WithJsonSchema,
)

from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES

Probabilities = Annotated[
    list[float], Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES)
]
Flat = Annotated[
    list[Annotated[float, Field(ge=0, le=255)]],
    Field(min_length=INPUT_SIZE, max_length=INPUT_SIZE),
]
Row = Annotated[
    list[Annotated[float, Field(ge=0, le=255)]],
    Field(min_length=IMAGE_SIDE, max_length=IMAGE_SIDE),
]
Square = Annotated[list[Row], Field(min_length=IMAGE_SIDE, max_length=IMAGE_SIDE)]
Image = Flat | Square


_ONE = TypeAdapter(Image).json_schema()
_ONE_OR_MANY = TypeAdapter(
    Image | Annotated[list[Image], Field(min_length=1)]
).json_schema()
_NORMALIZE = Field(
    False,
    description="false: values are already in [0, 1]; true: raw pixels in [0, 255], "
    "divided by 255 on the server.",
)


class PredictRequest(BaseModel):
    """One image or a batch: 784 numbers, a 28x28 nested list, or a list of those."""

    model_config = ConfigDict(extra="forbid")

    x: Annotated[Any, WithJsonSchema(_ONE_OR_MANY)] = Field(
        description="One image (784 numbers or 28x28) or a non-empty list of images."
    )
    normalize: StrictBool = _NORMALIZE


class PredictSingle(BaseModel):
    label: int = Field(ge=0, le=9, description="The most probable digit.")
    probabilities: Probabilities = Field(description="Softmax output, sums to 1.")
    input: list[list[float]] | None = Field(
        None,
        description="With ?return_input=true: the 28x28 image the network saw, in [0, 1].",
    )


class PredictBatch(BaseModel):
    labels: list[Annotated[int, Field(ge=0, le=9)]]
    probabilities: list[Probabilities]
    input: list[list[list[float]]] | None = Field(
        None, description="With ?return_input=true: each 28x28 image the network saw."
    )


class PredictAnswer(RootModel[PredictSingle | PredictBatch]):
    """A single answer for a single image, a batch answer for a batch."""


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ValidationItem] | None = None
    request_id: str | None = None
    valid: list[str] | None = Field(
        None, description="Valid names, for an unknown activation."
    )


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json answer."""
    return {
        "model": Problem,
        "content": {"application/problem+json": {}},
        "description": description,
    }


class ActivationInfo(BaseModel):
    name: str
    aliases: list[str]
    formula: str
    params: dict[str, float]
    notes: str


class ActivationRequest(BaseModel):
    """Points to evaluate, plus the function's parameters (e.g. alpha, k)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"x": [-2, -1, 0, 1, 2], "alpha": 0.1}]},
    )

    # Strict: JSON numbers only (no booleans, no numeric strings), and an
    # integer too large for a float is refused rather than overflowing.
    x: list[Annotated[float, Strict()]] = Field(
        min_length=1, description="Points at which to evaluate."
    )


class ActivationValues(BaseModel):
    name: str
    params: dict[str, float]
    x: list[float]
    y: list[float]
    dy: list[float]


class WeightsInfo(BaseModel):
    file: str
    format: str
    sha256: str
    size: int
    source: str = Field(
        description="'project' for the shipped weights, 'book' for the "
        "book's file, else 'custom'."
    )


class ModelSummary(BaseModel):
    name: str
    versions: list[str] = Field(description="Served versions, oldest first.")
    default: bool = Field(description="Answers requests that name no model.")
    ready: bool
    description: str | None
    hidden_activation: str = Field(description="sigmoid, relu or tanh.")
    test_accuracy: float | None = Field(
        None, description="Measured MNIST test accuracy of the newest version."
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    description: str | None = None
    layers: list[int]
    activations: list[str]
    parameters: int
    dtype: str
    weights: WeightsInfo
    provenance: dict[str, Any] | None = Field(
        None,
        description="Training metadata shipped next to the weights, when it matches them.",
    )
    test_accuracy: float | None = Field(
        None, description="Measured MNIST test accuracy, when known."
    )


class Health(BaseModel):
    status: str


class ExplainRequest(PredictRequest):
    """One image, as for /predict: 784 numbers or 28x28."""

    x: Annotated[Any, WithJsonSchema(_ONE)] = Field(
        description="One image (784 numbers or 28x28)."
    )


class ExplainResponse(BaseModel):
    """One image, looked at inside: every layer's output and a saliency map."""

    label: int = Field(ge=0, le=9, description="The most probable digit.")
    target: int = Field(
        ge=0, le=9, description="The class whose probability `saliency` differentiates."
    )
    probabilities: Probabilities = Field(description="Softmax output, sums to 1.")
    logits: Annotated[
        list[float], Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES)
    ] = Field(description="The last layer's output before softmax.")
    hidden: list[list[float]] = Field(
        description="Each hidden layer's sigmoid activations, first to last "
        "(50 and 100 values for the book's network)."
    )
    saliency: list[list[float]] = Field(
        description="28x28: d probabilities[target] / d input pixel, by backprop. "
        "Positive where more ink would raise the probability."
    )
    input: list[list[float]] = Field(
        description="The 28x28 image the network saw, in [0, 1]."
    )
