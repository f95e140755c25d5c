"""What the network computes on the way to an answer, and why: chapter 3's
forward pass kept step by step, and one backward pass for a saliency map.

:func:`explain` runs the forward pass of a :class:`~core.network.Network` in
float64, keeping both hidden layers' activations and the logits (the last
layer's input to softmax), and then backpropagates the probability of one
class (by default the predicted one) to the 784 input pixels. The result,
``d y_target / d x``, is a saliency map: where adding ink would raise (positive)
or lower (negative) the network's confidence in that class.

The backward pass is the chain rule through the same steps, last to first:

* softmax: ``d y_t / d a3_j = y_t * ([j == t] - y_j)``;
* affine ``a = z @ w + b``: ``d/dz = d/da @ w.T``;
* hidden activation ``z = h(a)``: ``d/da = d/dz * h'(a)``, with ``h'`` from
  :mod:`core.activations` (relu: the right-hand value 1 at the kink).

float64 throughout, although the service answers in float32: the gradient is
checked against finite differences, which need the extra precision, and one
image costs about 45,000 multiply-adds either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core import activations, catalogue
from core.errors import InputError
from core.network import Network

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything :func:`explain` found out about a batch of inputs.

    Attributes
    ----------
    hidden : tuple of two ndarray of shape (n_samples, h1) and (n_samples, h2), float64
        The hidden layers' activations ``z1`` and ``z2`` (``(n, 50)`` and
        ``(n, 100)`` for the book's network).
    logits : ndarray of shape (n_samples, n_outputs), float64
        ``a3``, the last layer's output before softmax.
    probabilities : ndarray of shape (n_samples, n_outputs), float64
        ``y``, the softmax of ``logits``.
    labels : ndarray of shape (n_samples,), intp
        The arg-max of ``probabilities``.
    targets : ndarray of shape (n_samples,), intp
        The class whose probability :attr:`saliency` differentiates.
    saliency : ndarray of shape (n_samples, n_inputs), float64
        ``d probabilities[i, targets[i]] / d x[i]``.
    """

    hidden: tuple[F64, F64]
    logits: F64
    probabilities: F64
    labels: NDArray[np.intp]
    targets: NDArray[np.intp]
    saliency: F64


def _targets(
    target: int | ArrayLike | None, labels: NDArray[np.intp], classes: int
) -> NDArray[np.intp]:
    if target is None:
        return labels
    wanted = np.asarray(target)
    if wanted.dtype.kind not in "iu" or wanted.ndim > 1:
        raise InputError(f"target must be a class index, got {target!r:.80}")
    targets = np.broadcast_to(wanted, labels.shape).astype(np.intp)
    if ((targets < 0) | (targets >= classes)).any():
        raise InputError(
            f"target must be in 0..{classes - 1}, got {wanted.tolist()!r:.80}"
        )
    return targets


def explain(
    network: Network, x: ArrayLike, target: int | ArrayLike | None = None
) -> Explanation:
    """Forward pass with every step kept, and the saliency of one class.

    Parameters
    ----------
    network : Network
    x : array-like of shape (n_samples, n_inputs) or (n_inputs,)
        Inputs (float in [0, 1] for MNIST); computed in float64.
    target : int or array-like of shape (n_samples,) of int, optional
        The class whose probability to differentiate, for every sample or per
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
    x64 = network.as_batch(x, np.float64)
    if not np.isfinite(x64).all():
        raise InputError("x holds non-finite values (NaN or infinity)")
    w1, b1, w2, b2, w3, b3 = (v.astype(np.float64) for v in network.params().values())
    # The same function and derivative /activations serves (stable for any
    # |a|; float64 stays float64).
    hidden = catalogue.get(network.hidden_activation)

    def h(a: F64) -> F64:
        return np.asarray(hidden.f(a), dtype=np.float64)

    def dh(a: F64) -> F64:
        return np.asarray(hidden.df(a), dtype=np.float64)

    a1 = x64 @ w1 + b1
    z1 = h(a1)
    a2 = z1 @ w2 + b2
    z2 = h(a2)
    a3 = z2 @ w3 + b3
    y = np.asarray(activations.softmax(a3), dtype=np.float64)
    labels: NDArray[np.intp] = np.argmax(y, axis=1)
    targets = _targets(target, labels, y.shape[1])

    # Backward: the gradient of y[target] with respect to each step's input.
    rows = np.arange(y.shape[0])
    onehot = np.zeros_like(y)
    onehot[rows, targets] = 1.0
    da3 = y[rows, targets][:, None] * (onehot - y)
    dz2 = da3 @ w3.T
    da2 = dz2 * dh(a2)
    dz1 = da2 @ w2.T
    da1 = dz1 * dh(a1)
    dx: F64 = da1 @ w1.T

    return Explanation(
        hidden=(z1, z2),
        logits=a3,
        probabilities=y,
        labels=labels,
        targets=targets,
        saliency=dx,
    )
