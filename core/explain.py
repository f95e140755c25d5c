"""What the network computes on the way to an answer, and why: chapter 3's
forward pass kept layer by layer, and one backward pass for a saliency map.

:func:`explain` runs the forward pass of a :class:`~core.network.Network` in
float64, keeping every hidden layer's activations and the logits (the last
layer's input to softmax), and then backpropagates the probability of one
class (by default the predicted one) to the 784 input pixels. The result,
``d p_target / d x``, is a saliency map: where adding ink would raise (positive)
or lower (negative) the network's confidence in that class.

The backward pass is the chain rule through the same layers, last to first:

* softmax: ``d p_t / d z_j = p_t * ([j == t] - p_j)``;
* affine ``a = h @ W + b``: ``d/dh = d/da @ W.T``;
* hidden activation ``h = f(a)``: ``d/da = d/dh * f'(a)`` (sigmoid:
  ``h * (1 - h)``; tanh: ``1 - h**2``; relu: ``a >= 0``, the right-hand value
  at the kink; step: 0).

float64 throughout, although the service answers in float32: the gradient is
checked against finite differences, which need the extra precision, and one
image costs about 45,000 multiply-adds either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core import activations
from core.errors import InputError
from core.network import Network

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything :func:`explain` found out about a batch of inputs.

    Attributes
    ----------
    hidden : tuple of ndarray of shape (n_samples, n_units), float64
        The activations of each hidden layer, first to last (``(n, 50)`` and
        ``(n, 100)`` for the book's network).
    logits : ndarray of shape (n_samples, n_outputs), float64
        The last layer's output before softmax.
    probabilities : ndarray of shape (n_samples, n_outputs), float64
        Softmax of ``logits`` (``logits`` themselves for an identity output).
    labels : ndarray of shape (n_samples,), intp
        The arg-max of ``probabilities``.
    targets : ndarray of shape (n_samples,), intp
        The class whose output :attr:`saliency` differentiates.
    saliency : ndarray of shape (n_samples, n_inputs), float64
        ``d probabilities[i, targets[i]] / d x[i]``.
    """

    hidden: tuple[F64, ...]
    logits: F64
    probabilities: F64
    labels: NDArray[np.intp]
    targets: NDArray[np.intp]
    saliency: F64


def explain(
    network: Network, x: ArrayLike, target: int | ArrayLike | None = None
) -> Explanation:
    """Forward pass with every layer kept, and the saliency of one class.

    Parameters
    ----------
    network : Network
        Any chain of layers with a supported hidden activation; the book's
        784-50-100-10 sigmoid network is the usual one.
    x : array-like of shape (n_samples, n_inputs) or (n_inputs,)
        Inputs (float in [0, 1] for MNIST); computed in float64.
    target : int or array-like of shape (n_samples,) of int, optional
        The class whose output to differentiate, for every sample or per
        sample. Default: each sample's predicted class.

    Returns
    -------
    Explanation
        Always batch-shaped: a single ``(n_inputs,)`` input gives one row.

    Raises
    ------
    InputError
        ``x`` has the wrong shape or holds non-finite values, or ``target``
        is not a class index.
    """
    batch = network.as_batch(x, np.float64)
    if not np.isfinite(batch).all():
        raise InputError("x holds non-finite values (NaN or infinity)")
    # The same functions and derivatives /activations serves (right-hand
    # derivative at a kink, stable for any |a|).
    activation = activations.get(network.hidden_activation)
    weights = [w.astype(np.float64) for w in network.weights]
    biases = [b.astype(np.float64) for b in network.biases]

    # Forward, keeping each hidden layer's input (a) and output (h).
    pre: list[F64] = []
    hidden: list[F64] = []
    h = batch
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        a = h @ w + b
        h = np.asarray(activation.fn(a), dtype=np.float64)  # float64 in, out
        pre.append(a)
        hidden.append(h)
    logits: F64 = h @ weights[-1] + biases[-1]
    softmax = network.output == "softmax"
    probabilities = (
        np.asarray(activations.softmax(logits), dtype=np.float64)
        if softmax
        else logits.copy()
    )
    labels: NDArray[np.intp] = np.argmax(probabilities, axis=1)

    n, outputs = probabilities.shape
    if target is None:
        targets = labels
    else:
        wanted = np.asarray(target)
        if wanted.dtype.kind not in "iu" or wanted.ndim > 1:
            raise InputError(f"target must be a class index, got {target!r}")
        targets = np.broadcast_to(wanted, (n,)).astype(np.intp)
        if ((targets < 0) | (targets >= outputs)).any():
            raise InputError(
                f"target must be in 0..{outputs - 1}, got {wanted.tolist()!r}"
            )
    rows = np.arange(n)

    # Backward: the gradient of p[target] with respect to each layer's input.
    onehot = np.zeros_like(probabilities)
    onehot[rows, targets] = 1.0
    if softmax:
        grad = probabilities[rows, targets][:, None] * (onehot - probabilities)
    else:
        grad = onehot
    grad = grad @ weights[-1].T
    for i in range(len(hidden) - 1, -1, -1):
        grad = grad * np.asarray(activation.grad(pre[i]), dtype=np.float64)
        grad = grad @ weights[i].T

    return Explanation(
        hidden=tuple(hidden),
        logits=logits,
        probabilities=probabilities,
        labels=labels,
        targets=targets,
        saliency=grad,
    )
