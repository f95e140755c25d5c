"""The training loop: hyper-parameters, schedule, weight average, early stopping.

On top of the book: Adam with decoupled weight decay, a warm-up + cosine
learning rate, an exponential moving average of the weights (the shipped
weights are that average), random affine + elastic distortions of every image
in every epoch (:mod:`core.augment`), and early stopping on a validation split
of the *training* data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.augment import AugmentConfig, distort
from core.errors import DataError
from core.mnist import to_float
from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES
from core.train.data import stratified_split
from core.train.layers import AdamW, Array, Labels, Params, TrainNet, init_params


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the recipe of the shipped weights.

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training split.
    batch_size : int
    lr, lr_min : float
        Peak and final learning rate of the cosine schedule.
    warmup_epochs : int
        Linear warm-up from 0 to ``lr`` before the cosine decay.
    weight_decay : float
        Decoupled decay per unit learning rate, weight matrices only.
    ema_decay : float
        Per-step decay of the weight average that is validated and shipped.
    label_smoothing : float
    val_size : int
        Training images held out, stratified, for validation/early stopping.
    patience : int
        Stop after this many epochs without a better validation score.
    seed : int
        Seeds every random choice: split, initialisation, order, distortions.
    hidden_sizes : tuple of two int
        Units of the two hidden layers.
    hidden_activation : {"sigmoid", "relu", "tanh"}
        Recorded with the weights, which serve with it.
    augment : AugmentConfig or None
        Distortions applied afresh every epoch; None trains on the raw images.
    """

    epochs: int = 1000
    batch_size: int = 100
    lr: float = 3e-3
    lr_min: float = 1e-5
    warmup_epochs: int = 5
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    label_smoothing: float = 0.0
    val_size: int = 500
    patience: int = 500
    seed: int = 20240601
    hidden_sizes: tuple[int, int] = (50, 100)
    hidden_activation: str = "sigmoid"
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)


@dataclass(frozen=True, slots=True)
class EpochReport:
    """What one epoch did, for progress display and history."""

    epoch: int
    epochs: int
    lr: float
    train_loss: float
    val_loss: float
    val_accuracy: float
    best_val_accuracy: float
    best_epoch: int
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The trained (averaged) weights and how training went.

    Attributes
    ----------
    params : dict of str to ndarray, float32
        Book keys ``W1 ... b3``: the weight average at the best epoch.
    best_epoch, epochs_run : int
    val_accuracy, val_loss : float
        Of ``params`` on the validation split (NaN without one).
    stopped_early : bool
    history : list of EpochReport
    """

    params: dict[str, NDArray[np.float32]]
    best_epoch: int
    epochs_run: int
    val_accuracy: float
    val_loss: float
    stopped_early: bool
    history: list[EpochReport]


def _lr_at(step: int, total: int, warmup: int, config: TrainConfig) -> float:
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress)))
    return float(config.lr_min + (config.lr - config.lr_min) * cosine)


def _score(
    params: Params, x: Array, t: Labels, hidden_activation: str
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``params`` on ``(x, t)``."""
    net = TrainNet(params, hidden_activation=hidden_activation)
    logits = net.logits(x)
    loss = net.last.forward(logits, t)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == t))
    return accuracy, loss


def train(
    images: NDArray[np.uint8],
    labels: NDArray[np.integer[Any]],
    config: TrainConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainResult:
    """Train the 784-h1-h2-10 net with softmax-with-loss on MNIST-like images.

    Parameters
    ----------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), int in 0..9
    config : TrainConfig
    on_epoch : callable, optional
        Called with an :class:`EpochReport` after every epoch.

    Returns
    -------
    TrainResult

    Notes
    -----
    One ``numpy.random.Generator`` seeded with ``config.seed`` drives every
    random choice, so with the same data, NumPy build and BLAS thread count
    two runs give bit-identical weights.
    """
    if (
        images.ndim != 3
        or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE)
        or labels.shape != images.shape[:1]
    ):
        raise DataError(
            f"expected images (n, 28, 28) and labels (n,), "
            f"got {images.shape} and {labels.shape}"
        )
    rng = np.random.default_rng(config.seed)
    t_all = labels.astype(np.intp)
    train_idx, val_idx = stratified_split(t_all, config.val_size, rng)
    base = images[train_idx].astype(np.float32) / np.float32(255.0)
    t_train = t_all[train_idx]
    x_val = to_float(images[val_idx])
    t_val = t_all[val_idx]

    sizes = (INPUT_SIZE, *config.hidden_sizes, NUM_CLASSES)
    params = init_params(sizes, rng, hidden_activation=config.hidden_activation)
    net = TrainNet(params, config.label_smoothing, config.hidden_activation)
    optimiser = AdamW(params)
    average = {key: p.copy() for key, p in params.items()}

    n = base.shape[0]
    steps_per_epoch = -(-n // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch
    best: dict[str, NDArray[np.float32]] = {k: v.copy() for k, v in average.items()}
    best_score = (-np.inf, -np.inf)
    best_epoch, best_acc, best_loss = 0, float("nan"), float("nan")
    history: list[EpochReport] = []
    step = 0
    start = time.perf_counter()
    stopped_early = False
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        batch_images = distort(base, rng, config.augment) if config.augment else base
        x_epoch = batch_images.reshape(n, INPUT_SIZE)
        order = rng.permutation(n)
        loss_sum = 0.0
        for first in range(0, n, config.batch_size):
            idx = order[first : first + config.batch_size]
            loss, grads = net.gradient(x_epoch[idx], t_train[idx])
            lr = _lr_at(step, total_steps, warmup_steps, config)
            optimiser.step(grads, lr, config.weight_decay)
            # Bias-corrected decay: early on the average follows the weights
            # closely instead of remembering the random initialisation.
            decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
            for key, p in params.items():
                avg = average[key]
                avg *= decay
                avg += (1.0 - decay) * p
            loss_sum += loss * idx.size
            step += 1

        if val_idx.size:
            val_acc, val_loss = _score(average, x_val, t_val, config.hidden_activation)
        else:
            val_acc, val_loss = float("nan"), float("nan")
        # Lower validation loss wins: on a few hundred images the loss moves
        # smoothly, while the accuracy jumps by whole images and would pick a
        # lucky epoch. Without a validation split the latest epoch wins.
        score = (-val_loss, val_acc) if val_idx.size else (float(epoch), 0.0)
        if score > best_score:
            best_score = score
            best = {k: v.astype(np.float32) for k, v in average.items()}
            best_epoch, best_acc, best_loss = epoch, val_acc, val_loss
        elapsed = time.perf_counter() - start
        report = EpochReport(
            epoch=epoch,
            epochs=config.epochs,
            lr=lr,
            train_loss=loss_sum / n,
            val_loss=val_loss,
            val_accuracy=val_acc,
            best_val_accuracy=best_acc,
            best_epoch=best_epoch,
            elapsed_s=elapsed,
            eta_s=elapsed / epoch * (config.epochs - epoch),
        )
        history.append(report)
        if on_epoch is not None:
            on_epoch(report)
        if epoch - best_epoch >= config.patience:
            stopped_early = True
            break
    return TrainResult(
        params=best,
        best_epoch=best_epoch,
        epochs_run=epoch,
        val_accuracy=best_acc,
        val_loss=best_loss,
        stopped_early=stopped_early,
        history=history,
    )
