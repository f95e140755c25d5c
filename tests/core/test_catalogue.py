"""Tests of core.catalogue: the Activation records, lookup and evaluate()."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import activations as act
from core import catalogue
from core.errors import InputError, UnknownActivationError
from tests.core.conftest import NAMES
from tests.core.strategies import json_values

FAST = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the records -------------------------------------------------------------------------


def test_names_in_api_order() -> None:
    assert catalogue.names() == NAMES
    assert list(catalogue.ACTIVATIONS) == NAMES
    assert all(catalogue.ACTIVATIONS[n].name == n for n in NAMES)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("identity", {}),
        ("step", {}),
        ("sigmoid", {}),
        ("relu", {}),
        ("leaky_relu", {"alpha": 0.01}),
        ("prelu", {"alpha": 0.25}),
        ("elu", {"alpha": 1.0}),
        ("maxout", {"k": 2}),
        ("softmax", {}),
        ("gelu", {}),
    ],
)
def test_default_params(name: str, params: dict[str, float]) -> None:
    assert dict(catalogue.get(name).params) == params


@pytest.mark.parametrize("name", NAMES)
def test_entries_are_documented(name: str) -> None:
    entry = catalogue.get(name)
    assert "=" in entry.formula
    sentences = entry.notes.replace("et al.", "et al").split(". ")
    assert 2 <= len(sentences) <= 4
    assert entry.notes.endswith(".")
    assert entry.f is getattr(act, entry.name)
    assert entry.df is getattr(act, f"{entry.name}_grad")


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("sigmoid", ["vanishing", "0.25", "zero-centred"]),
        ("relu", ["dying"]),
        ("leaky_relu", ["die"]),
        ("prelu", ["learned", "Leaky ReLU"]),
        ("elu", ["dying"]),
        ("softmax", ["output layer", "constant"]),
        ("step", ["gradient"]),
        ("gelu", ["transformers"]),
        ("softplus", ["smooth", "ReLU"]),
    ],
)
def test_notes_cover_the_key_points(topic: str, words: list[str]) -> None:
    notes = catalogue.get(topic).notes
    for word in words:
        assert word in notes


def test_registry_is_immutable() -> None:
    entry = catalogue.get("elu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.params["alpha"] = 3.0  # type: ignore[index]
    with pytest.raises(TypeError):
        catalogue.ACTIVATIONS["x"] = entry  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("relu", "relu"),
        ("ReLU", "relu"),
        ("  Sigmoid\n", "sigmoid"),
        ("linear", "identity"),
        ("LINEAR", "identity"),
        ("swish", "silu"),
        (" Swish ", "silu"),
        ("LEAKY_RELU", "leaky_relu"),
    ],
)
def test_get_resolves_aliases_and_case(query: str, name: str) -> None:
    assert catalogue.get(query).name == name


@pytest.mark.parametrize(
    "query", ["", "relu6", "leaky relu", "soft_max", "sigmoid_grad"]
)
def test_unknown_name_lists_valid_names(query: str) -> None:
    with pytest.raises(UnknownActivationError) as info:
        catalogue.get(query)
    assert info.value.name == query
    assert info.value.valid == NAMES
    for name in NAMES:
        assert name in info.value.message
    with pytest.raises(UnknownActivationError):
        catalogue.evaluate(query, [0.0])


# --- evaluate -------------------------------------------------------------------------


def test_evaluate_returns_float64_points_and_values() -> None:
    entry, params, x, y, dy = catalogue.evaluate(
        "Leaky_ReLU", [-2, 0, 3], {"alpha": 0.1}
    )
    assert entry is catalogue.ACTIVATIONS["leaky_relu"]
    assert params == {"alpha": 0.1}
    for arr in (x, y, dy):
        assert arr.dtype == np.float64
        assert arr.shape == (3,)
    np.testing.assert_array_equal(x, [-2.0, 0.0, 3.0])
    np.testing.assert_allclose(y, [-0.2, 0.0, 3.0])
    np.testing.assert_array_equal(dy, [0.1, 1.0, 1.0])


def test_evaluate_merges_defaults_and_copies_x() -> None:
    source = np.array([-1.0, 1.0])
    _, params, x, _, _ = catalogue.evaluate("elu", source)
    assert params == {"alpha": 1.0}
    x[0] = 99.0
    assert source[0] == -1.0
    _, params, _, _, _ = catalogue.evaluate("elu", source, {})
    assert params == {"alpha": 1.0}


def test_evaluate_maxout_shapes_and_integer_k() -> None:
    _, params, x, y, dy = catalogue.evaluate(
        "maxout", [1.0, 3.0, 2.0, 0.0, 5.0, 4.0], {"k": 3.0}
    )
    assert params == {"k": 3}
    assert isinstance(params["k"], int)
    assert (x.shape, y.shape, dy.shape) == ((6,), (2,), (6,))
    np.testing.assert_array_equal(y, [3.0, 5.0])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("relu", {"alpha": 0.1}, "unknown parameter.*alpha.*valid parameters: none"),
        ("elu", {"beta": 1.0}, "unknown parameter.*beta.*valid parameters: alpha"),
        ("maxout", {"alpha": 1.0}, "valid parameters: k"),
        ("elu", {"alpha": math.nan}, "alpha must be finite"),
        ("leaky_relu", {"alpha": math.inf}, "alpha must be finite"),
        ("prelu", {"alpha": -math.inf}, "alpha must be finite"),
        ("elu", {"alpha": "1"}, "alpha must be a number"),
        ("elu", {"alpha": True}, "alpha must be a number"),
        ("maxout", {"k": 0}, "k must be an integer >= 1"),
        ("maxout", {"k": 2.5}, "k must be an integer >= 1"),
        ("maxout", {"k": math.nan}, "k must be an integer >= 1"),
        ("elu", {"alpha": 10**400}, "alpha is too large for a float"),
        ("maxout", {"k": 10**400}, "multiple of k=an integer beyond 64 bits"),
        ("maxout", {"k": -(10**5000)}, "k must be an integer >= 1"),
        ("maxout", {"k": [2]}, "k must be an integer >= 1"),
        ("elu", {"alpha": {"a": 1}}, "alpha must be a number"),
    ],
)
def test_evaluate_rejects_bad_params(
    name: str, params: dict[str, float], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        catalogue.evaluate(name, [0.0, 1.0], params)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ([0.0, math.nan], r"x must be finite \(x\[1\]"),
        ([math.inf], "x must be finite"),
        ([-math.inf, 0.0], "x must be finite"),
        ([], "x must not be empty"),
        ([[1.0, 2.0]], "x must be 1-D"),
        (1.0, "x must be 1-D"),
        (["a"], "x must be a 1-D sequence of real numbers"),
        ([[1.0], [2.0, 3.0]], "x must be a 1-D sequence of real numbers"),
        ([10**400], "x must be a 1-D sequence of real numbers"),
        ([1j], "real numbers, got complex128"),
        (["1.5"], "real numbers, got <U3"),
    ],
)
def test_evaluate_rejects_bad_x(x: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        catalogue.evaluate("sigmoid", x)  # type: ignore[arg-type]


def test_evaluate_rejects_a_result_that_overflows() -> None:
    with pytest.raises(InputError, match="overflows float64"):
        catalogue.evaluate("leaky_relu", [-1e300, 1.0], {"alpha": 1e300})


def test_evaluate_has_no_point_limit() -> None:
    _, _, x, y, _ = catalogue.evaluate("gelu", np.linspace(-5, 5, 100_001))
    assert x.size == y.size == 100_001


# --- properties: any decoded JSON value, as GET/POST /activations pass it ----


_PARAM = st.one_of(
    st.floats(),
    st.integers(-5, 5),
    st.integers(min_value=2**1000, max_value=2**1100),
    st.just(10**400),
    st.lists(st.integers(1, 3), max_size=2),
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
        activation, used, xs, y, dy = catalogue.evaluate(name, x, params)
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
        _, _, _, y, dy = catalogue.evaluate(name, order)
        # Monotone non-decreasing, with a non-negative derivative.
        assert (np.diff(y) >= -1e-12 * np.maximum(1, np.abs(y[1:]))).all(), name
        assert (dy >= 0).all(), name
    _, _, _, y, dy = catalogue.evaluate("sigmoid", x)
    assert ((y >= 0) & (y <= 1)).all()
    np.testing.assert_allclose(dy, y * (1 - y), atol=1e-15)
    _, _, _, y, _ = catalogue.evaluate("softmax", x)
    assert math.fsum(y) == pytest.approx(1, abs=1e-12)
    _, _, _, y, dy = catalogue.evaluate("relu", x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(dy, (x >= 0).astype(np.float64))


@FAST
@given(st.integers(1, 5), st.integers(1, 8), st.data())
def test_evaluate_maxout_groups(k: int, groups: int, data: st.DataObject) -> None:
    x = data.draw(
        hnp.arrays(np.float64, k * groups, elements=st.floats(-100, 100, width=64))
    )
    _, used, _, y, dy = catalogue.evaluate("maxout", x, {"k": k})
    assert used["k"] == k
    np.testing.assert_array_equal(y, x.reshape(groups, k).max(axis=1))
    # dy marks exactly one arg-max per group.
    np.testing.assert_array_equal(dy.reshape(groups, k).sum(axis=1), np.ones(groups))
    assert set(np.unique(dy)) <= {0.0, 1.0}
