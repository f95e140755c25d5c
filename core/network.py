"""The chapter-3 network: 784 -> h1 -> h2 -> 10, a hidden activation, softmax.

:meth:`Network.forward_reference` is the book's forward pass as the book writes
it (``a1 = x @ w1 + b1``, ``z1 = h(a1)``, ...). :meth:`Network.forward` computes
the same function with fewer NumPy calls and passes over memory; the tests hold
the two to float32 tolerance and ``python -m bench core`` times them side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core import activations
from core.errors import InputError, WeightsError

IMAGE_SIDE = 28
"""Pixels per side of an MNIST image."""
INPUT_SIZE = IMAGE_SIDE * IMAGE_SIDE
"""Inputs of the network, one per pixel: 784."""
NUM_CLASSES = 10
"""Outputs of the network, one per digit."""
IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE)
"""The same fact as a shape, for reshapes and shape checks."""


# Rows per chunk of a large batch: bounds the hidden activations' memory
# (16,384 x 100 float32 = 6.5 MB). Not smaller: with several BLAS threads every
# product ends in a barrier, and on a busy machine a barrier costs milliseconds
# (10,000 images at 2 threads: 2,048-row chunks ran 3x slower than one chunk).
CHUNK_ROWS = 16384
# exp(80) * NUM_CLASSES is far below float32's maximum (3.4e38) and exp(-80) is
# still a normal float32: logits within +-80 need no max subtraction.
EXP_SAFE = 80.0

FloatArray = NDArray[np.float32]
Layer = tuple[FloatArray, FloatArray]

HIDDEN_ACTIVATIONS: Mapping[str, Callable[[FloatArray], NDArray[Any]]] = (
    MappingProxyType(
        {
            "sigmoid": activations.sigmoid,
            "relu": activations.relu,
            "tanh": activations.tanh,
        }
    )
)
"""The hidden activations a weights file may record (the book's is sigmoid),
each with the function :meth:`Network.forward_reference` applies."""


def _tanh_(a: FloatArray) -> None:
    np.tanh(a, out=a)


def _relu_(a: FloatArray) -> None:
    np.maximum(a, 0, out=a)


def _readonly(array: ArrayLike) -> FloatArray:
    out = np.array(array, dtype=np.float32, copy=True, order="C")
    out.flags.writeable = False
    return out


def _fold_sigmoid(layers: tuple[Layer, Layer, Layer]) -> tuple[Layer, Layer, Layer]:
    """The layers re-parametrised so that tanh computes the sigmoid.

    ``sigmoid(a) = (tanh(a / 2) + 1) / 2``. The halving of ``a`` goes into the
    layer's own weights and bias, and the affine ``(t + 1) / 2`` into the next
    layer's: ``(t + 1) / 2 @ w + b = t @ (w / 2) + (colsum(w) / 2 + b)``. Scaling
    by powers of two is exact; only the new biases are rounded (in float64,
    then to float32). A hidden layer then costs one NumPy call, ``tanh``.
    """
    (w1, b1), (w2, b2), (w3, b3) = (
        (w.astype(np.float64), b.astype(np.float64)) for w, b in layers
    )
    c2 = b2 + w2.sum(axis=0) / 2  # the bias that absorbs z1 = (t1 + 1) / 2
    c3 = b3 + w3.sum(axis=0) / 2
    return (
        (_readonly(w1 / 2), _readonly(b1 / 2)),
        (_readonly(w2 / 4), _readonly(c2 / 2)),
        (_readonly(w3 / 2), _readonly(c3)),
    )


@dataclass(frozen=True, slots=True)
class _FastForm:
    """What :meth:`Network.forward` runs: the same function, fewer NumPy calls.

    Attributes
    ----------
    layers : three (weights, bias) pairs, float32
        The network's own arrays, or for sigmoid the :func:`_fold_sigmoid` ones.
    hidden : callable
        The hidden activation of ``layers``, in place.
    unshifted : bool
        True when the logits are provably within +-EXP_SAFE, so softmax may
        skip subtracting the row max.
    ones : ndarray of shape (n_outputs, 1), float32
        Softmax's row sums are a product with it: BLAS sums ten floats per
        row several times faster than NumPy's reduction along a short axis
        (143 vs 16 us for 10,000 rows; 1.5 vs 0.8 us for one).
    """

    layers: tuple[Layer, Layer, Layer]
    hidden: Callable[[FloatArray], None]
    unshifted: bool
    ones: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Network:
    """The book's three-layer network with its weights, immutable.

    Parameters
    ----------
    w1 : ndarray of shape (n_inputs, h1), float32
    b1 : ndarray of shape (h1,), float32
    w2 : ndarray of shape (h1, h2), float32
    b2 : ndarray of shape (h2,), float32
    w3 : ndarray of shape (h2, n_outputs), float32
    b3 : ndarray of shape (n_outputs,), float32
    hidden_activation : {"sigmoid", "relu", "tanh"}, default "sigmoid"
        The activation the weights were trained with (the book's: sigmoid).
        The output is always softmax.

    Raises
    ------
    WeightsError
        Shapes that do not chain, non-finite values, an unknown activation.

    Notes
    -----
    The arrays are copied to C-contiguous float32 and made read-only, and
    neither forward pass keeps state, so threads can share one instance.
    """

    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray
    w3: FloatArray
    b3: FloatArray
    hidden_activation: str = "sigmoid"
    _fast: _FastForm = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise WeightsError(
                f"unsupported hidden activation {self.hidden_activation!r}; "
                f"supported: {', '.join(HIDDEN_ACTIVATIONS)}"
            )
        names = ("w1", "b1", "w2", "b2", "w3", "b3")
        arrays = [_readonly(getattr(self, name)) for name in names]
        inputs = arrays[0].shape[0] if arrays[0].ndim == 2 else -1
        for i in (1, 2, 3):
            w, b = arrays[2 * i - 2], arrays[2 * i - 1]
            if w.ndim != 2 or w.shape[0] != inputs:
                raise WeightsError(
                    f"W{i} has shape {w.shape}; expected 2-D with {inputs} rows "
                    f"to chain on from the previous layer"
                )
            if b.shape != (w.shape[1],):
                raise WeightsError(
                    f"b{i} has shape {b.shape}, expected ({w.shape[1]},)"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise WeightsError(f"W{i} or b{i} holds NaN or infinite values")
            inputs = w.shape[1]
        for name, array in zip(names, arrays, strict=True):
            object.__setattr__(self, name, array)
        object.__setattr__(self, "_fast", self._fast_form())

    def _fast_form(self) -> _FastForm:
        layers = ((self.w1, self.b1), (self.w2, self.b2), (self.w3, self.b3))
        if self.hidden_activation == "sigmoid":
            layers = _fold_sigmoid(layers)
        hidden = _relu_ if self.hidden_activation == "relu" else _tanh_
        unshifted = False
        if hidden is _tanh_:
            # The last layer's inputs are tanh outputs, |t| <= 1, so its logits
            # obey |a_j| <= |b_j| + sum_i |w_ij|.
            w3, b3 = layers[2]
            reach = np.abs(w3).sum(axis=0) + np.abs(b3)
            unshifted = float(reach.max()) < EXP_SAFE
        ones = np.ones((self.output_size, 1), dtype=np.float32)
        return _FastForm(layers=layers, hidden=hidden, unshifted=unshifted, ones=ones)

    @classmethod
    def from_params(
        cls, params: Mapping[str, ArrayLike], hidden_activation: str = "sigmoid"
    ) -> Self:
        """Build a network from the weight file's keys ``W1, b1, W2, b2, W3, b3``.

        Parameters
        ----------
        params : mapping of str to array-like
            As in the book's ``sample_weight.pkl``; other keys are ignored.
        hidden_activation : {"sigmoid", "relu", "tanh"}, default "sigmoid"

        Raises
        ------
        WeightsError
            A missing key, or anything the constructor refuses.
        """
        keys = ("W1", "b1", "W2", "b2", "W3", "b3")
        missing = [key for key in keys if key not in params]
        if missing:
            raise WeightsError(
                f"missing key(s) {', '.join(missing)}; have "
                f"{', '.join(sorted(map(str, params))) or 'none'}"
            )
        w1, b1, w2, b2, w3, b3 = (np.asarray(params[key]) for key in keys)
        return cls(
            w1=w1, b1=b1, w2=w2, b2=b2, w3=w3, b3=b3,
            hidden_activation=hidden_activation,
        )  # fmt: skip

    def params(self) -> dict[str, FloatArray]:
        """The parameters under the weight file's keys ``W1, b1, ..., b3``.

        Returns
        -------
        dict of str to ndarray, float32, read-only
        """
        return {
            "W1": self.w1, "b1": self.b1,
            "W2": self.w2, "b2": self.b2,
            "W3": self.w3, "b3": self.b3,
        }  # fmt: skip

    @property
    def layer_sizes(self) -> tuple[int, int, int, int]:
        """Units per layer, input first, e.g. ``(784, 50, 100, 10)``."""
        return (self.w1.shape[0], self.w1.shape[1], self.w2.shape[1], self.w3.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.w1.shape[0])

    @property
    def output_size(self) -> int:
        return int(self.w3.shape[1])

    @property
    def parameter_count(self) -> int:
        return sum(int(v.size) for v in self.params().values())

    @overload
    def as_batch(self, x: ArrayLike) -> FloatArray: ...
    @overload
    def as_batch(
        self, x: ArrayLike, dtype: type[np.float64]
    ) -> NDArray[np.float64]: ...
    def as_batch(
        self, x: ArrayLike, dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """``x`` as a ``(n, n_inputs)`` array of ``dtype``; ``(n_inputs,)`` gives one row.

        Raises
        ------
        InputError
            Any other shape.
        """
        batch = np.asarray(x, dtype=dtype)
        if batch.ndim == 1:
            batch = batch.reshape(1, -1)
        if batch.ndim != 2 or batch.shape[1] != self.input_size:
            raise InputError(
                f"expected shape (n, {self.input_size}) or ({self.input_size},), "
                f"got {np.shape(x)}"
            )
        return batch

    def forward_reference(self, x: ArrayLike) -> FloatArray:
        """The book's forward pass, one line per step (``neuralnet_mnist.py``).

        Parameters
        ----------
        x : array-like of shape (n_samples, n_inputs) or (n_inputs,)
            Converted to float32; the MNIST networks expect values in [0, 1].

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float32
            Softmax probabilities; each row sums to 1.
        """
        x = self.as_batch(x)
        h = HIDDEN_ACTIVATIONS[self.hidden_activation]
        a1 = np.dot(x, self.w1) + self.b1
        z1 = h(a1)
        a2 = np.dot(z1, self.w2) + self.b2
        z2 = h(a2)
        a3 = np.dot(z2, self.w3) + self.b3
        y: FloatArray = activations.softmax(a3)
        return y

    def forward(self, x: ArrayLike) -> FloatArray:
        """The same as :meth:`forward_reference`, faster.

        Each layer writes its activation in place, the sigmoid is one ``tanh``
        call (see :func:`_fold_sigmoid`), softmax skips the max subtraction
        when the weights bound the logits and sums rows with a product, and
        batches over ``CHUNK_ROWS`` rows go through in chunks to bound memory.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_inputs) or (n_inputs,)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float32
        """
        batch = self.as_batch(x)
        rows = batch.shape[0]
        if rows <= CHUNK_ROWS:
            return self._forward_chunk(batch)
        out = np.empty((rows, self.output_size), dtype=np.float32)
        for start in range(0, rows, CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            out[start:stop] = self._forward_chunk(batch[start:stop])
        return out

    def _forward_chunk(self, x: FloatArray) -> FloatArray:
        # np.dot: the least per-call overhead of NumPy's products for 2-D
        # float32, which matters for one image (a dozen calls of ~1 us each).
        (v1, c1), (v2, c2), (v3, c3) = self._fast.layers
        h = self._fast.hidden
        a: FloatArray = np.dot(x, v1)
        a += c1
        h(a)
        a = np.dot(a, v2)
        a += c2
        h(a)
        a = np.dot(a, v3)
        a += c3
        if not self._fast.unshifted:
            # softmax is shift invariant; subtracting the row max keeps exp()
            # from overflowing for large logits.
            a -= a.max(axis=1, keepdims=True)
        np.exp(a, out=a)
        a /= np.dot(a, self._fast.ones)
        return a

    def predict(self, x: ArrayLike) -> NDArray[np.intp]:
        """Predicted class of each row: the arg-max of :meth:`forward`.

        Returns
        -------
        ndarray of shape (n_samples,), intp
        """
        labels: NDArray[np.intp] = np.argmax(self.forward(x), axis=1)
        return labels
