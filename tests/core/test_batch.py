"""core.batch: the one validated input, and every rule it holds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.batch import Batch, Scale
from core.errors import BatchTooLargeError, InputError
from tests.core.strategies import json_values

FAST = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IMG = [0.5] * 784


def _scale(normalize: bool) -> Scale:
    return Scale.PIXELS if normalize else Scale.UNIT


@pytest.mark.parametrize(
    ("x", "single", "rows"),
    [
        (IMG, True, 1),
        ([[0.5] * 28] * 28, True, 1),
        ([IMG], False, 1),
        ([IMG, IMG], False, 2),
        ([[[0.5] * 28] * 28] * 3, False, 3),
        (np.full((2, 784), 0.5, np.float32), False, 2),
        (np.full(784, 1, np.uint8), True, 1),
    ],
)
def test_shapes_decide_single_or_batch(x: Any, single: bool, rows: int) -> None:
    batch = Batch.from_numbers(x, max_rows=8)
    assert batch.single is single
    assert batch.x.shape == (rows, 784)
    assert batch.x.dtype == np.float32
    assert batch.x.flags.c_contiguous


@pytest.mark.parametrize(
    ("x", "scale", "message"),
    [
        ([], Scale.UNIT, "x is empty"),
        ([[]], Scale.UNIT, "shape [1, 0]"),
        ([0.5] * 783, Scale.UNIT, "shape [783]"),
        ([IMG, [0.5] * 783], Scale.UNIT, "ragged"),
        ([[[0.5]]] * 70, Scale.UNIT, "shape [70, 1, 1]"),
        (np.zeros((0, 784)), Scale.UNIT, "empty batch"),
        ([True, *IMG[1:]], Scale.UNIT, "found booleans"),
        ([IMG, [True, *IMG[1:]]], Scale.UNIT, "found booleans"),
        (["0.5", *IMG[1:]], Scale.UNIT, "found strings"),
        ([None, *IMG[1:]], Scale.UNIT, "nulls or objects"),
        ([{}, *IMG[1:]], Scale.UNIT, "nulls or objects"),
        ([math.nan, *IMG[1:]], Scale.UNIT, "non-finite number at x[0]"),
        ([*IMG[1:], 1e39], Scale.UNIT, "non-finite number at x[783]"),
        ([1.5, *IMG[1:]], Scale.UNIT, "outside [0, 1] at x[0]"),
        ([[-0.1] * 28] * 28, Scale.UNIT, "outside [0, 1] at x[0][0]"),
        ([256, *IMG[1:]], Scale.PIXELS, "outside [0, 255] at x[0]"),
        ([0.5] * 784, Scale.UINT8, "integers in [0, 255]"),
        ([256] * 784, Scale.UINT8, "outside [0, 255]"),
    ],
)
def test_every_rule_names_what_is_wrong(x: Any, scale: Scale, message: str) -> None:
    with pytest.raises(InputError) as caught:
        Batch.from_numbers(x, scale=scale, max_rows=100)
    assert message in caught.value.message
    assert caught.value.loc == ("x",)


def test_the_input_is_named_as_the_caller_calls_it() -> None:
    with pytest.raises(
        InputError, match=r"input has a value outside \[0, 1\] at input\[0\]\[3\]"
    ):
        Batch.from_numbers([[0, 0, 0, 2] + [0] * 780], max_rows=1, rows=1, name="input")


def test_declared_rows_take_flat_or_nested_values() -> None:
    flat = Batch.from_numbers([0.25] * 1568, rows=2, max_rows=4)
    nested = Batch.from_numbers([[0.25] * 784] * 2, rows=2, max_rows=4)
    assert not flat.single
    np.testing.assert_array_equal(flat.x, nested.x)
    with pytest.raises(InputError, match="2 images need 1568"):
        Batch.from_numbers([0.25] * 784, rows=2, max_rows=4)
    with pytest.raises(BatchTooLargeError, match="limit of 4"):
        Batch.from_numbers([0.25] * 784 * 5, rows=5, max_rows=4)


def test_pixels_and_bytes_give_the_same_input_bit_for_bit() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (3, 784), dtype=np.uint8)
    from_bytes = Batch.from_bytes(pixels.tobytes(), max_rows=3)
    from_ints = Batch.from_numbers(pixels.tolist(), scale=Scale.UINT8, max_rows=3)
    from_floats = Batch.from_numbers(
        pixels.astype(np.float64).tolist(), scale=Scale.PIXELS, max_rows=3
    )
    assert from_bytes.x.tobytes() == from_ints.x.tobytes() == from_floats.x.tobytes()
    # MNIST's own convention: x / 255 in float32.
    expected = pixels.astype(np.float32) / np.float32(255)
    assert from_bytes.x.tobytes() == expected.tobytes()


def test_from_images_stacks_28x28_rows() -> None:
    images = [np.full((28, 28), v, np.float32) for v in (0.0, 0.5)]
    batch = Batch.from_images(images, single=False, max_rows=2)
    assert batch.x.shape == (2, 784)
    assert not batch.single
    assert Batch.from_images(images[:1], single=True, max_rows=2).single
    with pytest.raises(BatchTooLargeError):
        Batch.from_images(images, single=False, max_rows=1)


def test_a_caller_array_is_not_written_to() -> None:
    x = np.full((2, 784), 128.0, np.float32)
    batch = Batch.from_numbers(x, scale=Scale.PIXELS, max_rows=2)
    assert (x == 128.0).all()
    np.testing.assert_allclose(batch.x, 128 / 255)


@FAST
@given(json_values, st.booleans())
def test_from_numbers_on_any_json_value_answers_or_raises_input_error(
    x: Any, normalize: bool
) -> None:
    try:
        batch = Batch.from_numbers(x, scale=_scale(normalize), max_rows=8)
    except InputError as exc:
        message = exc.message.lower()
    else:
        assert batch.x.dtype == np.float32
        assert batch.x.shape[1] == 784
        return
    # Messages name positions, never the refused values.
    assert "nan" not in message
    assert "inf" not in message.replace("infinite", "")


def _image_like(data: st.DataObject, n: int | None, square: bool, top: float) -> Any:
    shape: tuple[int, ...] = (28, 28) if square else (784,)
    if n is not None:
        shape = (n, *shape)
    elements = st.floats(0, top, width=32)
    return data.draw(hnp.arrays(np.float32, shape, elements=elements))


@FAST
@given(
    st.one_of(st.none(), st.integers(1, 5)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.data(),
)
def test_from_numbers_shapes_ranges_and_values(
    n: int | None, square: bool, normalize: bool, as_lists: bool, data: st.DataObject
) -> None:
    array = _image_like(data, n, square, 255.0 if normalize else 1.0)
    batch = Batch.from_numbers(
        array.tolist() if as_lists else array, scale=_scale(normalize), max_rows=8
    )
    rows = 1 if n is None else n
    assert batch.single == (n is None)
    assert batch.x.shape == (rows, 784)
    assert batch.rows == rows
    assert batch.x.dtype == np.float32
    assert ((batch.x >= 0) & (batch.x <= 1)).all()
    expected = array.reshape(rows, 784).astype(np.float32)
    if normalize:
        expected = expected / np.float32(255)
    np.testing.assert_allclose(batch.x, expected, rtol=1e-6, atol=0)


@FAST
@given(
    st.integers(1, 4),
    st.sampled_from([math.nan, math.inf, -math.inf, -1e-3, 1.001, 256.0]),
    st.booleans(),
    st.data(),
)
def test_from_numbers_refuses_one_bad_value_anywhere_and_names_where(
    n: int, bad: float, normalize: bool, data: st.DataObject
) -> None:
    assume(not (normalize and 0 <= bad <= 255))
    array = _image_like(data, n, False, 1.0)
    row = data.draw(st.integers(0, n - 1))
    col = data.draw(st.integers(0, 783))
    array[row, col] = bad
    with pytest.raises(InputError, match=rf"x\[{row}\]\[{col}\]"):
        Batch.from_numbers(array.tolist(), scale=_scale(normalize), max_rows=8)


@FAST
@given(st.integers(0, 2000).filter(lambda k: k not in (784, 28)))
def test_from_numbers_refuses_wrong_lengths(length: int) -> None:
    with pytest.raises(InputError):
        Batch.from_numbers([0.5] * length, max_rows=8)
    with pytest.raises(InputError):
        Batch.from_numbers(
            [[0.5] * 784, [0.5] * length], max_rows=8
        )  # ragged or wrong batch


@FAST
@given(st.integers(1, 40), st.integers(1, 40))
def test_from_numbers_row_limit(rows: int, limit: int) -> None:
    x = np.zeros((rows, 784), dtype=np.float32)
    if rows > limit:
        with pytest.raises(BatchTooLargeError, match=f"limit of {limit}"):
            Batch.from_numbers(x, max_rows=limit)
    else:
        assert Batch.from_numbers(x, max_rows=limit).rows == rows


@FAST
@given(st.binary(max_size=784 * 4 + 10), st.integers(1, 5))
def test_from_bytes_any_bytes(data: bytes, limit: int) -> None:
    rows, rest = divmod(len(data), 784)
    if not data or rest:
        with pytest.raises(InputError):
            Batch.from_bytes(data, max_rows=limit)
        return
    if rows > limit:
        with pytest.raises(BatchTooLargeError):
            Batch.from_bytes(data, max_rows=limit)
        return
    batch = Batch.from_bytes(data, max_rows=limit)
    assert batch.x.shape == (rows, 784)
    assert batch.x.dtype == np.float32
    raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, 784)
    np.testing.assert_array_equal(batch.x * 255, raw.astype(np.float32))
