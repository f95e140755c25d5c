"""The chapter-3 network: a chain of affine layers with a hidden activation.

The book's MNIST network is 784 -> 50 -> 100 -> 10 with sigmoid hidden layers
and a softmax output, but, as the chapter teaches, the forward pass is the same
for any chain of layer sizes: ``a = x @ W + b`` then the activation, repeated,
with an identity output for regression or softmax for classification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import InputError, WeightsError

INPUT_SIZE = 784
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

FloatArray = NDArray[np.float32]
OutputKind = Literal["softmax", "identity"]

# Rows per chunk of a large batch; bounds the hidden activations' memory
# (16,384 x 100 float32 = 6.5 MB). Not smaller: with several BLAS threads, every
# product ends in a barrier, and on a busy machine a barrier costs milliseconds
# (10,000 images at 2 threads: 2,048-row chunks ran 3x slower than one chunk),
# while with one thread the chunk size changed little.
CHUNK_ROWS = 16384
# Up to this many rows, the forward pass takes the path with the fewest NumPy
# calls (see Network); beyond, the one with the fewest passes over memory.
SMALL_ROWS = 16


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


# exp(80) * NUM_CLASSES is far below float32's maximum (3.4e38), and exp(-80)
# is still a normal float32: logits within +-80 need no max subtraction.
EXP_SAFE = 80.0


def _sigmoid_negated_(a: FloatArray) -> FloatArray:
    # sigmoid(a) = 1 / (1 + exp(-a)), given -a (see _negate_hidden). Three
    # in-place passes; on CPUs without AVX-512, NumPy's float32 exp is several
    # times faster than its tanh. exp overflows to inf for a < -88, giving
    # 1 / inf = 0, the right limit (forward() silences that warning).
    np.exp(a, out=a)
    a += 1.0
    np.divide(1.0, a, out=a)
    return a


def _fold_sigmoid(
    weights: tuple[FloatArray, ...], biases: tuple[FloatArray, ...]
) -> tuple[tuple[FloatArray, FloatArray], ...]:
    """The layers re-parametrised for tanh as the hidden activation.

    sigmoid(a) = (tanh(a / 2) + 1) / 2. The halving of ``a`` goes into a
    layer's own weights and bias, and the affine ``(t + 1) / 2`` into the next
    layer's: with ``t`` the tanh output, ``(t + 1) / 2 @ W + b`` equals
    ``t @ (W / 2) + (colsum(W) / 2 + b)``. Scaling by powers of two is exact,
    so only the folded biases are rounded anew. A hidden layer then costs a
    single NumPy call (tanh), the fewest for one image.
    """
    last = len(weights) - 1
    layers = []
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        w64 = w.astype(np.float64)
        b64 = b.astype(np.float64)
        if i > 0:  # the input is (t + 1) / 2 of the previous layer
            b64 = b64 + 0.5 * w64.sum(axis=0)
            w64 = 0.5 * w64
        if i < last:  # the output goes through tanh(a / 2)
            w64 = 0.5 * w64
            b64 = 0.5 * b64
        layers.append((_readonly(w64), _readonly(b64)))
    return tuple(layers)


def _negate_hidden(
    weights: tuple[FloatArray, ...], biases: tuple[FloatArray, ...]
) -> tuple[tuple[FloatArray, FloatArray], ...]:
    """The layers with each hidden layer's weights and bias negated.

    A hidden layer then computes ``-a`` directly, which is what
    ``exp(-a)`` in the sigmoid needs, with no extra pass. Negation is exact,
    so the network computes bit for bit the same pre-activations.
    """
    last = len(weights) - 1
    layers = []
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if i < last:
            w, b = _readonly(-w), _readonly(-b)
        layers.append((w, b))
    return tuple(layers)


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
    # What forward() runs: the layers, possibly re-parametrised (see
    # _negate_hidden), computing the same function as weights and biases.
    _layers: tuple[tuple[FloatArray, FloatArray], ...] = field(
        init=False, repr=False, compare=False
    )
    # The same for batches of up to SMALL_ROWS, where the number of NumPy
    # calls, not the passes over memory, sets the time.
    _small_layers: tuple[tuple[FloatArray, FloatArray], ...] = field(
        init=False, repr=False, compare=False
    )
    _small_hidden: Callable[[FloatArray], FloatArray] = field(
        init=False, repr=False, compare=False
    )
    # Softmax without the max subtraction (logits provably small), with the
    # row sums as a product with ones: cheaper than a reduction along axis 1.
    _unshifted: bool = field(init=False, repr=False, compare=False)
    _ones: FloatArray = field(init=False, repr=False, compare=False)

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
        hidden = small_hidden = HIDDEN_ACTIVATIONS[self.hidden_activation]
        layers = small_layers = tuple(zip(weights, biases, strict=True))
        if self.hidden_activation == "sigmoid" and len(weights) > 1:
            layers, hidden = _negate_hidden(weights, biases), _sigmoid_negated_
            small_layers, small_hidden = _fold_sigmoid(weights, biases), _tanh_
        unshifted = False
        if self.output == "softmax" and len(weights) > 1:
            # The last layer's inputs are bounded by the hidden activation,
            # so are its logits: |a_j| <= |b_j| + sum_i |W_ij| * max|input|.
            bound = {"sigmoid": 1.0, "tanh": 1.0, "step": 1.0}.get(
                self.hidden_activation
            )
            reach = np.abs(weights[-1]).sum(axis=0) * (bound or 0.0)
            unshifted = (
                bound is not None
                and float((reach + np.abs(biases[-1])).max()) < EXP_SAFE
            )
        object.__setattr__(self, "_hidden", hidden)
        object.__setattr__(self, "_output", OUTPUTS[self.output])
        object.__setattr__(self, "_layers", layers)
        object.__setattr__(self, "_small_layers", small_layers)
        object.__setattr__(self, "_small_hidden", small_hidden)
        object.__setattr__(self, "_unshifted", unshifted)
        ones = np.ones((weights[-1].shape[1], 1), dtype=np.float32)
        object.__setattr__(self, "_ones", ones)

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

    def _forward_chunk(
        self,
        x: FloatArray,
        layers: tuple[tuple[FloatArray, FloatArray], ...],
        hidden: Callable[[FloatArray], FloatArray],
    ) -> FloatArray:
        # np.dot: the least per-call overhead of NumPy's products for 2-D
        # float32, which matters for one image (a dozen calls of ~1 us each).
        a: FloatArray = x
        for w, b in layers[:-1]:
            a = np.dot(a, w)
            a += b
            hidden(a)
        w, b = layers[-1]
        a = np.dot(a, w)
        a += b
        if self._unshifted:
            np.exp(a, out=a)
            a /= np.dot(a, self._ones)
            return a
        return self._output(a)

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
        batch = self.as_batch(x)
        rows = batch.shape[0]
        if rows <= SMALL_ROWS:
            return self._forward_chunk(batch, self._small_layers, self._small_hidden)
        layers, hidden = self._layers, self._hidden
        # exp(-a) in the sigmoid overflows to inf for a < -88: the result (0)
        # is right, the warning is noise.
        with np.errstate(over="ignore"):
            if rows <= CHUNK_ROWS:
                return self._forward_chunk(batch, layers, hidden)
            out = np.empty((rows, self.output_size), dtype=np.float32)
            for start in range(0, rows, CHUNK_ROWS):
                stop = start + CHUNK_ROWS
                out[start:stop] = self._forward_chunk(batch[start:stop], layers, hidden)
        return out

    def predict(self, x: ArrayLike) -> NDArray[np.intp]:
        """Predicted class of each row: the arg-max of :meth:`forward`.

        Returns
        -------
        ndarray of shape (n_samples,), intp
        """
        labels: NDArray[np.intp] = np.argmax(self.forward(x), axis=1)
        return labels
