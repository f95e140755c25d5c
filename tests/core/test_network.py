from __future__ import annotations

import threading

import numpy as np
import pytest

from core.errors import InputError, WeightsError
from core.network import Network
from tests.conftest import random_network

BOOK_EXAMPLE = {
    "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
    "b1": [0.1, 0.2, 0.3],
    "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
    "b2": [0.1, 0.2],
    "W3": [[0.1, 0.3], [0.2, 0.4]],
    "b3": [0.1, 0.2],
}


def naive_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """Per-sample, per-unit float64 reference written from the formulas."""
    rows = []
    for sample in np.atleast_2d(x).astype(np.float64):
        a = list(sample)
        layers = list(zip(network.weights, network.biases, strict=True))
        for i, (w, b) in enumerate(layers):
            z = [
                sum(a[k] * float(w[k, j]) for k in range(len(a))) + float(b[j])
                for j in range(w.shape[1])
            ]
            if i < len(layers) - 1:
                a = [1.0 / (1.0 + np.exp(-v)) for v in z]
            else:
                m = max(z)
                e = [np.exp(v - m) for v in z]
                a = [v / sum(e) for v in e]
        rows.append(a)
    return np.array(rows)


def test_book_example_network_section_3_4_3() -> None:
    network = Network.from_params(BOOK_EXAMPLE, output="identity")
    y = network.forward(np.array([1.0, 0.5]))
    np.testing.assert_allclose(y, [[0.31682708, 0.69627909]], rtol=1e-6)
    assert network.layer_sizes == (2, 3, 2, 2)


def test_forward_matches_naive_reference(
    tiny_network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((5, 784), dtype=np.float32)
    np.testing.assert_allclose(
        tiny_network.forward(x), naive_forward(tiny_network, x), atol=2e-6
    )


def test_batch_equals_one_by_one(
    tiny_network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((3000, 784), dtype=np.float32)  # more than one chunk
    batch = tiny_network.forward(x)
    singles = np.concatenate([tiny_network.forward(row) for row in x[::97]])
    np.testing.assert_allclose(batch[::97], singles, rtol=1e-5, atol=1e-7)
    assert batch.dtype == np.float32
    assert batch.shape == (3000, 10)


def test_probabilities_sum_to_one_and_predict_is_argmax(
    tiny_network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((50, 784), dtype=np.float32)
    p = tiny_network.forward(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p >= 0).all()
    np.testing.assert_array_equal(tiny_network.predict(x), p.argmax(axis=1))


def test_extreme_inputs_stay_finite(tiny_network: Network) -> None:
    x = np.full((2, 784), 1e4, dtype=np.float32)
    x[1] = -1e4
    assert np.isfinite(tiny_network.forward(x)).all()


def test_single_vector_gives_one_row(tiny_network: Network) -> None:
    assert tiny_network.forward(np.zeros(784)).shape == (1, 10)
    assert tiny_network.predict(np.zeros(784)).shape == (1,)


@pytest.mark.parametrize("shape", [(783,), (2, 785), (2, 28, 28), ()])
def test_wrong_input_shape_is_input_error(
    tiny_network: Network, shape: tuple[int, ...]
) -> None:
    with pytest.raises(InputError, match="expected shape"):
        tiny_network.forward(np.zeros(shape))


def test_arrays_are_read_only_and_copied(rng: np.random.Generator) -> None:
    w = rng.random((784, 10), dtype=np.float32)
    network = Network(weights=(w,), biases=(np.zeros(10),))
    w[:] = 0  # the caller's array is not shared
    assert network.weights[0].any()
    with pytest.raises(ValueError, match="read-only"):
        network.weights[0][0, 0] = 1.0
    with pytest.raises(AttributeError):
        network.hidden_activation = "relu"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"W2": np.zeros((49, 100))}, "does not chain"),
        ({"b1": np.zeros(49)}, "b1 must have shape"),
        ({"W1": np.zeros(784)}, "must be 2-D"),
        ({"b3": np.array([np.nan] * 10)}, "NaN"),
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
    with pytest.raises(WeightsError, match="unsupported hidden activation"):
        Network.from_params(BOOK_EXAMPLE, hidden_activation="swish")


@pytest.mark.parametrize("activation", ["relu", "tanh", "identity", "step"])
def test_other_hidden_activations(activation: str) -> None:
    network = Network.from_params(
        BOOK_EXAMPLE, hidden_activation=activation, output="identity"
    )
    x = np.array([1.0, -0.5])
    f = {
        "relu": lambda a: np.maximum(a, 0),
        "tanh": np.tanh,
        "identity": lambda a: a,
        "step": lambda a: (a > 0).astype(float),
    }[activation]
    a = x
    for i in (1, 2):
        a = f(a @ np.array(BOOK_EXAMPLE[f"W{i}"]) + BOOK_EXAMPLE[f"b{i}"])
    expected = a @ np.array(BOOK_EXAMPLE["W3"]) + BOOK_EXAMPLE["b3"]
    np.testing.assert_allclose(network.forward(x)[0], expected, rtol=1e-6)


def test_params_round_trip_and_counts(tiny_network: Network) -> None:
    again = Network.from_params(tiny_network.params())
    for a, b in zip(
        again.weights + again.biases,
        tiny_network.weights + tiny_network.biases,
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
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
