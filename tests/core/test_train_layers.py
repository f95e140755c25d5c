"""Tests of core.train.layers: backprop against central differences, the loss, AdamW."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core import activations
from core.network import Network
from core.train.layers import AdamW, TrainNet, init_params


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_backprop_matches_numerical_gradient(
    label_smoothing: float, activation: str
) -> None:
    rng = np.random.default_rng(1)
    params = init_params((6, 5, 4, 3), rng, np.float64, activation)
    for key in params:
        params[key] += rng.normal(0, 0.3, params[key].shape)  # non-zero biases
    net = TrainNet(params, label_smoothing, activation)
    x = rng.random((7, 6))
    t = rng.integers(0, 3, 7)
    _, backprop = net.gradient(x, t)
    numerical = net.numerical_gradient(x, t)
    for key in params:
        a, b = backprop[key], numerical[key]
        assert a.shape == params[key].shape
        relative = np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))
        assert relative < 1e-6, (key, relative)


def test_softmax_with_loss_is_stable_for_huge_logits() -> None:
    net = TrainNet(init_params((2, 2, 2), np.random.default_rng(0), np.float64))
    loss = net.last.forward(np.array([[1000.0, -1000.0], [0.0, 0.0]]), np.array([0, 1]))
    assert np.isfinite(loss)
    assert loss == pytest.approx(np.log(2) / 2)


def test_adamw_decays_weights_but_not_biases() -> None:
    params: dict[str, Any] = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    AdamW(params).step(
        {"W1": np.zeros((2, 2)), "b1": np.zeros(2)}, lr=0.1, weight_decay=1.0
    )
    np.testing.assert_allclose(params["W1"], 0.9)
    np.testing.assert_allclose(params["b1"], 1.0)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_the_trained_net_is_the_served_network(activation: str) -> None:
    # Same maths in training and serving: the training net's softmax over its
    # logits is the served network's book-style forward pass.
    rng = np.random.default_rng(2)
    params = init_params((784, 50, 100, 10), rng, np.float32, activation)
    params = {
        k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in params.items()
    }
    x = rng.random((6, 784), dtype=np.float32)
    trained = activations.softmax(
        TrainNet(params, hidden_activation=activation).logits(x)
    )
    served = Network.from_params(params, activation)
    np.testing.assert_allclose(trained, served.forward_reference(x), rtol=1e-6)
    np.testing.assert_allclose(trained, served.forward(x), atol=2e-6)


@pytest.mark.parametrize(
    ("activation", "gain"), [("sigmoid", 1.0), ("tanh", 1.0), ("relu", 2.0)]
)
def test_init_scales_for_the_activation(activation: str, gain: float) -> None:
    # Xavier for the saturating ones, He for relu (the book's chapter 6).
    params = init_params(
        (400, 300, 10), np.random.default_rng(3), np.float64, activation
    )
    assert params["W1"].std() == pytest.approx(np.sqrt(gain / 400), rel=0.02)
    assert not params["b1"].any()
