"""POST /predict: one endpoint, dispatched on Content-Type (see API.md).

JSON is parsed with orjson straight into NumPy instead of validating each of
784 numbers as a Python object; the shape and range checks live in
``core.preprocessing`` and answer with the same 422 problems.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import jsonbody
from app.deps import NetworkDep, SettingsDep
from app.errors import ProblemError
from app.responses import ORJSONResponse
from app.schemas import PredictAnswer, PredictRequest, problem_doc
from app.settings import Settings
from core import images
from core.errors import InputError, LimitExceededError
from core.network import Network
from core.preprocessing import Batch, from_uint8, to_batch

router = APIRouter(tags=["predict"])

IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
SUPPORTED = (
    "application/json",
    "multipart/form-data",
    *IMAGE_TYPES,
    "application/octet-stream",
)


class Preprocess(StrEnum):
    auto = "auto"
    mnist = "mnist"
    raw = "raw"


def example_stroke() -> list[list[float]]:
    """A vertical stroke as 28x28 values in [0, 1]: every weights file here reads a 1."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[4:24, 13:15] = 1.0
    return [[float(v) for v in row] for row in image]


def request_body_doc(
    model: type[BaseModel], examples: dict[str, Any], *, many: bool
) -> dict[str, Any]:
    """The OpenAPI request body of the routes that read images like /predict.

    JSON described by ``model``, multipart parts named ``file`` (several when
    ``many``), raw image bodies and octet-stream pixels.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    binary = {"type": "string", "format": "binary"}
    files = (
        {"type": "array", "items": binary, "description": "one or more image files"}
        if many
        else {**binary, "description": "one image file"}
    )
    pixels = "n * 784" if many else "784"
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema, "examples": examples},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": files},
                    }
                },
                **{t: {"schema": binary} for t in IMAGE_TYPES},
                "application/octet-stream": {
                    "schema": {
                        **binary,
                        "description": f"{pixels} uint8 pixels, row-major",
                    }
                },
            },
        }
    }


def _predict_examples() -> dict[str, Any]:
    one = [v for row in example_stroke() for v in row]
    return {
        "single": {"summary": "one image, 784 numbers in [0, 1]", "value": {"x": one}},
        "batch": {"summary": "a batch of two", "value": {"x": [one, one]}},
        "pixels": {
            "summary": "raw 0-255 pixels with normalize",
            "value": {"x": [v * 255 for v in one], "normalize": True},
        },
    }


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _count_upto(body: bytes, byte: bytes, limit: int) -> int:
    # bytes.find of one byte is a memchr: microseconds for a 600 KB body,
    # where `b"true" in body` scans for milliseconds.
    count, i = 0, body.find(byte)
    while i >= 0 and count <= limit:
        count += 1
        i = body.find(byte, i + 1)
    return count


def _numbers_only(body: bytes, data: dict[str, Any]) -> bool:
    """True when ``x`` can hold neither strings nor booleans.

    The only quotes are those of the keys (2 each), and the only ``true`` or
    ``false`` (the sole JSON tokens with a ``t`` or an ``f`` outside strings)
    is the value of ``normalize``: then ``x`` holds numbers, lists and maybe
    nulls or objects, which ``to_batch`` still catches.
    """
    keys = len(data)
    if _count_upto(body, b'"', 2 * keys) != 2 * keys:
        return False
    bools = _count_upto(body, b"t", 1) + _count_upto(body, b"f", 1)
    return bools <= (1 if "normalize" in data else 0)


def _json_batch(body: bytes, settings: Settings) -> Batch:
    try:
        data = jsonbody.parse(body)
    except jsonbody.NonFiniteNumberError:
        raise ProblemError(
            422,
            "x contains a non-finite number (not a number, infinite, or too "
            "large for a float); JSON numbers must be finite",
            errors=[{"loc": ["body", "x"], "msg": "numbers must be finite"}],
        ) from None
    except jsonbody.MalformedJSONError as exc:
        raise ProblemError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProblemError(
            422,
            'body must be a JSON object {"x": ...}',
            errors=[{"loc": ["body"], "msg": "must be an object"}],
        )
    unknown = sorted(set(data) - {"x", "normalize"})
    if unknown:
        raise ProblemError(
            422,
            f"unknown field(s) {', '.join(unknown)}; expected x and normalize",
            errors=[{"loc": ["body", k], "msg": "unknown field"} for k in unknown],
        )
    if "x" not in data:
        raise ProblemError(
            422,
            "field x is required",
            errors=[{"loc": ["body", "x"], "msg": "field required"}],
        )
    normalize = data.get("normalize", False)
    if not isinstance(normalize, bool):
        raise ProblemError(
            422,
            "normalize must be true or false",
            errors=[{"loc": ["body", "normalize"], "msg": "must be a boolean"}],
        )
    numbers_only = _numbers_only(body, data)
    try:
        return to_batch(
            data["x"],
            normalize=normalize,
            max_rows=settings.max_batch_size,
            check_bools=not numbers_only and (b"true" in body or b"false" in body),
            numbers_only=numbers_only,
        )
    except LimitExceededError:
        raise
    except InputError as exc:
        raise ProblemError(
            422, exc.message, errors=[{"loc": ["body", "x"], "msg": exc.message}]
        ) from None


async def _image_batch(
    request: Request, media: str, settings: Settings, preprocess: Preprocess
) -> list[bytes]:
    if media != "multipart/form-data":
        return [await request.body()]
    try:
        form = await request.form(
            max_files=settings.max_upload_parts,
            max_fields=settings.max_upload_parts,
            max_part_size=settings.max_part_bytes,
        )
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if "Too many" in detail or "exceeded maximum size" in detail:
            raise ProblemError(
                413,
                f"multipart upload over a limit: {detail} (parts: at most "
                f"{settings.max_upload_parts}, part bytes: at most "
                f"{settings.max_part_bytes})",
                type_="limit-exceeded",
            ) from None
        raise ProblemError(400, f"malformed multipart body: {detail}") from None
    try:
        # Part names come from the client: a few, clipped, are named back.
        names = sorted({key[:64] for key, _ in form.multi_items()} - {"file"})[:10]
        files = list(form.getlist("file"))
        if names:
            raise ProblemError(
                422,
                f"unexpected part(s) {', '.join(names)}: send images in parts "
                "named file",
                errors=[{"loc": ["body", n], "msg": "unknown part"} for n in names],
            )
        if not files:
            raise ProblemError(
                422,
                "no part named file: send images as file=@digit.png",
                errors=[{"loc": ["body", "file"], "msg": "field required"}],
            )
        if not all(isinstance(f, UploadFile) for f in files):
            raise ProblemError(
                422,
                "the file parts must be files, not text fields",
                errors=[{"loc": ["body", "file"], "msg": "must be a file"}],
            )
        # Starlette's max_part_size bounds text fields only, never file parts.
        for i, f in enumerate(files):
            if isinstance(f, UploadFile) and (f.size or 0) > settings.max_part_bytes:
                raise ProblemError(
                    413,
                    f"file part {i} is {f.size} bytes, over the limit of "
                    f"{settings.max_part_bytes} bytes per part",
                    type_="limit-exceeded",
                )
        return [await f.read() for f in files if isinstance(f, UploadFile)]
    finally:
        await form.close()


def _images_to_batch(blobs: list[bytes], preprocess: str, settings: Settings) -> Batch:
    if len(blobs) > settings.max_batch_size:
        raise LimitExceededError(
            f"{len(blobs)} images is over the batch limit of {settings.max_batch_size}"
        )
    limits = images.ImageLimits(
        max_pixels=settings.max_image_pixels, max_bytes=settings.max_body_bytes
    )
    rows = np.stack([images.image_to_input(blob, preprocess, limits) for blob in blobs])
    return Batch(x=rows.astype(np.float32, copy=False), single=len(blobs) == 1)


def _answer(network: Network, batch: Batch, return_input: bool) -> dict[str, Any]:
    probabilities = network.forward(batch.x)
    labels = probabilities.argmax(axis=1)
    if batch.single:
        out: dict[str, Any] = {
            "label": int(labels[0]),
            "probabilities": probabilities[0],
        }
        if return_input:
            out["input"] = batch.x[0].reshape(28, 28)
    else:
        out = {"labels": labels, "probabilities": probabilities}
        if return_input:
            out["input"] = batch.x.reshape(-1, 28, 28)
    return out


async def read_batch(
    request: Request, settings: Settings, preprocess: Preprocess
) -> Batch:
    """Decode the body (any Content-Type of /predict) into the network's batch."""
    media = _media_type(request)
    if media == "application/json":
        return _json_batch(await request.body(), settings)
    if media == "application/octet-stream":
        return from_uint8(await request.body(), max_rows=settings.max_batch_size)
    if media == "multipart/form-data" or media.startswith("image/"):
        blobs = await _image_batch(request, media, settings, preprocess)
        return await run_in_threadpool(
            _images_to_batch, blobs, preprocess.value, settings
        )
    raise ProblemError(
        415,
        f"unsupported Content-Type {media or '(none)'!r}; use one of: "
        f"{', '.join(SUPPORTED)}",
    )


@router.post(
    "/predict",
    response_model=PredictAnswer,
    response_class=ORJSONResponse,
    openapi_extra=request_body_doc(PredictRequest, _predict_examples(), many=True),
    responses={
        400: problem_doc(
            "Malformed body: not JSON, broken multipart, undecodable image."
        ),
        413: problem_doc("Body, batch, parts or image pixels over a limit."),
        415: problem_doc("Unsupported Content-Type or image format."),
        422: problem_doc("Wrong shape, out of range, non-finite, no ink."),
    },
)
async def predict(
    request: Request,
    network: NetworkDep,
    settings: SettingsDep,
    preprocess: Annotated[
        Preprocess,
        Query(
            description="Image uploads: auto (default) leaves an MNIST-like 28x28 as it is "
            "and normalises anything else like MNIST; mnist always normalises; raw needs 28x28."
        ),
    ] = Preprocess.auto,
    return_input: Annotated[
        bool,
        Query(
            description="Add `input`: the 28x28 image(s) the network saw, in [0, 1]."
        ),
    ] = False,
) -> ORJSONResponse:
    """Classify one image or a batch; the Content-Type says what the body holds."""
    batch = await read_batch(request, settings, preprocess)
    if batch.rows <= settings.inline_rows:
        # A small forward pass costs less than the hop to a worker thread.
        answer = _answer(network, batch, return_input)
    else:
        answer = await run_in_threadpool(_answer, network, batch, return_input)
    return ORJSONResponse(answer)
