"""The Open Inference Protocol's REST framing: inference requests in, answers out.

A request is a JSON header, optionally followed by raw tensor bytes (the binary
tensor data extension: ``Inference-Header-Content-Length`` gives the header's
size, and the input declares ``parameters.binary_data_size``). The header's
shape is checked by Pydantic models, so a list where a string belongs is a
clear 422 like any other; the tensor itself follows :mod:`app.codecs.tensors`,
the rules every transport of the protocol shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app import admission
from app.codecs import charge_general, negotiate, run_sized
from app.codecs.fastjson import Kind, fast_numbers
from app.codecs.jsonbody import REFUSALS, parse
from app.codecs.tensors import (
    ITEMSIZE,
    Output,
    Tensor,
    check_header,
    raw_bytes,
    results,
    select_outputs,
    to_batch,
)
from app.errors import clip
from app.exceptions import InvalidRequestError, MalformedBodyError
from app.inference import Prediction
from core.batch import Batch
from core.network import INPUT_SIZE

HEADER_LENGTH = "Inference-Header-Content-Length"


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
class Decoded:
    """An inference request, decoded: its id, the batch, the outputs asked for."""

    id: str | None
    batch: Batch
    outputs: list[Output]


# What an inference request may be sent as; tritonclient sends no Content-Type.
MEDIA_TYPES = ("application/json", "application/octet-stream", "")


async def read(request: Request, max_rows: int) -> Decoded:
    """Read, charge and decode the body of an inference request."""
    negotiate(request, MEDIA_TYPES)
    body = await request.body()
    header_length = request.headers.get(HEADER_LENGTH)
    # A JSON header is charged as JSON; binary tensors after it as copies.
    json_bytes = (
        len(body)
        if header_length is None
        else min(len(body), _int_or_zero(header_length))
    )
    await admission.charge(
        request.scope,
        json_bytes * admission.JSON_BYTES_PER_BODY_BYTE
        + (len(body) - json_bytes) * admission.BINARY_BYTES_PER_BODY_BYTE,
        "decoding the inference request",
    )
    decoded = await run_sized(len(body), fast_decode, body, header_length, max_rows)
    if decoded is None:
        header = body if json_bytes == len(body) else body[:json_bytes]
        await charge_general(request, header)
        decoded = await run_sized(
            len(body), general_decode, body, header_length, max_rows
        )
    await admission.charge(
        request.scope,
        decoded.batch.rows * ANSWER_BYTES_PER_ROW,
        "answering the inference request",
    )
    return decoded


# An answer's JSON header and binary outputs, per row: ten float32 numbers
# and a label, as JSON text (at most ~190 bytes) or raw (48 bytes), rendered
# by orjson (twice the text at its peak).
ANSWER_BYTES_PER_ROW = 1024


def _int_or_zero(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0


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
    fast = fast_decode(body, header_length, max_rows)
    return fast if fast is not None else general_decode(body, header_length, max_rows)


def fast_decode(
    body: bytes, header_length: str | None, max_rows: int
) -> Decoded | None:
    """:func:`decode` by the fast reader alone; None where it cannot say."""
    if header_length is None:
        fast = fast_numbers(body, DATA_PATH, _number_kind)
        if fast is not None:
            envelope, values = fast
            envelope["inputs"][0]["data"] = values
            try:
                return _decoded(envelope, b"", max_rows)
            except REFUSALS:
                pass  # refused: the general reader says why, in its own words
    return None


def general_decode(body: bytes, header_length: str | None, max_rows: int) -> Decoded:
    """:func:`decode` by the general reader alone (orjson, then NumPy)."""
    raw, binary = _split(body, header_length)
    data = parse(raw)
    if not isinstance(data, dict):
        raise MalformedBodyError("inference request must be a JSON object")
    return _decoded(data, binary, max_rows)


DATA_PATH = ("inputs", 0, "data")


def _number_kind(envelope: dict[str, Any]) -> Kind:
    # UINT8 data must be integers: read as int64, a 1.0 declines (and the
    # general reader refuses it); anything else is read as float64.
    return "i" if envelope["inputs"][0].get("datatype") == "UINT8" else "d"


def _decoded(data: dict[str, Any], binary: bytes, max_rows: int) -> Decoded:
    request = InferenceRequest.model_validate(data)
    sent = request.inputs[0]
    tensor = Tensor(sent.name, sent.datatype, sent.shape, sent.data)
    if binary or sent.parameters.binary_data_size is not None:
        rows = check_header(tensor, max_rows)
        _check_binary(sent, binary, rows)
        tensor = Tensor(sent.name, sent.datatype, sent.shape, raw=binary)
    elif not isinstance(sent.data, list | np.ndarray):
        raise InvalidRequestError(
            "input needs data (a list of numbers) or binary_data_size"
        )
    outputs = select_outputs(
        None
        if request.outputs is None
        else [
            (o.name, o.parameters.classification, o.parameters.binary_data)
            for o in request.outputs
        ],
        request.parameters.binary_data_output,
    )
    return Decoded(request.id, to_batch(tensor, max_rows), outputs)


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
    expected = rows * INPUT_SIZE * ITEMSIZE[tensor.datatype]
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


def encode(
    decoded: Decoded, prediction: Prediction
) -> tuple[bytes, str, dict[str, str]]:
    """The answer's body, media type and headers (binary outputs after the JSON)."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output, datatype, array in results(prediction, decoded.outputs):
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if output.binary:
            raw = raw_bytes(datatype, array)
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
