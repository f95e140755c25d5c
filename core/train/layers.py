"""The layers of chapters 4-5, the multi-layer net built from them, and AdamW.

Each layer has ``forward`` and ``backward``; :class:`TrainNet` chains
``Affine -> Hidden -> ... -> Affine -> SoftmaxWithLoss`` and checks its
backpropagation against central differences (:meth:`TrainNet.numerical_gradient`).
The hidden activation and the softmax are those of :mod:`core.activations`, the
functions the served network and ``/activations`` use.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core import activations, catalogue
from core.errors import CoreError

Array = NDArray[np.floating[Any]]
Labels = NDArray[np.intp]
Params = dict[str, Array]


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


class Hidden:
    """A hidden activation, element-wise: ``z = f(a)``, ``dL/da = dL/dz * f'(a)``.

    Parameters
    ----------
    name : {"sigmoid", "relu", "tanh"}
        Any name of :mod:`core.catalogue` works; the network serves these three.
    """

    def __init__(self, name: str) -> None:
        entry = catalogue.get(name)
        self.f, self.df = entry.f, entry.df
        self.a: Array | None = None

    def forward(self, a: Array) -> Array:
        """Any shape; float32 stays float32."""
        self.a = a
        return self.f(a)

    def backward(self, dout: Array) -> Array:
        if self.a is None:
            raise CoreError("Hidden.backward called before forward")
        da: Array = dout * self.df(self.a)
        return da


class SoftmaxWithLoss:
    """Softmax and mean cross-entropy, optionally against smoothed labels.

    Parameters
    ----------
    label_smoothing : float
        Target ``1 - s + s / k`` for the true class and ``s / k`` elsewhere.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing
        self.y: Array | None = None
        self.target: Array | None = None

    def forward(self, x: Array, t: Labels) -> float:
        """Mean loss of logits ``x`` (n, k) against integer labels ``t`` (n,)."""
        n, k = x.shape
        # log(softmax) is finite where softmax itself underflows to 0.
        log_y = activations.log_softmax(x)
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
    hidden_activation: str = "sigmoid",
) -> Params:
    """Random weights scaled for the activation, and zero biases.

    Xavier (``1 / sqrt(n_in)``) for sigmoid and tanh, He (``sqrt(2 / n_in)``)
    for relu, as the book recommends in chapter 6.

    Returns
    -------
    dict of str to ndarray
        ``W1 (sizes[0], sizes[1])``, ``b1 (sizes[1],)``, ... in ``dtype``.
    """
    gain = 2.0 if hidden_activation == "relu" else 1.0
    params: Params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in / gain)
        params[f"W{i}"] = w.astype(dtype)
        params[f"b{i}"] = np.zeros(n_out, dtype=dtype)
    return params


class TrainNet:
    """The chapter-5 multi-layer net: Affine, Hidden, ..., Affine, SoftmaxWithLoss.

    Parameters
    ----------
    params : dict of str to ndarray
        ``W1, b1, ..., Wk, bk``; used (not copied) by the layers, so that an
        optimiser updating them in place updates the net.
    label_smoothing : float
    hidden_activation : str
    """

    def __init__(
        self,
        params: Params,
        label_smoothing: float = 0.0,
        hidden_activation: str = "sigmoid",
    ) -> None:
        self.params = params
        count = sum(1 for key in params if key.startswith("W"))
        self.affines = [
            Affine(params[f"W{i}"], params[f"b{i}"]) for i in range(1, count + 1)
        ]
        self.hidden = [Hidden(hidden_activation) for _ in range(count - 1)]
        self.last = SoftmaxWithLoss(label_smoothing)

    def logits(self, x: Array) -> Array:
        """Scores before softmax, ``(n, n_in) -> (n, n_classes)``."""
        for affine, hidden in zip(self.affines[:-1], self.hidden, strict=True):
            x = hidden.forward(affine.forward(x))
        return self.affines[-1].forward(x)

    def loss(self, x: Array, t: Labels) -> float:
        """Mean cross-entropy of a batch."""
        return self.last.forward(self.logits(x), t)

    def gradient(self, x: Array, t: Labels) -> tuple[float, Params]:
        """Loss and its gradient by backpropagation (chapter 5)."""
        loss = self.loss(x, t)
        dout = self.last.backward()
        dout = self.affines[-1].backward(dout)
        for affine, hidden in zip(self.affines[-2::-1], self.hidden[::-1], strict=True):
            dout = affine.backward(hidden.backward(dout))
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
