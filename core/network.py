"""The chapter-3 network: a chain of affine layers with a hidden activation.

The book's MNIST network is 784 -> 50 -> 100 -> 10 with sigmoid hidden layers
and a softmax output, but, as the chapter teaches, the forward pass is the same
for any chain of layer sizes: ``a = x @ W + b`` then the activation, repeated,
with an identity output for regression or softmax for classification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import InputError, WeightsError

INPUT_SIZE = 784
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

FloatArray = NDArray[np.float32]
OutputKind = Literal["softmax", "identity"]

# Rows per chunk of a large batch: 2,048 rows of 784 float32 are 6.4 MB, and the
# hidden activations of a chunk stay in cache while they are transformed in place.
CHUNK_ROWS = 2048


def _sigmoid_(a: FloatArray) -> FloatArray:
    # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5: exact, never overflows (exp(-x) does
    # for x < -88 in float32), and in place it is the cheapest form in NumPy.
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _relu_(a: FloatArray) -> FloatArray:
    np.maximum(a, 0, out=a)
    return a


def _tanh_(a: FloatArray) -> FloatArray:
    np.tanh(a, out=a)
    return a


def _identity_(a: FloatArray) -> FloatArray:
    return a


def _step_(a: FloatArray) -> FloatArray:
    np.greater(a, 0, out=a, casting="unsafe")
    return a


def _softmax_(a: FloatArray) -> FloatArray:
    # Subtracting the row max leaves softmax unchanged (it is shift invariant)
    # and keeps exp() from overflowing for large logits.
    a -= a.max(axis=1, keepdims=True)
    np.exp(a, out=a)
    a /= a.sum(axis=1, keepdims=True)
    return a


# In-place hidden activations the forward pass supports. Each one writes into
# the buffer it is given, so a chunk allocates only its own layer outputs.
HIDDEN_ACTIVATIONS: Mapping[str, Callable[[FloatArray], FloatArray]] = {
    "sigmoid": _sigmoid_,
    "relu": _relu_,
    "tanh": _tanh_,
    "identity": _identity_,
    "step": _step_,
}
OUTPUTS: Mapping[str, Callable[[FloatArray], FloatArray]] = {
    "softmax": _softmax_,
    "identity": _identity_,
}


def _readonly(array: ArrayLike) -> FloatArray:
    out = np.array(array, dtype=np.float32, copy=True, order="C")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True)
class Network:
    """An immutable feed-forward network: affine layers and an activation.

    Parameters
    ----------
    weights : tuple of ndarray of shape (n_in, n_out), float32
        ``W1, W2, ...``; each layer's ``n_out`` is the next one's ``n_in``.
    biases : tuple of ndarray of shape (n_out,), float32
        ``b1, b2, ...``, one per weight matrix.
    hidden_activation : str
        Applied after every layer but the last (a key of ``HIDDEN_ACTIVATIONS``).
        The book's weights were trained with ``"sigmoid"``; another activation
        only makes sense with weights trained for it.
    output : {"softmax", "identity"}
        Softmax for classification, identity for regression.

    Notes
    -----
    The arrays are copied to C-contiguous float32 and made read-only, and
    :meth:`forward` keeps no state, so one instance is safe to share between
    threads.
    """

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    hidden_activation: str = "sigmoid"
    output: OutputKind = "softmax"
    _hidden: Callable[[FloatArray], FloatArray] = field(init=False, repr=False)
    _output: Callable[[FloatArray], FloatArray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.weights or len(self.weights) != len(self.biases):
            raise WeightsError(
                f"need one bias per weight matrix and at least one layer, got "
                f"{len(self.weights)} weight matrices and {len(self.biases)} biases"
            )
        weights = tuple(_readonly(w) for w in self.weights)
        biases = tuple(_readonly(b) for b in self.biases)
        for i, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            if w.ndim != 2:
                raise WeightsError(f"W{i} must be 2-D, got shape {w.shape}")
            if b.shape != (w.shape[1],):
                raise WeightsError(
                    f"b{i} must have shape ({w.shape[1]},) to match W{i} "
                    f"{w.shape}, got {b.shape}"
                )
            if i > 1 and weights[i - 2].shape[1] != w.shape[0]:
                raise WeightsError(
                    f"W{i - 1} {weights[i - 2].shape} does not chain into "
                    f"W{i} {w.shape}: {weights[i - 2].shape[1]} != {w.shape[0]}"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise WeightsError(f"W{i} or b{i} holds NaN or infinite values")
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise WeightsError(
                f"unsupported hidden activation {self.hidden_activation!r}; "
                f"supported: {', '.join(HIDDEN_ACTIVATIONS)}"
            )
        if self.output not in OUTPUTS:
            raise WeightsError(
                f"unsupported output {self.output!r}; supported: {', '.join(OUTPUTS)}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "_hidden", HIDDEN_ACTIVATIONS[self.hidden_activation])
        object.__setattr__(self, "_output", OUTPUTS[self.output])

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, ArrayLike],
        hidden_activation: str = "sigmoid",
        output: OutputKind = "softmax",
    ) -> Network:
        """Build a network from the book's keys ``W1, b1, W2, b2, ...``.

        Parameters
        ----------
        params : mapping of str to array
            ``W1 ... Wk`` and ``b1 ... bk`` for ``k`` layers, as in
            ``sample_weight.pkl``.
        """
        count = sum(1 for key in params if key.startswith("W") and key[1:].isdigit())
        missing = [
            key
            for i in range(1, max(count, 1) + 1)
            for key in (f"W{i}", f"b{i}")
            if key not in params
        ]
        if missing:
            raise WeightsError(
                f"missing key(s) {', '.join(missing)}; have {', '.join(sorted(params))}"
            )
        return cls(
            weights=tuple(np.asarray(params[f"W{i}"]) for i in range(1, count + 1)),
            biases=tuple(np.asarray(params[f"b{i}"]) for i in range(1, count + 1)),
            hidden_activation=hidden_activation,
            output=output,
        )

    def params(self) -> dict[str, FloatArray]:
        """The parameters under the book's keys ``W1, b1, ...`` (read-only float32)."""
        out: dict[str, FloatArray] = {}
        for i, (w, b) in enumerate(
            zip(self.weights, self.biases, strict=True), start=1
        ):
            out[f"W{i}"] = w
            out[f"b{i}"] = b
        return out

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Units per layer, input first, e.g. ``(784, 50, 100, 10)``."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))

    @property
    def input_size(self) -> int:
        return self.layer_sizes[0]

    @property
    def output_size(self) -> int:
        return self.layer_sizes[-1]

    @property
    def parameter_count(self) -> int:
        return sum(
            w.size + b.size for w, b in zip(self.weights, self.biases, strict=True)
        )

    def _as_batch(self, x: ArrayLike) -> FloatArray:
        batch = np.asarray(x, dtype=np.float32)
        if batch.ndim == 1:
            batch = batch.reshape(1, -1)
        if batch.ndim != 2 or batch.shape[1] != self.input_size:
            raise InputError(
                f"expected shape (n, {self.input_size}) or ({self.input_size},), "
                f"got {np.shape(x)}"
            )
        return batch

    def _forward_chunk(self, x: FloatArray, out: FloatArray) -> None:
        a = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i == last:
                np.matmul(a, w, out=out)
                out += b
                self._output(out)
            else:
                a = a @ w
                a += b
                self._hidden(a)

    def forward(self, x: ArrayLike) -> FloatArray:
        """Output of the network for a batch.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_inputs) or (n_inputs,)
            Inputs, float in [0, 1] for the MNIST networks; converted to float32.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float32
            Softmax probabilities (rows sum to 1) or, for an identity output,
            the raw outputs. A single ``(n_inputs,)`` input gives one row.
        """
        batch = self._as_batch(x)
        out = np.empty((batch.shape[0], self.output_size), dtype=np.float32)
        for start in range(0, batch.shape[0], CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            self._forward_chunk(batch[start:stop], out[start:stop])
        return out

    def predict(self, x: ArrayLike) -> NDArray[np.intp]:
        """Predicted class of each row: the arg-max of :meth:`forward`.

        Returns
        -------
        ndarray of shape (n_samples,), intp
        """
        labels: NDArray[np.intp] = np.argmax(self.forward(x), axis=1)
        return labels
