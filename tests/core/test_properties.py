"""Property tests of what the HTTP layer hands to ``core``: any decoded JSON value.

The routes pass client input straight to ``core.activations.evaluate`` (the
network's properties are in ``test_network.py``, ``core.batch``'s in
``test_batch.py``). Whatever a client
sends, these must either give an answer of the documented shape and range or
raise ``InputError`` (a 4xx); any other exception would be a 500.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import activations
from core.errors import InputError
from tests.core.strategies import json_values

FAST = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

unit = st.floats(0, 1, width=32)


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
