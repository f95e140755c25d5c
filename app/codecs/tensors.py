"""Open Inference Protocol tensors, whatever carries them (REST JSON, REST
binary, gRPC): the rules of the one input and of the outputs, once.

Input ``input``, ``[n, 784]`` (or the same 784 values per row as ``[n, 28, 28]``,
``[n, 1, 28, 28]`` or ``[n, 28, 28, 1]``): ``FP32`` pixels in [0, 1], or
``UINT8`` pixels 0-255. Outputs ``probabilities`` (FP32 ``[n, 10]``) and
``label`` (INT64 ``[n]``); the classification extension turns
``probabilities`` into the top-k ``"score:index:label"`` strings (BYTES).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.errors import clip
from app.exceptions import InvalidRequestError
from app.inference import Prediction
from core.batch import Batch, Scale
from core.errors import BatchTooLargeError
from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES

INPUT_NAME = "input"
INPUT_DATATYPES = {"FP32": Scale.UNIT, "UINT8": Scale.UINT8}
ITEMSIZE = {"FP32": 4, "UINT8": 1}
# One image per row, flat or as an image (channels first or last): the same
# 784 values in the same order, so clients built for image models fit too.
IMAGE_DIMS = {
    (INPUT_SIZE,),
    (IMAGE_SIDE, IMAGE_SIDE),
    (1, IMAGE_SIDE, IMAGE_SIDE),
    (IMAGE_SIDE, IMAGE_SIDE, 1),
}
OUTPUT_DATATYPES = {"probabilities": "FP32", "label": "INT64"}
OUTPUT_SHAPES = {"probabilities": [-1, NUM_CLASSES], "label": [-1]}


@dataclass(frozen=True, slots=True)
class Tensor:
    """The input tensor as sent: its values as numbers or as raw bytes."""

    name: str
    datatype: str
    shape: Sequence[int]
    values: object = None  # nested lists of numbers
    raw: bytes | None = None  # little-endian bytes


@dataclass(frozen=True, slots=True)
class Output:
    """One output asked for: its name, whether it goes as binary (REST), and
    the classification extension's top-k (0: the tensor itself)."""

    name: str
    binary: bool = False
    top: int = 0


def check_header(tensor: Tensor, max_rows: int) -> int:
    """Check the tensor's name, datatype and shape; the number of images.

    Raises
    ------
    InvalidRequestError
        Another name, datatype or shape.
    BatchTooLargeError
        More than ``max_rows`` images.
    """
    if tensor.name != INPUT_NAME:
        raise InvalidRequestError(
            f"unknown input {clip(tensor.name)!r}; the model's input is {INPUT_NAME!r}"
        )
    if tensor.datatype not in INPUT_DATATYPES:
        raise InvalidRequestError(
            f"input datatype {clip(tensor.datatype)!r} is not supported; use FP32 "
            "(pixels in [0, 1]) or UINT8 (pixels 0-255)"
        )
    shape = list(tensor.shape)
    if len(shape) < 2 or tuple(shape[1:]) not in IMAGE_DIMS or shape[0] < 1:
        raise InvalidRequestError(
            f"input shape must be [n, {INPUT_SIZE}] (or [n, 28, 28], [n, 1, 28, 28], "
            f"[n, 28, 28, 1]) with n >= 1, got {shape[:8]}"
        )
    if shape[0] > max_rows:
        raise BatchTooLargeError(
            f"batch of {shape[0]} images is over the limit of {max_rows}"
        )
    return int(shape[0])


def to_batch(tensor: Tensor, max_rows: int) -> Batch:
    """The network's batch from the input tensor, by the same rules as /predict.

    Raises
    ------
    InvalidRequestError
        A wrong header, no values, or raw bytes of the wrong size.
    InputError, BatchTooLargeError
        From :class:`Batch`: the values themselves.
    """
    rows = check_header(tensor, max_rows)
    scale = INPUT_DATATYPES[tensor.datatype]
    if tensor.raw is not None:
        expected = rows * INPUT_SIZE * ITEMSIZE[tensor.datatype]
        if len(tensor.raw) != expected:
            raise InvalidRequestError(
                f"the input's raw contents are {len(tensor.raw)} bytes; shape "
                f"[{rows}, {INPUT_SIZE}] of {tensor.datatype} needs {expected}"
            )
        if tensor.datatype == "UINT8":
            return Batch.from_bytes(tensor.raw, max_rows=max_rows, name=INPUT_NAME)
        values = np.frombuffer(tensor.raw, dtype="<f4").reshape(rows, INPUT_SIZE)
        return Batch.from_numbers(
            values, scale=scale, max_rows=max_rows, rows=rows, name=INPUT_NAME
        )
    if tensor.values is None:
        raise InvalidRequestError("the input has no values: send data or raw contents")
    return Batch.from_numbers(
        tensor.values, scale=scale, max_rows=max_rows, rows=rows, name=INPUT_NAME
    )


def select_outputs(
    requested: Iterable[tuple[str, int | None, bool | None]] | None,
    default_binary: bool = False,
) -> list[Output]:
    """The outputs of the answer: every one when none is asked for.

    ``requested`` holds (name, classification top-k or None, binary or None).

    Raises
    ------
    InvalidRequestError
        An unknown or repeated output, or a classification the model cannot do.
    """
    if requested is None:
        return [Output(name, default_binary) for name in OUTPUT_DATATYPES]
    selected: list[Output] = []
    for name, top, binary in requested:
        if name not in OUTPUT_DATATYPES:
            raise InvalidRequestError(
                f"unknown output {clip(name)!r}; outputs: {', '.join(OUTPUT_DATATYPES)}"
            )
        if any(name == seen.name for seen in selected):
            raise InvalidRequestError(f"output {name!r} is requested twice")
        if top and (name != "probabilities" or not 1 <= top <= NUM_CLASSES):
            raise InvalidRequestError(
                f"classification applies to probabilities, with 1 to {NUM_CLASSES} "
                "classes"
            )
        selected.append(
            Output(name, default_binary if binary is None else binary, top or 0)
        )
    if not selected:
        raise InvalidRequestError("outputs must name at least one output")
    return selected


def results(
    prediction: Prediction, outputs: Sequence[Output]
) -> list[tuple[Output, str, NDArray[Any]]]:
    """Each output asked for, with its datatype and values."""
    arrays: dict[str, NDArray[Any]] = {
        "probabilities": prediction.probabilities,
        "label": prediction.labels,
    }
    out = []
    for output in outputs:
        datatype, array = OUTPUT_DATATYPES[output.name], arrays[output.name]
        if output.top:
            datatype, array = "BYTES", _classes(array, output.top)
        out.append((output, datatype, array))
    return out


def _classes(probabilities: NDArray[np.float32], top: int) -> NDArray[Any]:
    """The ``top`` classes of each row as ``"score:index:label"``, most
    probable first (the label of a class is its digit)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    rows = [
        [f"{row[i]:f}:{i}:{i}" for i in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]
    return np.array(rows, dtype=object)


def raw_bytes(datatype: str, array: NDArray[Any]) -> bytes:
    """An output's values as the protocol's little-endian bytes."""
    if datatype == "BYTES":
        # Each element: a 4-byte little-endian length, then its bytes.
        out = bytearray()
        for item in array.ravel():
            data = str(item).encode()
            out += len(data).to_bytes(4, "little") + data
        return bytes(out)
    return array.astype("<f4" if datatype == "FP32" else "<i8").tobytes()
