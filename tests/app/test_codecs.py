"""app.codecs: wire formats in, one core.Batch out (or the right error)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest

from app.codecs import images, jsonbody
from app.codecs import v2 as v2codec
from app.errors import InvalidRequestError, MalformedBodyError
from core.batch import Batch, Scale
from core.errors import (
    BatchTooLargeError,
    CoreError,
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
)
from core.images import ImageLimits
from tests.app.test_images_http import png

IMG = [0.5] * 784
# Values the JSON codec may convert itself (its text holds numbers and lists
# only, so no nulls, strings or booleans): whichever path a value takes, the
# outcome must be the same.
JSON_CASES = [
    IMG,
    [IMG, IMG],
    [[0.5] * 28] * 28,
    [[[0.5] * 28] * 28] * 2,
    [255] * 784,
    [0.5, [0.5], *IMG[2:]],
    [IMG, [0.5] * 783],
    [IMG[:392] * 2, IMG],
    [2.0, *IMG[1:]],
    [-1e-3, *IMG[1:]],
    [1e39, *IMG[1:]],
    [IMG, [{}, *IMG[1:]]],
    [[IMG]],
    [],
    [[]],
    [IMG] * 5,
]


def _outcome(x: Any, scale: Scale) -> object:
    try:
        batch = Batch.from_numbers(x, scale=scale, max_rows=4)
    except CoreError as exc:
        return (type(exc).__name__, exc.message)
    assert batch.x.dtype == np.float32
    return (batch.single, batch.x.shape, batch.x.tobytes())


@pytest.mark.parametrize("scale", [Scale.UNIT, Scale.PIXELS])
@pytest.mark.parametrize("x", JSON_CASES)
def test_numbers_array_changes_no_outcome(x: list[Any], scale: Scale) -> None:
    assert _outcome(jsonbody.numbers_array(x, True), scale) == _outcome(x, scale)


@pytest.mark.parametrize(
    ("body", "numbers_only"),
    [
        (b'{"x": [0.5, 1]}', True),
        (b'{"x": [0.5, 1], "normalize": true}', True),
        (b'{"x": [0.5, 1], "normalize": false}', True),
        (b'{"x": [true, 1]}', False),
        (b'{"x": [0.5, 1], "normalize": true, "y": false}', False),
        (b'{"x": [null, 1]}', False),
        (b'{"x": ["1", 1]}', False),
        (b'{"x": [{}, 1]}', False),
        (b'{"x": [0.5, 1], "normalize": null}', False),
    ],
)
def test_the_json_text_decides_the_fast_path(body: bytes, numbers_only: bool) -> None:
    assert jsonbody._numbers_only(body, orjson.loads(body)) is numbers_only


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"", MalformedBodyError, "not valid JSON"),
        (b'{"x": [0.5,', MalformedBodyError, "not valid JSON"),
        (b'{"x": [NaN]}', InputError, "non-finite"),
        (b'{"x": [-Infinity]}', InputError, "non-finite"),
        (b'{"x": [1e999]}', InputError, "non-finite"),
        (b"[1, 2]", pydantic.ValidationError, "valid dictionary"),
        (b'{"x": [0.5], "y": 1}', pydantic.ValidationError, "extra"),
        (b'{"x": [0.5], "normalize": 1}', pydantic.ValidationError, "boolean"),
        (b'{"normalize": true}', pydantic.ValidationError, "required"),
        (b'{"x": [0.5]}', InputError, "shape [1]"),
    ],
)
def test_decode_predict_errors(
    body: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        jsonbody.decode_predict(body, max_rows=4)


def test_decode_predict_normalize_scales_pixels() -> None:
    batch = jsonbody.decode_predict(
        orjson.dumps({"x": [255] * 784, "normalize": True}), max_rows=1
    )
    assert batch.single
    assert (batch.x == 1).all()


# --- multipart ----------------------------------------------------------------


def _multipart(parts: list[tuple[str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = "form-data"
        if name is not None:
            disposition += f'; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--B\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + b"--B--\r\n"


def _split(body: bytes, max_parts: int = 4, max_part_bytes: int = 100) -> list:
    return images.split_multipart(
        body,
        "multipart/form-data; boundary=B",
        max_parts=max_parts,
        max_part_bytes=max_part_bytes,
    )


def test_multipart_parts_come_in_upload_order_with_their_names() -> None:
    uploads = _split(_multipart([("file", "a.png", b"A"), ("file", "b.png", b"BB")]))
    assert [(u.filename, u.data) for u in uploads] == [
        ("a.png", b"A"),
        ("b.png", b"BB"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "error", "message"),
    [
        (b"x", "multipart/form-data", MalformedBodyError, "boundary"),
        (
            b"garbage",
            "multipart/form-data; boundary=B",
            MalformedBodyError,
            "multipart",
        ),
        (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nA',
            "multipart/form-data; boundary=B",
            MalformedBodyError,
            "closing boundary",
        ),
        (
            _multipart([(None, "a.png", b"A")]),
            "multipart/form-data; boundary=B",
            MalformedBodyError,
            "no name",
        ),
        (
            _multipart([("file", f"{i}.png", b"A") for i in range(5)]),
            "multipart/form-data; boundary=B",
            LimitExceededError,
            "more than 4 parts",
        ),
        (
            _multipart([("file", "a.png", b"A" * 101)]),
            "multipart/form-data; boundary=B",
            LimitExceededError,
            "part 0 is over the limit of 100 bytes",
        ),
        (
            _multipart([("image", "a.png", b"A")]),
            "multipart/form-data; boundary=B",
            InvalidRequestError,
            "unexpected part",
        ),
        (
            _multipart([("file", None, b"A")]),
            "multipart/form-data; boundary=B",
            InvalidRequestError,
            "must be files",
        ),
        (
            b"--B--\r\n",
            "multipart/form-data; boundary=B",
            InvalidRequestError,
            "no part named file",
        ),
    ],
)
def test_multipart_errors(
    body: bytes, content_type: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        images.split_multipart(body, content_type, max_parts=4, max_part_bytes=100)


def test_a_batch_with_unusable_files_names_each_of_them() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:15] = 255
    uploads = [
        images.Upload("good.png", png(digit)),
        images.Upload("blank.png", png(np.zeros((28, 28), np.uint8))),
        images.Upload("junk.png", b"not an image"),
    ]
    limits = ImageLimits(max_pixels=10_000, max_bytes=10_000)
    with pytest.raises(InvalidRequestError) as caught:
        images.decode_images(uploads, "auto", limits, max_rows=8)
    errors = caught.value.errors
    assert errors is not None
    assert [(e["loc"], e["filename"]) for e in errors] == [
        (["file", 1], "blank.png"),
        (["file", 2], "junk.png"),
    ]
    assert "2 of 3 files" in caught.value.message
    # One file alone keeps its own error (and status).
    with pytest.raises(EmptyImageError):
        images.decode_images(uploads[1:2], "auto", limits, max_rows=8)
    with pytest.raises(ImageDecodeError):
        images.decode_images(uploads[2:], "auto", limits, max_rows=8)
    with pytest.raises(LimitExceededError, match="batch limit of 1"):
        images.decode_images(uploads, "auto", limits, max_rows=1)


# --- Open Inference Protocol ----------------------------------------------------


def _tensor(**changes: Any) -> dict[str, Any]:
    return {
        "name": "input",
        "shape": [1, 784],
        "datatype": "FP32",
        "data": IMG,
        **changes,
    }


def _decode(request: dict[str, Any], binary: bytes = b"") -> v2codec.Decoded:
    header = orjson.dumps(request)
    length = str(len(header)) if binary else None
    return v2codec.decode(header + binary, length, max_rows=4)


@pytest.mark.parametrize(
    "request_",
    [
        {"inputs": [_tensor(datatype=["FP32"])]},
        {"inputs": [_tensor(datatype={"a": 1})]},
        {"inputs": [_tensor(name=["input"])]},
        {"inputs": [_tensor(shape="1,784")]},
        {"inputs": [_tensor(shape=[1.0, 784])]},
        {"inputs": [_tensor(parameters=[])]},
        {"inputs": [_tensor()], "outputs": [{"name": ["label"]}]},
        {"inputs": [_tensor()], "outputs": [{"name": {"a": 1}}]},
        {"inputs": [_tensor()], "outputs": "label"},
        {"inputs": [_tensor()], "id": ["x"]},
        {"inputs": [_tensor()], "parameters": {"binary_data_output": 1}},
        {"inputs": _tensor()},
        {"inputs": [_tensor(), _tensor()]},
    ],
)
def test_v2_envelopes_of_the_wrong_type_are_validation_errors(
    request_: dict[str, Any],
) -> None:
    with pytest.raises(pydantic.ValidationError):
        _decode(request_)


def test_v2_json_and_binary_give_the_same_batch() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (2, 784), dtype=np.uint8)
    as_json = _decode(
        {"inputs": [_tensor(shape=[2, 784], datatype="UINT8", data=pixels.tolist())]}
    )
    as_binary = _decode(
        {
            "inputs": [
                _tensor(
                    shape=[2, 784],
                    datatype="UINT8",
                    data=None,
                    parameters={"binary_data_size": 1568},
                )
            ]
        },
        pixels.tobytes(),
    )
    octet = Batch.from_bytes(pixels.tobytes(), max_rows=2)
    assert as_json.batch.x.tobytes() == as_binary.batch.x.tobytes() == octet.x.tobytes()
    floats = (pixels / 255).astype("<f4")
    fp32 = _decode(
        {
            "inputs": [
                _tensor(
                    shape=[2, 784],
                    data=None,
                    parameters={"binary_data_size": floats.nbytes},
                )
            ]
        },
        floats.tobytes(),
    )
    np.testing.assert_array_equal(fp32.batch.x, floats)


def test_v2_limits_and_sizes() -> None:
    with pytest.raises(BatchTooLargeError):
        _decode({"inputs": [_tensor(shape=[5, 784], data=IMG * 5)]})
    with pytest.raises(MalformedBodyError, match="declares 784"):
        _decode(
            {
                "inputs": [
                    _tensor(
                        datatype="UINT8",
                        data=None,
                        parameters={"binary_data_size": 784},
                    )
                ]
            },
            b"\x00" * 10,
        )
    with pytest.raises(MalformedBodyError, match="integer"):
        v2codec.decode(b"{}", "ten", max_rows=4)
    with pytest.raises(MalformedBodyError, match="JSON object"):
        v2codec.decode(b"[1]", None, max_rows=4)
