from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from core.explain import explain
from core.network import Network
from tests.conftest import random_network


def central_differences(
    network: Network, x: np.ndarray, target: int, eps: float = 1e-5
) -> np.ndarray:
    """d y_target / d x by perturbing one input at a time (all 784 in one batch)."""
    steps = np.eye(x.size) * eps
    up = explain(network, x + steps).probabilities[:, target]
    down = explain(network, x - steps).probabilities[:, target]
    return (up - down) / (2 * eps)


def test_shapes_and_consistency_with_forward(tiny_network, rng) -> None:
    x = rng.random((3, 784))
    result = explain(tiny_network, x)
    assert [h.shape for h in result.hidden] == [(3, 50), (3, 100)]
    assert result.logits.shape == (3, 10)
    assert result.probabilities.shape == (3, 10)
    assert result.saliency.shape == (3, 784)
    assert result.saliency.dtype == np.float64
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-12)
    # The float64 pass agrees with the service's float32 forward pass.
    np.testing.assert_allclose(
        result.probabilities, tiny_network.forward(x), rtol=0, atol=1e-5
    )
    np.testing.assert_array_equal(result.labels, tiny_network.predict(x))
    np.testing.assert_array_equal(result.targets, result.labels)
    # Sigmoid hidden units are in (0, 1).
    assert all(((h > 0) & (h < 1)).all() for h in result.hidden)


def test_single_input_gives_one_row(tiny_network, rng) -> None:
    x = rng.random(784)
    single = explain(tiny_network, x)
    batch = explain(tiny_network, np.stack([x, rng.random(784)]))
    assert single.saliency.shape == (1, 784)
    np.testing.assert_allclose(single.saliency[0], batch.saliency[0], atol=1e-15)
    np.testing.assert_allclose(single.hidden[1][0], batch.hidden[1][0])


@pytest.mark.parametrize("target", [None, 0, 3, 9])
def test_saliency_matches_central_finite_differences(tiny_network, rng, target):
    x = rng.random(784)
    result = explain(tiny_network, x, target)
    t = int(result.targets[0])
    if target is not None:
        assert t == target
    numeric = central_differences(tiny_network, x, t)
    analytic = result.saliency[0]
    assert np.abs(analytic).max() > 1e-4  # a gradient worth comparing
    np.testing.assert_allclose(
        analytic, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max()
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_other_hidden_activations_match_finite_differences(activation, rng) -> None:
    network = random_network(rng, (784, 20, 30, 10), activation)
    x = rng.random(784)
    result = explain(network, x)
    np.testing.assert_allclose(
        result.probabilities, network.forward(x), rtol=0, atol=1e-5
    )
    numeric = central_differences(network, x, int(result.targets[0]))
    np.testing.assert_allclose(
        result.saliency[0], numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max()
    )


def test_relu_units_below_zero_pass_no_gradient(rng) -> None:
    # Biases of -100 switch every first-layer unit off: nothing reaches x.
    base = random_network(rng, (784, 8, 6, 10), "relu")
    params = {**base.params(), "b1": np.full(8, -100.0, np.float32)}
    network = Network.from_params(params, "relu")
    result = explain(network, rng.random(784))
    assert not result.hidden[0].any()
    assert not result.saliency.any()


def test_book_weights_on_a_vertical_stroke(book_weights) -> None:
    from core.weights import load_network

    network = load_network(book_weights)
    x = np.zeros((28, 28))
    x[4:24, 13:15] = 1.0
    result = explain(network, x.ravel())
    assert result.labels.tolist() == [1]
    numeric = central_differences(network, x.ravel(), 1)
    np.testing.assert_allclose(
        result.saliency[0], numeric, rtol=1e-4, atol=1e-6 * np.abs(numeric).max()
    )


@pytest.mark.parametrize(
    ("x", "target", "message"),
    [
        (np.zeros(783), None, "expected shape"),
        (np.zeros((2, 2, 196)), None, "expected shape"),
        (np.full(784, np.nan), None, "non-finite"),
        (np.zeros(784), 10, "target must be in 0..9"),
        (np.zeros(784), -1, "target must be in 0..9"),
        (np.zeros(784), 1.5, "class index"),
        (np.zeros(784), True, "class index"),
    ],
)
def test_rejects_bad_input(tiny_network, x, target, message) -> None:
    with pytest.raises(InputError, match=message):
        explain(tiny_network, x, target)
