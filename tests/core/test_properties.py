"""Property tests of what the HTTP layer hands to ``core``: any decoded JSON value.

The routes pass client input straight to ``core.preprocessing.to_batch``,
``core.preprocessing.from_uint8`` and ``core.activations.evaluate``. Whatever a
client sends, these must either give an answer of the documented shape and
range or raise ``InputError`` (a 4xx); any other exception would be a 500.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import activations
from core.errors import BatchTooLargeError, InputError
from core.network import Network
from core.preprocessing import from_uint8, to_batch
from tests.conftest import random_network

FAST = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# What orjson can hand over: JSON scalars (with huge ints and, from a lenient
# parser, non-finite floats) nested in lists and objects.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**70),
    st.floats(),
    st.text(max_size=5),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
    ),
    max_leaves=40,
)
unit = st.floats(0, 1, width=32)


@pytest.fixture(scope="module")
def network() -> Network:
    return random_network(np.random.default_rng(0))


# --------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------


@FAST
@given(json_values, st.booleans())
def test_to_batch_on_any_json_value_answers_or_raises_input_error(
    x: Any, normalize: bool
) -> None:
    try:
        batch = to_batch(x, normalize=normalize, max_rows=8)
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
def test_to_batch_shapes_ranges_and_values(
    n: int | None, square: bool, normalize: bool, as_lists: bool, data: st.DataObject
) -> None:
    array = _image_like(data, n, square, 255.0 if normalize else 1.0)
    batch = to_batch(array.tolist() if as_lists else array, normalize=normalize)
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
def test_to_batch_refuses_one_bad_value_anywhere_and_names_where(
    n: int, bad: float, normalize: bool, data: st.DataObject
) -> None:
    assume(not (normalize and 0 <= bad <= 255))
    array = _image_like(data, n, False, 1.0)
    row = data.draw(st.integers(0, n - 1))
    col = data.draw(st.integers(0, 783))
    array[row, col] = bad
    with pytest.raises(InputError, match=rf"x\[{row}\]\[{col}\]"):
        to_batch(array.tolist(), normalize=normalize)


@FAST
@given(st.integers(0, 2000).filter(lambda k: k not in (784, 28)))
def test_to_batch_refuses_wrong_lengths(length: int) -> None:
    with pytest.raises(InputError):
        to_batch([0.5] * length)
    with pytest.raises(InputError):
        to_batch([[0.5] * 784, [0.5] * length])  # ragged or wrong batch


@FAST
@given(st.integers(1, 40), st.integers(1, 40))
def test_to_batch_row_limit(rows: int, limit: int) -> None:
    x = np.zeros((rows, 784), dtype=np.float32)
    if rows > limit:
        with pytest.raises(BatchTooLargeError, match=f"limit of {limit}"):
            to_batch(x, max_rows=limit)
    else:
        assert to_batch(x, max_rows=limit).rows == rows


@FAST
@given(st.binary(max_size=784 * 4 + 10), st.integers(1, 5))
def test_from_uint8_any_bytes(data: bytes, limit: int) -> None:
    rows, rest = divmod(len(data), 784)
    if not data or rest:
        with pytest.raises(InputError):
            from_uint8(data, max_rows=limit)
        return
    if rows > limit:
        with pytest.raises(BatchTooLargeError):
            from_uint8(data, max_rows=limit)
        return
    batch = from_uint8(data, max_rows=limit)
    assert batch.x.shape == (rows, 784)
    assert batch.x.dtype == np.float32
    raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, 784)
    np.testing.assert_array_equal(batch.x * 255, raw.astype(np.float32))


# --------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------


@FAST
@given(st.integers(1, 12), st.data())
def test_forward_gives_probability_rows(
    network: Network, n: int, data: st.DataObject
) -> None:
    x = data.draw(hnp.arrays(np.float32, (n, 784), elements=unit))
    p = network.forward(x)
    assert p.shape == (n, 10)
    assert p.dtype == np.float32
    assert np.isfinite(p).all()
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(network.predict(x), p.argmax(axis=1))
    # Rows are independent: a single image and a shuffled batch agree.
    i = data.draw(st.integers(0, n - 1))
    np.testing.assert_allclose(network.forward(x[i]), p[i : i + 1], atol=1e-6)
    order = data.draw(st.permutations(range(n)))
    np.testing.assert_allclose(
        network.forward(x[list(order)]), p[list(order)], atol=1e-6
    )


@FAST
@given(
    hnp.arrays(
        np.float32,
        (3, 784),
        elements=st.floats(-(2.0**100), 2.0**100, width=32),
    )
)
def test_forward_stays_finite_far_outside_the_input_range(
    network: Network, x: np.ndarray
) -> None:
    # to_batch keeps inputs in [0, 1]; the network itself must still not blow up.
    with np.errstate(over="ignore"):
        p = network.forward(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


# --------------------------------------------------------------------------
# activations, as GET/POST /activations call them
# --------------------------------------------------------------------------

NAMES = activations.names()
_PARAM = st.one_of(
    st.floats(),
    st.integers(-5, 5),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@FAST
@given(
    st.sampled_from(NAMES),
    json_values,
    st.dictionaries(st.sampled_from(["alpha", "k", "beta"]), _PARAM, max_size=2),
)
def test_evaluate_on_any_input_answers_or_raises_input_error(
    name: str, x: Any, params: dict[str, Any]
) -> None:
    try:
        activation, used, xs, y, dy = activations.evaluate(name, x, params)
    except InputError:
        return
    assert activation.name == name
    assert set(used) == set(activation.params)
    assert xs.ndim == 1
    assert dy.shape == xs.shape
    k = int(used.get("k", 1)) if name == "maxout" else 1
    assert y.shape == (xs.size // k,)
    assert np.isfinite(y).all()
    assert np.isfinite(dy).all()


finite_points = hnp.arrays(
    np.float64,
    st.integers(1, 64),
    elements=st.floats(-1e6, 1e6, allow_nan=False, width=64),
)


@FAST
@given(finite_points)
def test_evaluate_invariants(x: np.ndarray) -> None:
    order = np.sort(x)
    for name in ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu"):
        _, _, _, y, dy = activations.evaluate(name, order)
        # Monotone non-decreasing, with a non-negative derivative.
        assert (np.diff(y) >= -1e-12 * np.maximum(1, np.abs(y[1:]))).all(), name
        assert (dy >= 0).all(), name
    _, _, _, y, dy = activations.evaluate("sigmoid", x)
    assert ((y >= 0) & (y <= 1)).all()
    np.testing.assert_allclose(dy, y * (1 - y), atol=1e-15)
    _, _, _, y, _ = activations.evaluate("softmax", x)
    assert math.fsum(y) == pytest.approx(1, abs=1e-12)
    _, _, _, y, dy = activations.evaluate("relu", x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(dy, (x >= 0).astype(np.float64))


@FAST
@given(st.integers(1, 5), st.integers(1, 8), st.data())
def test_evaluate_maxout_groups(k: int, groups: int, data: st.DataObject) -> None:
    x = data.draw(
        hnp.arrays(np.float64, k * groups, elements=st.floats(-100, 100, width=64))
    )
    _, used, _, y, dy = activations.evaluate("maxout", x, {"k": k})
    assert used["k"] == k
    np.testing.assert_array_equal(y, x.reshape(groups, k).max(axis=1))
    # dy marks exactly one arg-max per group.
    np.testing.assert_array_equal(dy.reshape(groups, k).sum(axis=1), np.ones(groups))
    assert set(np.unique(dy)) <= {0.0, 1.0}
