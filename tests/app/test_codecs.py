"""app.codecs: wire formats in, one core.Batch out (or the right error)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codecs import fastjson, images, jsonbody
from app.codecs import v2 as v2codec
from app.exceptions import InvalidRequestError, MalformedBodyError
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


# --- the fast JSON reader (simdjson) against the general one (orjson) ----------
#
# Every body must have the same outcome (the same batch, bit for bit, or the
# same error and message) whichever reader takes it; the fast reader may only
# decline. ``fast`` says whether it is expected to take the body itself, so that
# the table keeps proving the fast path is exercised.

ROW = ",".join(["0.5"] * 784)
ROW_783 = ",".join(["0.5"] * 783)


def _row(*head: str, size: int = 784) -> str:
    return ",".join([*head, *["0.25"] * (size - len(head))])


PREDICT_BODIES: list[tuple[str, bytes, bool]] = [
    ("single", f'{{"x": [{ROW}]}}'.encode(), True),
    ("batch", f'{{"x": [[{ROW}], [{ROW}]]}}'.encode(), True),
    (
        "28x28",
        ('{"x": [' + ",".join([f"[{_row(size=28)}]"] * 28) + "]}").encode(),
        True,
    ),
    (
        "n x 28 x 28",
        (
            '{"x": ['
            + ",".join(["[" + ",".join([f"[{_row(size=28)}]"] * 28) + "]"] * 2)
            + "]}"
        ).encode(),
        True,
    ),
    (
        "normalize",
        f'{{"normalize": true, "x": [{_row("255", "0", "17")}]}}'.encode(),
        True,
    ),
    ("normalize false", f'{{"x": [{ROW}], "normalize": false}}'.encode(), True),
    (
        "number spellings",
        f'{{"x": [{_row("1", "0", "-0", "-0.0", "0.0", "1E-5", "5e-1", "1.0e0", "2.5E-1", "1e-400", "0.1000000000000000055511151231257827")}]}}'.encode(),
        True,
    ),
    (
        "whitespace",
        f'\n {{ "x" :\t[ {ROW.replace(",", " ,  ")} ] }} \r\n'.encode(),
        True,
    ),
    ("ints beyond int64", f'{{"x": [{_row("18446744073709551615")}]}}'.encode(), True),
    ("out of range", f'{{"x": [{_row("1.5")}]}}'.encode(), True),
    ("negative", f'{{"x": [{_row("-0.001")}]}}'.encode(), True),
    ("over float32", f'{{"x": [{_row("1e39")}]}}'.encode(), True),
    ("too many rows", ('{"x": [' + ",".join([f"[{ROW}]"] * 5) + "]}").encode(), True),
    ("wrong shape", b'{"x": [[0.5, 0.5], [0.5, 0.5]]}', True),
    ("empty", b'{"x": []}', True),
    ("empty rows", b'{"x": [[], []]}', True),
    ("short row", f'{{"x": [[{ROW}], [{ROW_783}]]}}'.encode(), False),
    # Rows of 783 and 785 hold 2 x 784 numbers: the nesting is ragged.
    ("ragged, same count", f'{{"x": [[{ROW_783}], [{ROW},0.5]]}}'.encode(), False),
    # The first row has 784, the others 783 and 785: 3 x 784 numbers in all.
    (
        "ragged after a full row",
        f'{{"x": [[{ROW}], [{ROW_783}], [{ROW},0.5]]}}'.encode(),
        False,
    ),
    # A pair and an empty list in one row: 784 items, 784 numbers, not regular.
    ("nested items", f'{{"x": [[[0.5, 0.5], [], {_row(size=782)}]]}}'.encode(), False),
    ("number then rows", f'{{"x": [0.5, [{ROW}]]}}'.encode(), False),
    ("rows then number", f'{{"x": [[{ROW}], 0.5]}}'.encode(), False),
    ("deeper row", f'{{"x": [[[{ROW}]], [{ROW}]]}}'.encode(), False),
    ("boolean", f'{{"x": [{_row("true")}]}}'.encode(), False),
    ("null", f'{{"x": [{_row("null")}]}}'.encode(), False),
    ("string", f'{{"x": [{_row(chr(34) + "1" + chr(34))}]}}'.encode(), False),
    (
        "string with a bracket",
        f'{{"x": [{_row(chr(34) + "[" + chr(34))}]}}'.encode(),
        False,
    ),
    ("object", f'{{"x": [{_row("{}")}]}}'.encode(), False),
    (
        "integer beyond 64 bits",
        f'{{"x": [{_row("99999999999999999999999")}]}}'.encode(),
        False,
    ),
    ("NaN", f'{{"x": [{_row("NaN")}]}}'.encode(), False),
    ("infinite", f'{{"x": [{_row("1e400")}]}}'.encode(), False),
    ("repeated key", f'{{"x": [0.5], "x": [{ROW}]}}'.encode(), False),
    ("escaped key", f'{{"\\u0078": [{ROW}]}}'.encode(), False),
    ("byte order mark", b"\xef\xbb\xbf" + f'{{"x": [{ROW}]}}'.encode(), False),
    ("trailing text", f'{{"x": [{ROW}]}} x'.encode(), False),
    ("trailing NUL", f'{{"x": [{ROW}]}}\x00'.encode(), False),
    ("not UTF-8", f'{{"x": [{ROW}], "y": "\xff"}}'.encode("latin-1"), False),
    ("extra key", f'{{"x": [{ROW}], "y": 1}}'.encode(), True),
    ("extra key with brackets", f'{{"x": [{ROW}], "y[": "[["}}'.encode(), True),
    ("normalize not a boolean", f'{{"x": [{ROW}], "normalize": 1}}'.encode(), True),
    ("no x", b'{"normalize": true}', False),
    ("x not a list", b'{"x": 0.5}', False),
    ("a list", f"[{ROW}]".encode(), False),
    ("truncated", f'{{"x": [{ROW}'.encode(), False),
    ("deep", b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b"}", False),
]


def _predict_outcome(decode: Any, body: bytes) -> object:
    try:
        batch = decode(body, 4)
    except (CoreError, pydantic.ValidationError, MalformedBodyError) as exc:
        return (type(exc).__name__, str(exc))
    assert batch.x.dtype == np.float32
    return (batch.single, batch.x.shape, batch.x.tobytes())


@pytest.mark.parametrize(
    ("body", "fast"), [pytest.param(b, f, id=i) for i, b, f in PREDICT_BODIES]
)
def test_fast_and_general_json_readers_agree(body: bytes, fast: bool) -> None:
    assert (fastjson.fast_numbers(body, ("x",)) is not None) is fast
    assert _predict_outcome(jsonbody.decode_predict, body) == _predict_outcome(
        jsonbody.general_predict, body
    )


def _float32_edges(n: int) -> np.ndarray:
    """Doubles in [0, 1] that test text -> double -> float32: halfway points
    between neighbouring float32s (and their neighbours), subnormals, random."""
    rng = np.random.default_rng(7)
    below = rng.random(n).astype(np.float32)
    above = np.nextafter(below, np.float32(2))
    halfway = (below.astype(np.float64) + above.astype(np.float64)) / 2
    return np.concatenate(
        [
            halfway,
            np.nextafter(halfway, 0),
            np.nextafter(halfway, 2),
            rng.random(n),
            np.array([5e-324, 1e-310, 1.4e-45, 7e-46, 1.0, 0.0]),
        ]
    )


def test_the_fast_reader_rounds_every_number_as_the_general_one() -> None:
    values = _float32_edges(4 * 784)[: 4 * 784].reshape(4, 784)
    body = orjson.dumps({"x": values.tolist()})
    assert fastjson.fast_numbers(body, ("x",)) is not None
    fast = jsonbody.decode_predict(body, 4).x
    assert fast.tobytes() == jsonbody.general_predict(body, 4).x.tobytes()
    assert fast.tobytes() == values.astype(np.float32).tobytes()


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    edits=st.lists(
        st.tuples(
            st.integers(0, 2 * 784 - 1),
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False),
                st.floats(0, 1),
                st.integers(-(2**70), 2**70),
                st.booleans(),
                st.none(),
                st.text(max_size=3),
                st.lists(st.floats(0, 1), max_size=2),
            ),
        ),
        max_size=3,
    ),
)
def test_the_readers_agree_on_edited_batches(data: Any, edits: list[Any]) -> None:
    rows: list[list[Any]] = _float32_edges(784)[: 2 * 784].reshape(2, 784).tolist()
    for at, value in edits:
        rows[at // 784][at % 784] = value
    if data.draw(st.booleans(), label="drop one value"):
        rows[1].pop()
    # json, not orjson: it writes integers beyond 64 bits too.
    body = json.dumps({"x": rows, "normalize": data.draw(st.booleans())}).encode()
    assert _predict_outcome(jsonbody.decode_predict, body) == _predict_outcome(
        jsonbody.general_predict, body
    )


def _v2_body(
    data: object, datatype: str = "FP32", shape: Any = None, **extra: Any
) -> bytes:
    tensor = {
        "name": "input",
        "shape": [2, 784] if shape is None else shape,
        "datatype": datatype,
        "data": data,
    }
    return orjson.dumps({"inputs": [tensor], **extra})


_PIXELS = np.random.default_rng(3).integers(0, 256, (2, 784))
_FLOATS = _float32_edges(784)[: 2 * 784].reshape(2, 784)
V2_BODIES: list[tuple[str, bytes, bool]] = [
    ("flat FP32", _v2_body(_FLOATS.ravel().tolist()), True),
    ("nested FP32", _v2_body(_FLOATS.tolist()), True),
    (
        "28x28 FP32",
        _v2_body(_FLOATS.reshape(2, 28, 28).tolist(), shape=[2, 28, 28]),
        True,
    ),
    ("flat UINT8", _v2_body(_PIXELS.ravel().tolist(), "UINT8"), True),
    ("nested UINT8", _v2_body(_PIXELS.tolist(), "UINT8"), True),
    ("FP32 as integers", _v2_body((_PIXELS // 255).ravel().tolist()), True),
    ("UINT8 as floats", _v2_body([1.0] * 1568, "UINT8"), False),
    ("UINT8 out of range", _v2_body([256] * 1568, "UINT8"), True),
    ("size mismatch", _v2_body([0.5] * 1567), True),
    ("too many rows", _v2_body([0.5] * 784 * 5, shape=[5, 784]), True),
    ("ragged", _v2_body([[0.5] * 783, [0.5] * 785]), False),
    ("boolean", _v2_body([True] + [0.5] * 1567), False),
    (
        "with outputs and an id",
        _v2_body(
            _FLOATS.ravel().tolist(),
            id="a[1]",
            outputs=[
                {"name": "label"},
                {"name": "probabilities", "parameters": {"classification": 2}},
            ],
            parameters={"binary_data_output": False, "tags": ["[", "]]"]},
        ),
        True,
    ),
    # Data with one '[' more than a regular nesting (an item [0.5] in a row of
    # 784 items), and an id whose value holds a '[' its text escapes: counted
    # naively, the brackets would balance and the nesting pass as regular.
    (
        "escaped bracket",
        _v2_body([[0.5, [0.5], *[0.5] * 782], [0.5] * 784], id="X").replace(
            b'"X"', b'"\\u005b"'
        ),
        False,
    ),
    ("unknown datatype", _v2_body(_FLOATS.tolist(), "FP64"), True),
    (
        "data and binary size",
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 784],
                        "datatype": "FP32",
                        "data": [0.5] * 1568,
                        "parameters": {"binary_data_size": 6272},
                    }
                ]
            }
        ),
        True,
    ),
    (
        # The second input's data is envelope to the fast reader: too large.
        "two inputs",
        orjson.dumps(
            {"inputs": [orjson.loads(_v2_body([0.5] * 1568))["inputs"][0]] * 2}
        ),
        False,
    ),
    (
        "no data",
        orjson.dumps(
            {"inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32"}]}
        ),
        False,
    ),
    (
        "repeated key in parameters",
        _v2_body([0.5] * 1568).replace(
            b'"inputs"', b'"parameters": {"a": 1, "a": 2}, "inputs"', 1
        ),
        False,
    ),
]


def _v2_outcome(decode: Any, body: bytes) -> object:
    try:
        decoded = decode(body, None, 4)
    except (
        CoreError,
        pydantic.ValidationError,
        MalformedBodyError,
        InvalidRequestError,
    ) as exc:
        return (type(exc).__name__, str(exc))
    batch = decoded.batch
    return (decoded.id, decoded.outputs, batch.single, batch.x.shape, batch.x.tobytes())


@pytest.mark.parametrize(
    ("body", "fast"), [pytest.param(b, f, id=i) for i, b, f in V2_BODIES]
)
def test_fast_and_general_v2_readers_agree(body: bytes, fast: bool) -> None:
    taken = v2codec.fast_numbers(body, v2codec.DATA_PATH, v2codec._number_kind)
    assert (taken is not None) is fast
    assert _v2_outcome(v2codec.decode, body) == _v2_outcome(
        v2codec.general_decode, body
    )


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
