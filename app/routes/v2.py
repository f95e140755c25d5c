"""Open Inference Protocol (KServe V2 / Triton) REST endpoints, next to our own API.

One model, ``mnist`` (version ``1``): input ``input`` of shape ``[-1, 784]``,
outputs ``probabilities`` (FP32 ``[-1, 10]``) and ``label`` (INT64 ``[-1]``).
Input datatypes:

* ``FP32``: pixels in [0, 1], like ``/predict``'s JSON (``normalize: false``);
* ``UINT8``: raw pixels 0-255, divided by 255 on the server, like ``/predict``'s
  ``application/octet-stream``.

Tensors travel as JSON ``data`` or with the binary tensor data extension: the
``Inference-Header-Content-Length`` request header gives the size of the JSON
header, each binary input declares ``parameters.binary_data_size``, and outputs
asked for with ``binary_data`` (or all of them with the request parameter
``binary_data_output``) come back as raw little-endian bytes after the JSON
header of the answer. The numbers are those ``/predict`` gives for the same
pixels, bit for bit.

Errors under ``/v2`` are V2 bodies ``{"error": "..."}`` with the same status
codes as the rest of the service (400 malformed, 413 over a limit, 415, 422
invalid values, 503 not ready): routes raise the usual ``ProblemError`` /
``CoreError`` and :class:`V2ErrorMiddleware` rewrites the problem document.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import jsonbody
from app.deps import NetworkDep, SettingsDep, StateDep
from app.errors import PROBLEM_JSON, ProblemError
from app.responses import ORJSONResponse
from core.errors import BatchTooLargeError
from core.network import INPUT_SIZE, NUM_CLASSES, Network
from core.preprocessing import has_bool

router = APIRouter(prefix="/v2", tags=["v2"])

MODEL_NAME = "mnist"
MODEL_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_DATATYPES = {"probabilities": "FP32", "label": "INT64"}
INPUT_DATATYPES: dict[str, type[np.generic]] = {"FP32": np.float32, "UINT8": np.uint8}
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {**_ERROR, "description": text}
    for status, text in (
        (400, "Malformed request: not JSON, binary sizes that do not add up."),
        (404, "Unknown model or version."),
        (413, "Batch or body over a limit."),
        (415, "Compressed request bodies are not supported."),
        (
            422,
            "Wrong tensor name, datatype or shape; non-finite or out-of-range values.",
        ),
        (503, "The model is not loaded yet."),
    )
}


def _bad(status: int, detail: str) -> ProblemError:
    return ProblemError(status, detail)


def _check_model(name: str, version: str | None = None) -> None:
    if name != MODEL_NAME:
        raise _bad(404, f"unknown model {name!r}; this server serves {MODEL_NAME!r}")
    if version is not None and version != MODEL_VERSION:
        raise _bad(
            404,
            f"unknown version {version!r} of model {MODEL_NAME!r}; "
            f"versions: [{MODEL_VERSION!r}]",
        )


def _ready_response(ready: bool, body: dict[str, Any]) -> ORJSONResponse:
    # The protocol: 200 means true, a 4xx means false.
    return ORJSONResponse(body, status_code=200 if ready else 400)


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server metadata: name, version and protocol extensions."""
    return {
        "name": "mnist-serve",
        "version": request.app.version,
        "extensions": EXTENSIONS,
    }


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """200 {"live": true} while the process serves requests."""
    return {"live": True}


@router.get(
    "/health/ready", responses={400: {"description": "Not ready: {'ready': false}"}}
)
async def server_ready(state: StateDep) -> ORJSONResponse:
    """200 {"ready": true} once the model is loaded, else 400 {"ready": false}."""
    return _ready_response(state.ready, {"ready": state.ready})


def _metadata() -> dict[str, Any]:
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": "numpy",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, INPUT_SIZE]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, NUM_CLASSES]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


@router.get("/models/{model_name}", responses=_ERRORS)
async def model_metadata(model_name: str) -> dict[str, Any]:
    """Model metadata: input and output tensors (UINT8 input is accepted too)."""
    _check_model(model_name)
    return _metadata()


@router.get(
    "/models/{model_name}/versions/{model_version}",
    include_in_schema=False,
)
async def model_version_metadata(model_name: str, model_version: str) -> dict[str, Any]:
    _check_model(model_name, model_version)
    return _metadata()


@router.get("/models/{model_name}/ready", responses=_ERRORS)
async def model_ready(model_name: str, state: StateDep) -> ORJSONResponse:
    """200 {"name", "ready": true} once the model is loaded, else 400."""
    _check_model(model_name)
    return _ready_response(state.ready, {"name": MODEL_NAME, "ready": state.ready})


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    include_in_schema=False,
)
async def model_version_ready(
    model_name: str, model_version: str, state: StateDep
) -> ORJSONResponse:
    _check_model(model_name, model_version)
    return _ready_response(state.ready, {"name": MODEL_NAME, "ready": state.ready})


# --- inference ---------------------------------------------------------------


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        raise _bad(
            400, f"{HEADER_LENGTH} must be an integer, got {header_length[:32]!r}"
        ) from None
    if not 0 < size <= len(body):
        raise _bad(
            400,
            f"{HEADER_LENGTH} is {size} but the body has {len(body)} bytes",
        )
    return body[:size], body[size:]


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        request = jsonbody.parse(raw)
    except jsonbody.NonFiniteNumberError:
        raise _bad(
            422,
            "input data contains a non-finite number (not a number, infinite, "
            "or too large for a float); numbers must be finite",
        ) from None
    except jsonbody.MalformedJSONError as exc:
        raise _bad(400, f"inference request is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise _bad(400, "inference request must be a JSON object")
    return request


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise _bad(422, f"{where}.parameters must be an object")
    return params


def _input_tensor(
    request: dict[str, Any], binary: bytes, max_rows: int
) -> NDArray[Any]:
    """The ``input`` tensor as sent (uint8 or float), shape ``(n, 784)``."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise _bad(
            422, f"inputs must be a list of exactly one tensor named {INPUT_NAME!r}"
        )
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise _bad(422, "inputs[0] must be an object")
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise _bad(422, f"unknown input {name!r}; the model's input is {INPUT_NAME!r}")
    datatype = tensor.get("datatype")
    if datatype not in INPUT_DATATYPES:
        raise _bad(
            422,
            f"input datatype {datatype!r} is not supported; use FP32 (pixels in "
            "[0, 1]) or UINT8 (pixels 0-255)",
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int for d in shape)
        or shape[1] != INPUT_SIZE
        or shape[0] < 1
    ):
        raise _bad(
            422, f"input shape must be [n, {INPUT_SIZE}] with n >= 1, got {shape!r}"
        )
    rows = shape[0]
    if rows > max_rows:
        raise BatchTooLargeError(
            f"batch of {rows} images is over the limit of {max_rows}"
        )
    dtype = np.dtype(INPUT_DATATYPES[datatype]).newbyteorder("<")
    expected = rows * INPUT_SIZE
    params = _parameters(tensor, "inputs[0]")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if "data" in tensor:
            raise _bad(422, "input has both data and binary_data_size; send one")
        if type(size) is not int or size != expected * dtype.itemsize:
            raise _bad(
                422,
                f"binary_data_size is {size!r}; shape {shape} of {datatype} needs "
                f"{expected * dtype.itemsize} bytes",
            )
        if size != len(binary):
            raise _bad(
                400,
                f"the body holds {len(binary)} bytes of binary tensor data after the "
                f"JSON header; the input declares {size}",
            )
        return np.frombuffer(binary, dtype=dtype).reshape(rows, INPUT_SIZE)
    if binary:
        raise _bad(400, "binary data after the JSON header but no binary_data_size")
    return _json_data(tensor.get("data"), datatype, rows)


def _json_data(data: object, datatype: str, rows: int) -> NDArray[Any]:
    if not isinstance(data, list):
        raise _bad(422, "input needs data (a list of numbers) or binary_data_size")
    if has_bool(data):
        raise _bad(422, "input data must hold only numbers, found booleans")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise _bad(
            422, "input data is ragged (nested lists of different lengths)"
        ) from None
    if array.dtype.kind not in "iuf":
        raise _bad(422, "input data must hold only numbers")
    if array.size != rows * INPUT_SIZE:
        raise _bad(
            422,
            f"input data has {array.size} values; shape [{rows}, {INPUT_SIZE}] "
            f"needs {rows * INPUT_SIZE}",
        )
    array = array.reshape(rows, INPUT_SIZE)
    if datatype == "UINT8":
        if array.dtype.kind == "f":
            raise _bad(422, "UINT8 input data must be integers 0-255")
        bad = (array < 0) | (array > 255)
        if bad.any():
            raise _bad(422, f"UINT8 input has a value outside 0-255 at {_at(bad)}")
        return array.astype(np.uint8)
    return array


def _at(mask: NDArray[np.bool_]) -> str:
    row, col = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return f"[{int(row)}, {int(col)}]"


def _to_network_input(tensor: NDArray[Any]) -> NDArray[np.float32]:
    """Float32 in [0, 1], computed exactly as /predict computes it."""
    if tensor.dtype == np.uint8:
        # As core.preprocessing.from_uint8 does for octet-stream bodies.
        x = tensor.astype(np.float32)
        x /= np.float32(255.0)
        return x
    with np.errstate(over="ignore"):  # 1e300 becomes inf, refused just below
        x = tensor.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        raise _bad(422, f"FP32 input has a non-finite value at {_at(~finite)}")
    bad = (x < 0) | (x > 1)
    if bad.any():
        raise _bad(
            422,
            f"FP32 input has a value outside [0, 1] at {_at(bad)} (send UINT8 for "
            "0-255 pixels)",
        )
    return x


def _requested_outputs(request: dict[str, Any]) -> list[tuple[str, bool]]:
    default_binary = _parameters(request, "request").get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise _bad(422, "parameters.binary_data_output must be true or false")
    outputs = request.get("outputs")
    if outputs is None:
        return [(name, default_binary) for name in OUTPUT_DATATYPES]
    if not isinstance(outputs, list) or not outputs:
        raise _bad(422, "outputs must be a non-empty list of {name, parameters}")
    selected: list[tuple[str, bool]] = []
    for i, output in enumerate(outputs):
        if not isinstance(output, dict):
            raise _bad(422, f"outputs[{i}] must be an object")
        name = output.get("name")
        if name not in OUTPUT_DATATYPES:
            raise _bad(
                422,
                f"unknown output {name!r}; outputs: {', '.join(OUTPUT_DATATYPES)}",
            )
        if any(name == seen for seen, _ in selected):
            raise _bad(422, f"output {name!r} is requested twice")
        params = _parameters(output, f"outputs[{i}]")
        if params.get("classification"):
            raise _bad(422, "the classification extension is not supported")
        binary = params.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise _bad(422, f"outputs[{i}].parameters.binary_data must be a boolean")
        selected.append((name, binary))
    return selected


def _run(network: Network, x: NDArray[np.float32]) -> dict[str, NDArray[Any]]:
    probabilities = network.forward(x)
    labels = probabilities.argmax(axis=1).astype(np.int64)
    return {"probabilities": probabilities, "label": labels}


def _answer(
    request: dict[str, Any],
    results: dict[str, NDArray[Any]],
    outputs: list[tuple[str, bool]],
) -> Response:
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in outputs:
        datatype = OUTPUT_DATATYPES[name]
        array = results[name]
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if binary:
            raw = array.astype("<f4" if datatype == "FP32" else "<i8").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = np.ascontiguousarray(array).ravel()
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": MODEL_VERSION}
    if "id" in request:
        answer["id"] = request["id"]
    answer["outputs"] = tensors
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *blobs]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


_INFER_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "examples": {
                    "json": {
                        "summary": "one image as JSON data (FP32 in [0, 1])",
                        "value": {
                            "inputs": [
                                {
                                    "name": INPUT_NAME,
                                    "shape": [1, INPUT_SIZE],
                                    "datatype": "FP32",
                                    "data": [0.0] * INPUT_SIZE,
                                }
                            ]
                        },
                    }
                },
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "binary tensor data extension: a JSON header of "
                    "Inference-Header-Content-Length bytes, then the raw tensors",
                }
            },
        },
    }
}


async def _infer(
    request: Request,
    network: Network,
    max_rows: int,
    inline_rows: int,
) -> Response:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _bad(
            415, f"Content-Encoding {encoding!r} is not supported; send identity"
        )
    raw, binary = _split_body(await request.body(), request.headers.get(HEADER_LENGTH))
    body = _parse_header(raw)
    if "id" in body and not isinstance(body["id"], str):
        raise _bad(422, "id must be a string")
    tensor = _input_tensor(body, binary, max_rows)
    outputs = _requested_outputs(body)
    x = _to_network_input(tensor)
    if x.shape[0] <= inline_rows:
        # A small forward pass costs less than the hop to a worker thread.
        results = _run(network, x)
    else:
        results = await run_in_threadpool(_run, network, x)
    return _answer(body, results, outputs)


@router.post("/models/{model_name}/infer", openapi_extra=_INFER_DOC, responses=_ERRORS)
async def infer(
    model_name: str, request: Request, network: NetworkDep, settings: SettingsDep
) -> Response:
    """Inference: JSON tensors or the binary tensor data extension."""
    _check_model(model_name)
    return await _infer(request, network, settings.max_batch_size, settings.inline_rows)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer", include_in_schema=False
)
async def infer_version(
    model_name: str,
    model_version: str,
    request: Request,
    network: NetworkDep,
    settings: SettingsDep,
) -> Response:
    _check_model(model_name, model_version)
    return await _infer(request, network, settings.max_batch_size, settings.inline_rows)


# --- error bodies --------------------------------------------------------------


def _is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class V2ErrorMiddleware:
    """Under ``/v2``, rewrite problem+json error bodies as V2 ``{"error": "..."}``.

    Every error of the service, from the guard's refusals to the router's 404
    and the routes' own problems, is written once as RFC 9457; V2 clients such
    as tritonclient read the ``error`` field instead. Status, headers (request
    id, Retry-After) and everything outside ``/v2`` pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_v2(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_problem(message):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = _error_body(b"".join(chunks))
                headers = [
                    (k, v)
                    for k, v in held.get("headers", [])
                    if k.lower() not in (b"content-type", b"content-length")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewrite)


def _is_problem(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.decode("latin-1").startswith(PROBLEM_JSON))
    return False


def _error_body(problem: bytes) -> bytes:
    try:
        detail = orjson.loads(problem).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        detail = None
    return orjson.dumps({"error": detail if isinstance(detail, str) else "error"})
