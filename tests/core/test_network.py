"""Tests of core.network: the book's forward pass, the fast path, their agreement."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import network as network_module
from core.errors import InputError, WeightsError
from core.mnist import to_float
from core.network import (
    CHUNK_ROWS,
    HIDDEN_ACTIVATIONS,
    IMAGE_SIDE,
    INPUT_SIZE,
    NUM_CLASSES,
    Network,
)
from tests.conftest import random_network

ACTIVATIONS = list(HIDDEN_ACTIVATIONS)
FAST = settings(max_examples=40, deadline=None, database=None)

# Section 3.4.3 of the book: a 2-3-2-2 network and its input [1.0, 0.5].
BOOK_EXAMPLE = {
    "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
    "b1": [0.1, 0.2, 0.3],
    "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
    "b2": [0.1, 0.2],
    "W3": [[0.1, 0.3], [0.2, 0.4]],
    "b3": [0.1, 0.2],
}


def naive_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """Per sample and per unit, in float64 Python arithmetic, from the formulas."""
    f = {
        "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
        "relu": lambda v: max(v, 0.0),
        "tanh": math.tanh,
    }[network.hidden_activation]
    layers = [
        (network.w1.tolist(), network.b1.tolist()),
        (network.w2.tolist(), network.b2.tolist()),
        (network.w3.tolist(), network.b3.tolist()),
    ]
    rows = []
    for sample in np.atleast_2d(x).tolist():
        a = sample
        for i, (w, b) in enumerate(layers):
            z = [
                math.fsum(a[k] * w[k][j] for k in range(len(a))) + b[j]
                for j in range(len(b))
            ]
            a = [f(v) for v in z] if i < 2 else z
        top = max(a)
        e = [math.exp(v - top) for v in a]
        rows.append([v / math.fsum(e) for v in e])
    return np.array(rows)


def test_constants_spell_one_fact_each() -> None:
    assert (IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES) == (28, 784, 10)
    assert network_module.IMAGE_SHAPE == (IMAGE_SIDE, IMAGE_SIDE)


def test_book_example_section_3_4_3() -> None:
    # The book's identity output is [0.31682708, 0.69627909]; ours is its softmax.
    network = Network.from_params(BOOK_EXAMPLE)
    logits = np.array([0.31682708, 0.69627909])
    expected = np.exp(logits) / np.exp(logits).sum()
    for y in (network.forward([1.0, 0.5]), network.forward_reference([1.0, 0.5])):
        np.testing.assert_allclose(y, [expected], rtol=1e-6)
    assert network.layer_sizes == (2, 3, 2, 2)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_both_passes_match_a_naive_reference(
    activation: str, rng: np.random.Generator
) -> None:
    network = random_network(rng, hidden_activation=activation)
    x = rng.random((5, 784), dtype=np.float32)
    expected = naive_forward(network, x)
    np.testing.assert_allclose(network.forward_reference(x), expected, atol=1e-6)
    np.testing.assert_allclose(network.forward(x), expected, atol=2e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fast_path_equals_reference_across_chunks(
    activation: str, rng: np.random.Generator
) -> None:
    # More rows than one chunk: the chunked loop, its last short chunk included.
    network = random_network(rng, hidden_activation=activation)
    x = rng.random((CHUNK_ROWS + 40, 784), dtype=np.float32)
    fast = network.forward(x)
    assert fast.dtype == np.float32
    assert fast.shape == (CHUNK_ROWS + 40, 10)
    np.testing.assert_allclose(fast, network.forward_reference(x), atol=2e-6)
    small = np.concatenate([network.forward(x[i : i + 8]) for i in range(0, 64, 8)])
    # BLAS may sum in another order for another row count: not bit-equal.
    np.testing.assert_allclose(small, fast[:64], rtol=1e-6, atol=1e-7)


def test_sigmoid_fold_is_the_same_function(tiny_network: Network) -> None:
    # tanh(a / 2) through the folded weights, mapped back by (t + 1) / 2, is
    # the sigmoid of the first layer's pre-activation.
    (v1, c1), _, _ = tiny_network._fast.layers
    x = np.random.default_rng(1).random((4, 784))
    a1 = x @ tiny_network.w1.astype(np.float64) + tiny_network.b1
    t1 = np.tanh(x @ v1.astype(np.float64) + c1)
    np.testing.assert_allclose((t1 + 1) / 2, 1 / (1 + np.exp(-a1)), atol=1e-6)


@pytest.mark.parametrize(
    ("activation", "unshifted"), [("sigmoid", True), ("tanh", True), ("relu", False)]
)
def test_softmax_skips_the_max_only_when_the_logits_are_bounded(
    activation: str, unshifted: bool, rng: np.random.Generator
) -> None:
    network = random_network(rng, hidden_activation=activation)
    assert network._fast.unshifted is unshifted
    # Large weights: bounded hidden outputs no longer bound the logits.
    big = {**network.params(), "W3": network.w3 * 100}
    assert Network.from_params(big, activation)._fast.unshifted is False


def test_batch_equals_one_by_one(
    tiny_network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((300, 784), dtype=np.float32)
    batch = tiny_network.forward(x)
    singles = np.concatenate([tiny_network.forward(row) for row in x[::37]])
    np.testing.assert_allclose(batch[::37], singles, rtol=1e-5, atol=1e-7)


def test_probabilities_sum_to_one_and_predict_is_argmax(
    tiny_network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((50, 784), dtype=np.float32)
    p = tiny_network.forward(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p >= 0).all()
    np.testing.assert_array_equal(tiny_network.predict(x), p.argmax(axis=1))


@FAST
@given(st.sampled_from(ACTIVATIONS), st.integers(1, 12), st.data())
def test_forward_gives_probability_rows(
    activation: str, n: int, data: st.DataObject
) -> None:
    network = random_network(np.random.default_rng(0), hidden_activation=activation)
    unit = st.floats(0, 1, width=32)
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
    st.sampled_from(ACTIVATIONS),
    hnp.arrays(
        np.float32, (3, 784), elements=st.floats(-(2.0**100), 2.0**100, width=32)
    ),
)
def test_far_outside_the_input_range_stays_finite(
    activation: str, x: np.ndarray
) -> None:
    # The batch layer keeps inputs in [0, 1]; the network itself must still
    # not blow up, warn (warnings are errors here) or lose the row sums.
    network = random_network(np.random.default_rng(0), hidden_activation=activation)
    for p in (network.forward(x), network.forward_reference(x)):
        assert np.isfinite(p).all()
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_single_vector_gives_one_row(tiny_network: Network) -> None:
    assert tiny_network.forward(np.zeros(784)).shape == (1, 10)
    assert tiny_network.forward_reference(np.zeros(784)).shape == (1, 10)
    assert tiny_network.predict(np.zeros(784)).shape == (1,)


@pytest.mark.parametrize("shape", [(783,), (2, 785), (2, 28, 28), ()])
def test_wrong_input_shape_is_input_error(
    tiny_network: Network, shape: tuple[int, ...]
) -> None:
    for forward in (tiny_network.forward, tiny_network.forward_reference):
        with pytest.raises(InputError, match="expected shape"):
            forward(np.zeros(shape))


def test_arrays_are_read_only_copies(rng: np.random.Generator) -> None:
    params = random_network(rng).params()
    w1 = np.array(params["W1"])
    network = Network.from_params({**params, "W1": w1})
    w1[:] = 0  # the caller's array is not shared
    assert network.w1.any()
    assert all(v.dtype == np.float32 for v in network.params().values())
    with pytest.raises(ValueError, match="read-only"):
        network.w1[0, 0] = 1.0
    with pytest.raises(AttributeError):
        network.hidden_activation = "relu"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"W2": np.zeros((49, 100))}, "W2 has shape"),
        ({"b1": np.zeros(49)}, "b1 has shape"),
        ({"W1": np.zeros(784)}, "W1 has shape"),
        ({"b3": np.array([np.nan] * 10)}, "NaN"),
        ({"W3": np.full((100, 10), np.inf)}, "infinite"),
    ],
)
def test_bad_parameters_are_refused(
    tiny_network: Network, change: dict[str, np.ndarray], message: str
) -> None:
    params = {**tiny_network.params(), **change}
    with pytest.raises(WeightsError, match=message):
        Network.from_params(params)


def test_missing_key_and_unknown_activation() -> None:
    with pytest.raises(WeightsError, match="missing key"):
        Network.from_params({"W1": np.zeros((2, 2))})
    # Only what a weights file may record: not identity, step or swish.
    for name in ("swish", "identity", "step"):
        with pytest.raises(WeightsError, match="unsupported hidden activation"):
            Network.from_params(BOOK_EXAMPLE, hidden_activation=name)


def test_params_round_trip_and_counts(tiny_network: Network) -> None:
    again = Network.from_params(tiny_network.params())
    for key, value in again.params().items():
        np.testing.assert_array_equal(value, tiny_network.params()[key])
    assert list(again.params()) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert tiny_network.layer_sizes == (784, 50, 100, 10)
    assert (tiny_network.input_size, tiny_network.output_size) == (784, 10)
    assert (
        tiny_network.parameter_count
        == 784 * 50 + 50 + 50 * 100 + 100 + 100 * 10 + 10
        == 45360
    )


def test_thread_safe(rng: np.random.Generator) -> None:
    network = random_network(rng)
    x = rng.random((64, 784), dtype=np.float32)
    expected = network.forward(x)
    results: list[bool] = []

    def work() -> None:
        results.extend(np.array_equal(network.forward(x), expected) for _ in range(50))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert all(results)


def test_book_weights_give_9352_through_both_passes(
    book_weights, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    from core.weights import load_network

    network = load_network(book_weights)
    images, labels = mnist_test
    x = to_float(images)
    fast, reference = network.forward(x), network.forward_reference(x)
    assert int((fast.argmax(axis=1) == labels).sum()) == 9352
    assert int((reference.argmax(axis=1) == labels).sum()) == 9352
    np.testing.assert_allclose(fast, reference, atol=5e-6)
