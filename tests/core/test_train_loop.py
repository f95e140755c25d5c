"""Tests of core.train.loop: a short training run, reproducibility, early stopping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.errors import DataError
from core.train.loop import TrainConfig, train
from core.weights import BOOK_KEYS
from tests.core.conftest import BOOK_SHAPES, synthetic_digits

SHORT = TrainConfig(epochs=8, batch_size=25, lr=1e-2, val_size=50, warmup_epochs=1)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_short_training_lowers_the_loss_and_is_bit_reproducible(
    activation: str,
) -> None:
    images, labels = synthetic_digits(300)
    config = replace(SHORT, hidden_activation=activation)
    first = train(images, labels, config)
    second = train(images, labels, config)
    losses = [r.train_loss for r in first.history]
    assert losses[-1] < losses[0] * 0.7
    assert first.val_accuracy > 0.5
    assert first.params.keys() == set(BOOK_KEYS)
    for key in BOOK_KEYS:
        assert first.params[key].dtype == np.float32
        assert first.params[key].shape == BOOK_SHAPES[key]
        np.testing.assert_array_equal(first.params[key], second.params[key])
    other = train(images, labels, replace(config, seed=SHORT.seed + 1))
    assert not np.array_equal(other.params["W1"], first.params["W1"])


def test_early_stopping_stops_at_patience() -> None:
    # Labels unrelated to the images: the net can only memorise the training
    # split, so the validation loss soon stops improving.
    images, _ = synthetic_digits(60)
    labels = np.random.default_rng(3).permutation(np.arange(60) % 10).astype(np.uint8)
    config = replace(SHORT, epochs=200, patience=5, lr=0.05, augment=None, val_size=20)
    result = train(images, labels, config)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 5
    assert result.epochs_run < 200


def test_images_must_be_28_by_28() -> None:
    images, labels = synthetic_digits(20)
    with pytest.raises(DataError, match=r"expected images \(n, 28, 28\)"):
        train(images[:, :27], labels, SHORT)
