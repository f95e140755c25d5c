"""Open Inference Protocol (KServe V2) tensors: inference requests in, answers out.

A request is a JSON header, optionally followed by raw tensor bytes (the binary
tensor data extension: ``Inference-Header-Content-Length`` gives the header's
size, and the input declares ``parameters.binary_data_size``). The header's
shape is checked by Pydantic models, so a list where a string belongs is a
clear 422 like any other; the tensor's values go to :class:`core.batch.Batch`
exactly as ``/predict``'s do.

Input ``input`` ``[n, 784]``: ``FP32`` pixels in [0, 1], or ``UINT8`` pixels
0-255. Outputs ``probabilities`` (FP32 ``[n, 10]``) and ``label`` (INT64
``[n]``), as JSON ``data`` or, on request, binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.codecs.jsonbody import parse
from app.errors import InvalidRequestError, MalformedBodyError, clip
from app.inference import Prediction
from core.batch import Batch, Scale
from core.errors import BatchTooLargeError
from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES

INPUT_NAME = "input"
HEADER_LENGTH = "Inference-Header-Content-Length"
OUTPUT_DATATYPES = {"probabilities": "FP32", "label": "INT64"}
INPUT_DATATYPES = {"FP32": Scale.UNIT, "UINT8": Scale.UINT8}
# One image per row, flat or as an image (channels first or last): the same
# 784 values in the same order, so clients built for image models fit too.
IMAGE_DIMS = {
    (INPUT_SIZE,),
    (IMAGE_SIDE, IMAGE_SIDE),
    (1, IMAGE_SIDE, IMAGE_SIDE),
    (IMAGE_SIDE, IMAGE_SIDE, 1),
}
_ITEMSIZE = {"FP32": 4, "UINT8": 1}


class _Open(BaseModel):
    # The protocol lets clients send more than we read; unknown keys are kept
    # out of the way rather than refused.
    model_config = ConfigDict(extra="allow")


class TensorParameters(_Open):
    binary_data_size: StrictInt | None = None


class RequestInput(_Open):
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: TensorParameters = TensorParameters()
    data: Any = None


class OutputParameters(_Open):
    binary_data: StrictBool | None = None
    classification: StrictInt | None = None


class RequestOutput(_Open):
    name: StrictStr
    parameters: OutputParameters = OutputParameters()


class RequestParameters(_Open):
    binary_data_output: StrictBool = False


class InferenceRequest(_Open):
    """The JSON header of ``POST /v2/models/{name}/infer``."""

    id: StrictStr | None = None
    parameters: RequestParameters = RequestParameters()
    inputs: Annotated[list[RequestInput], Field(min_length=1, max_length=1)]
    outputs: Annotated[list[RequestOutput], Field(min_length=1)] | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """One output asked for: its name, binary or JSON, and the classification
    extension's top-k (0: the tensor itself)."""

    name: str
    binary: bool
    top: int = 0


@dataclass(frozen=True, slots=True)
class Decoded:
    """An inference request, decoded: its id, the batch, the outputs asked for."""

    id: str | None
    batch: Batch
    outputs: list[Output]


def decode(body: bytes, header_length: str | None, max_rows: int) -> Decoded:
    """Decode an inference request (JSON, or JSON header + binary tensors).

    Raises
    ------
    MalformedBodyError
        Not JSON, not an object, binary sizes that do not add up.
    InvalidRequestError, pydantic.ValidationError
        Wrong names, datatypes, shapes or parameters.
    InputError, BatchTooLargeError
        From :class:`Batch`: the values themselves.
    """
    raw, binary = _split(body, header_length)
    data = parse(raw)
    if not isinstance(data, dict):
        raise MalformedBodyError("inference request must be a JSON object")
    request = InferenceRequest.model_validate(data)
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise InvalidRequestError(
            f"unknown input {clip(tensor.name)!r}; the model's input is {INPUT_NAME!r}"
        )
    scale = INPUT_DATATYPES.get(tensor.datatype)
    if scale is None:
        raise InvalidRequestError(
            f"input datatype {clip(tensor.datatype)!r} is not supported; use FP32 "
            "(pixels in [0, 1]) or UINT8 (pixels 0-255)"
        )
    shape = tensor.shape
    if len(shape) < 2 or tuple(shape[1:]) not in IMAGE_DIMS or shape[0] < 1:
        raise InvalidRequestError(
            f"input shape must be [n, {INPUT_SIZE}] (or [n, 28, 28], [n, 1, 28, 28], "
            f"[n, 28, 28, 1]) with n >= 1, got {shape[:8]}"
        )
    rows = shape[0]
    if rows > max_rows:
        raise BatchTooLargeError(
            f"batch of {rows} images is over the limit of {max_rows}"
        )
    if binary or tensor.parameters.binary_data_size is not None:
        _check_binary(tensor, binary, rows)
        if tensor.datatype == "UINT8":
            batch = Batch.from_bytes(binary, max_rows=max_rows, name=INPUT_NAME)
        else:
            values = np.frombuffer(binary, dtype="<f4").reshape(rows, INPUT_SIZE)
            batch = Batch.from_numbers(
                values, scale=scale, max_rows=max_rows, rows=rows, name=INPUT_NAME
            )
    elif isinstance(tensor.data, list):
        batch = Batch.from_numbers(
            tensor.data, scale=scale, max_rows=max_rows, rows=rows, name=INPUT_NAME
        )
    else:
        raise InvalidRequestError(
            "input needs data (a list of numbers) or binary_data_size"
        )
    return Decoded(request.id, batch, _outputs(request))


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        raise MalformedBodyError(
            f"{HEADER_LENGTH} must be an integer, got {clip(header_length, 32)!r}"
        ) from None
    if not 0 < size <= len(body):
        raise MalformedBodyError(
            f"{HEADER_LENGTH} is {size} but the body has {len(body)} bytes"
        )
    return body[:size], body[size:]


def _check_binary(tensor: RequestInput, binary: bytes, rows: int) -> None:
    size = tensor.parameters.binary_data_size
    if size is None:
        raise MalformedBodyError(
            "binary data after the JSON header but no binary_data_size"
        )
    if tensor.data is not None:
        raise InvalidRequestError("input has both data and binary_data_size; send one")
    expected = rows * INPUT_SIZE * _ITEMSIZE[tensor.datatype]
    if size != expected:
        raise InvalidRequestError(
            f"binary_data_size is {size}; shape [{rows}, {INPUT_SIZE}] of "
            f"{tensor.datatype} needs {expected} bytes"
        )
    if size != len(binary):
        raise MalformedBodyError(
            f"the body holds {len(binary)} bytes of binary tensor data after the "
            f"JSON header; the input declares {size}"
        )


def _outputs(request: InferenceRequest) -> list[Output]:
    default_binary = request.parameters.binary_data_output
    if request.outputs is None:
        return [Output(name, default_binary) for name in OUTPUT_DATATYPES]
    selected: list[Output] = []
    for output in request.outputs:
        if output.name not in OUTPUT_DATATYPES:
            raise InvalidRequestError(
                f"unknown output {clip(output.name)!r}; outputs: "
                f"{', '.join(OUTPUT_DATATYPES)}"
            )
        if any(output.name == seen.name for seen in selected):
            raise InvalidRequestError(f"output {output.name!r} is requested twice")
        top = output.parameters.classification or 0
        if top and (output.name != "probabilities" or not 1 <= top <= NUM_CLASSES):
            raise InvalidRequestError(
                "classification applies to probabilities, with 1 to "
                f"{NUM_CLASSES} classes"
            )
        binary = output.parameters.binary_data
        selected.append(
            Output(output.name, default_binary if binary is None else binary, top)
        )
    return selected


def _classes(probabilities: NDArray[np.float32], top: int) -> NDArray[Any]:
    """The classification extension: the ``top`` classes of each row as
    ``"score:index:label"`` strings, most probable first (label: the digit)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    rows = [
        [f"{row[i]:f}:{i}:{i}" for i in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]
    return np.array(rows, dtype=object)


def _bytes_tensor(array: NDArray[Any]) -> bytes:
    # The protocol's BYTES encoding: each element a 4-byte little-endian
    # length, then its bytes.
    out = bytearray()
    for item in array.ravel():
        data = str(item).encode()
        out += len(data).to_bytes(4, "little") + data
    return bytes(out)


def encode(
    decoded: Decoded, prediction: Prediction
) -> tuple[bytes, str, dict[str, str]]:
    """The answer's body, media type and headers (binary outputs after the JSON)."""
    results: dict[str, NDArray[Any]] = {
        "probabilities": prediction.probabilities,
        "label": prediction.labels,
    }
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output in decoded.outputs:
        datatype = OUTPUT_DATATYPES[output.name]
        array = results[output.name]
        if output.top:
            datatype, array = "BYTES", _classes(array, output.top)
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if output.binary:
            if datatype == "BYTES":
                raw = _bytes_tensor(array)
            else:
                raw = array.astype("<f4" if datatype == "FP32" else "<i8").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            data = np.ascontiguousarray(array).ravel()
            tensor["data"] = data.tolist() if datatype == "BYTES" else data
        tensors.append(tensor)
    answer: dict[str, Any] = {
        "model_name": prediction.model.name,
        "model_version": str(prediction.model.version),
    }
    if decoded.id is not None:
        answer["id"] = decoded.id
    answer["outputs"] = tensors
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, "application/json", {}
    return (
        b"".join([header, *blobs]),
        "application/octet-stream",
        {HEADER_LENGTH: str(len(header))},
    )


OUTPUT_SHAPES = {"probabilities": [-1, NUM_CLASSES], "label": [-1]}
