"""Activation functions, their derivatives, and the registry behind ``/activations``.

Every function works element-wise (``softmax`` and ``maxout`` along the last axis)
on an array of any shape. ``float32`` and ``float64`` inputs keep their dtype;
every other real input (integers, booleans, ``float16``) is computed in
``float64``. For finite input no function overflows or emits a ``RuntimeWarning``,
however large ``|x|`` is. ``±inf`` gives the limit where one exists; NaN gives NaN,
except where the result is a branch choice (``step``, the ReLU-family derivatives).

Derivatives at a kink take the right-hand value (``relu_grad(0) == 1``), and
``step_grad`` is 0 everywhere.
"""

# The registry's formulas and notes are written in mathematical Unicode on purpose
# (Greek letters, the minus sign): they are shown to people, not parsed.
# ruff: noqa: RUF001

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import InputError, UnknownActivationError

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "elu",
    "elu_grad",
    "evaluate",
    "gelu",
    "gelu_grad",
    "get",
    "identity",
    "identity_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "maxout",
    "maxout_grad",
    "names",
    "prelu",
    "prelu_grad",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "softmax",
    "softmax_grad",
    "softplus",
    "softplus_grad",
    "step",
    "step_function",
    "step_grad",
    "tanh",
    "tanh_grad",
]

FloatArray: TypeAlias = NDArray[np.floating[Any]]
"""A ``float32`` or ``float64`` array: the result type of every function here."""

# Beyond these bounds a factor of the product underflows to exactly 0 in float64
# (Phi(-40) ~ 1e-350, exp(-750) = 0), so clipping x there changes no finite
# result but keeps inf * 0 (a NaN and a warning) out of the arithmetic.
_GELU_CLIP = 40.0
_SILU_CLIP = 750.0
_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _as_float(x: ArrayLike) -> FloatArray:
    """Return ``x`` as a float array, keeping float32/float64 and casting the rest.

    Parameters
    ----------
    x : array_like of real numbers, any shape

    Returns
    -------
    ndarray of the same shape, dtype float32 or float64
        ``x`` itself (no copy) when it already is a float32/float64 array.

    Raises
    ------
    InputError
        If ``x`` is not made of real numbers (complex, strings, objects).
    """
    a = np.asarray(x)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind not in "biuf":
        raise InputError(f"x must contain real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _sigmoid_pair(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return ``(sigmoid(a), 1 - sigmoid(a))``, each without cancellation.

    Parameters
    ----------
    a : ndarray of any shape, dtype float32 or float64

    Returns
    -------
    s, s_neg : ndarray of the shape and dtype of ``a``
        ``sigmoid(a)`` and ``sigmoid(-a) = 1 - sigmoid(a)``.
    """
    # e^(-|x|) is in (0, 1], so nothing overflows; the usual two-branch form
    # 1/(1+e^-x) vs e^x/(1+e^x) then needs no np.exp of a large positive value.
    z = np.exp(-np.abs(a))
    big = 1 / (1 + z)
    small = z / (1 + z)
    positive = a >= 0
    return np.where(positive, big, small), np.where(positive, small, big)


def _erfc(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Element-wise ``math.erfc``, since NumPy has no error function.

    Parameters
    ----------
    v : ndarray of any shape, dtype float64

    Returns
    -------
    ndarray of the shape of ``v``, dtype float64
        Correct to about 1 ulp (libm). ``map`` over a list costs ~0.15 µs a
        point, a few times faster than ``np.vectorize``.
    """
    flat = np.fromiter(map(math.erfc, v.ravel().tolist()), np.float64, count=v.size)
    return flat.reshape(v.shape)


def _check_k(k: object) -> int:
    """Validate maxout's group size.

    Parameters
    ----------
    k : object
        Should be an integer, or a float with an integral value, that is >= 1.

    Returns
    -------
    int

    Raises
    ------
    InputError
        If ``k`` is not a real number, is non-integral, non-finite or < 1.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    value = float(k)
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    return int(value)


def _need_axis(a: FloatArray, name: str) -> None:
    """Raise ``InputError`` when ``a`` has no last axis to work along."""
    if a.ndim == 0:
        raise InputError(f"{name} needs x with at least 1 dimension, got a scalar")


# --- identity and step --------------------------------------------------------


def identity(x: ArrayLike) -> FloatArray:
    """Identity (linear) activation, ``f(x) = x``.

    Parameters
    ----------
    x : array_like of shape (...)
        Real values; float32/float64 keep their dtype, the rest become float64.

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        A copy of ``x``, so the caller's array is never aliased.
    """
    return _as_float(x).copy()


def identity_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`identity`: 1 everywhere.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    return np.ones_like(_as_float(x))


def step(x: ArrayLike) -> FloatArray:
    """Step function: 1 where ``x > 0``, else 0 (``step(0) == 0``, as in the book).

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in {0, 1}; NaN maps to 0.
    """
    a = _as_float(x)
    return (a > 0).astype(a.dtype)


step_function = step
"""The book's name for :func:`step`."""


def step_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`step`: 0 everywhere (its jump at 0 is reported as 0 too).

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    return np.zeros_like(_as_float(x))


# --- sigmoid family -----------------------------------------------------------


def sigmoid(x: ArrayLike) -> FloatArray:
    """Logistic sigmoid, ``1 / (1 + e^(-x))``, stable for any ``|x|``.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in [0, 1].
    """
    return _sigmoid_pair(_as_float(x))[0]


def sigmoid_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`sigmoid`, ``s(x) (1 - s(x))``, at most 0.25.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    s, s_neg = _sigmoid_pair(_as_float(x))
    # 1 - s would cancel to 0 for x > ~37; sigmoid(-x) keeps full relative accuracy.
    return s * s_neg


def tanh(x: ArrayLike) -> FloatArray:
    """Hyperbolic tangent.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in [-1, 1].
    """
    return np.tanh(_as_float(x))


def tanh_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`tanh`, ``1 - tanh(x)**2 = sech(x)**2``.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in [0, 1].
    """
    a = _as_float(x)
    # sech x = 2e^(-|x|) / (1 + e^(-2|x|)): no cancellation where tanh^2 -> 1, and
    # squaring e^(-|x|) instead of computing 2|x| cannot overflow.
    z = np.exp(-np.abs(a))
    sech = 2 * z / (1 + z * z)
    dy: FloatArray = sech * sech
    return dy


# --- ReLU family --------------------------------------------------------------


def relu(x: ArrayLike) -> FloatArray:
    """Rectified linear unit, ``max(0, x)``.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    y: FloatArray = np.maximum(_as_float(x), 0)
    return y


def relu_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`relu`: 1 for ``x >= 0`` (right-hand value at 0), else 0.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    return (a >= 0).astype(a.dtype)


def leaky_relu(x: ArrayLike, alpha: float = 0.01) -> FloatArray:
    """Leaky ReLU, ``x`` for ``x >= 0`` and ``alpha * x`` below.

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 0.01
        Slope for negative inputs.

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        ``±inf`` where ``alpha * x`` is beyond the dtype's range.
    """
    a = _as_float(x)
    # np.where evaluates alpha * x for every element, including the ones it then
    # discards (large positive x with alpha > 1, inf * 0): those must not warn.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(a >= 0, a, a * alpha).astype(a.dtype, copy=False)


def leaky_relu_grad(x: ArrayLike, alpha: float = 0.01) -> FloatArray:
    """Derivative of :func:`leaky_relu`: 1 for ``x >= 0`` (right-hand at 0), else alpha.

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 0.01

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    with np.errstate(over="ignore"):  # a huge alpha saturates in float32
        return np.where(a >= 0, 1.0, alpha).astype(a.dtype, copy=False)


def prelu(x: ArrayLike, alpha: float = 0.25) -> FloatArray:
    """Parametric ReLU: :func:`leaky_relu` whose ``alpha`` is learned in training.

    Here ``alpha`` is a given value; the default 0.25 is He et al.'s initial one.

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 0.25

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    return leaky_relu(x, alpha)


def prelu_grad(x: ArrayLike, alpha: float = 0.25) -> FloatArray:
    """Derivative of :func:`prelu` with respect to ``x`` (right-hand value 1 at 0).

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 0.25

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    return leaky_relu_grad(x, alpha)


def elu(x: ArrayLike, alpha: float = 1.0) -> FloatArray:
    """Exponential linear unit, ``x`` for ``x >= 0`` and ``alpha (e^x - 1)`` below.

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 1.0
        Magnitude of the negative saturation value ``-alpha``.

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    # min(x, 0) keeps exp away from large positive x, whose branch is discarded;
    # expm1 keeps e^x - 1 accurate for tiny negative x.
    with np.errstate(over="ignore"):  # a huge alpha saturates in float32
        negative = alpha * np.expm1(np.minimum(a, 0))
        return np.where(a >= 0, a, negative).astype(a.dtype, copy=False)


def elu_grad(x: ArrayLike, alpha: float = 1.0) -> FloatArray:
    """Derivative of :func:`elu`: 1 for ``x >= 0`` (right-hand at 0), alpha e^x below.

    Parameters
    ----------
    x : array_like of shape (...)
    alpha : float, default 1.0

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    with np.errstate(over="ignore"):
        negative = alpha * np.exp(np.minimum(a, 0))
        return np.where(a >= 0, 1.0, negative).astype(a.dtype, copy=False)


# --- maxout and softmax (along the last axis) ---------------------------------


def _groups(x: ArrayLike, k: int) -> tuple[FloatArray, int]:
    """Reshape ``x`` of shape ``(..., m)`` to ``(..., m // k, k)`` after checks."""
    a = _as_float(x)
    size = _check_k(k)
    _need_axis(a, "maxout")
    m = a.shape[-1]
    if m % size:
        raise InputError(f"maxout needs len(x) to be a multiple of k={size}, got {m}")
    return a.reshape(*a.shape[:-1], m // size, size), size


def maxout(x: ArrayLike, k: int = 2) -> FloatArray:
    """Maxout: the maximum of each group of ``k`` consecutive values of the last axis.

    Parameters
    ----------
    x : array_like of shape (..., m)
        ``m`` must be a multiple of ``k``.
    k : int, default 2
        Group size, an integer >= 1 (an integral float is accepted).

    Returns
    -------
    ndarray of shape (..., m // k), dtype float32 or float64

    Raises
    ------
    InputError
        If ``k`` is invalid, ``x`` is a scalar, or ``m`` is not a multiple of ``k``.
    """
    g, _ = _groups(x, k)
    y: FloatArray = g.max(axis=-1)
    return y


def maxout_grad(x: ArrayLike, k: int = 2) -> FloatArray:
    """Derivative of :func:`maxout` with respect to each input.

    Parameters
    ----------
    x : array_like of shape (..., m)
    k : int, default 2

    Returns
    -------
    ndarray of shape (..., m), dtype float32 or float64
        1 at the first arg-max of each group (the input the output copies),
        0 elsewhere.

    Raises
    ------
    InputError
        As :func:`maxout`.
    """
    g, size = _groups(x, k)
    winner = np.argmax(g, axis=-1, keepdims=True)  # first one on ties
    mask = np.arange(size) == winner
    dy: FloatArray = mask.astype(g.dtype).reshape(*g.shape[:-2], -1)
    return dy


def _shifted_exp(a: FloatArray) -> FloatArray:
    """Return ``e^(a - max(a))`` along the last axis.

    Parameters
    ----------
    a : ndarray of shape (..., k), k >= 1, dtype float32 or float64

    Returns
    -------
    ndarray of shape (..., k), the dtype of ``a``
        Values in [0, 1], with 1 at each row's maximum.
    """
    # Softmax is invariant to adding a constant to a row; subtracting the row max
    # makes every exponent <= 0, so e^x cannot overflow and each row sums to >= 1.
    # A difference beyond the float range (finite rows spanning more than the max
    # float) correctly becomes -inf and e^-inf = 0; inf - inf in a non-finite row
    # gives NaN. Neither should warn.
    with np.errstate(over="ignore", invalid="ignore"):
        e: FloatArray = np.exp(a - np.max(a, axis=-1, keepdims=True))
    return e


def softmax(x: ArrayLike) -> FloatArray:
    """Softmax along the last axis: each row becomes positive and sums to 1.

    Parameters
    ----------
    x : array_like of shape (..., k)
        One score vector, or a batch of them as rows, e.g. ``(n, 10)``.

    Returns
    -------
    ndarray of shape (..., k), dtype float32 or float64
        A row containing NaN or +inf gives NaN.

    Raises
    ------
    InputError
        If ``x`` is a scalar.
    """
    a = _as_float(x)
    _need_axis(a, "softmax")
    if a.shape[-1] == 0:
        return a.copy()
    e = _shifted_exp(a)
    y: FloatArray = e / np.sum(e, axis=-1, keepdims=True)
    return y


def softmax_grad(x: ArrayLike) -> FloatArray:
    """Diagonal of the softmax Jacobian, ``s_i (1 - s_i)``, along the last axis.

    The full Jacobian of a row is ``diag(s) - s s^T``; the HTTP API reports its
    diagonal, ``d s_i / d x_i``.

    Parameters
    ----------
    x : array_like of shape (..., k)

    Returns
    -------
    ndarray of shape (..., k), dtype float32 or float64

    Raises
    ------
    InputError
        If ``x`` is a scalar.
    """
    a = _as_float(x)
    _need_axis(a, "softmax")
    if a.shape[-1] == 0:
        return a.copy()
    e = _shifted_exp(a)
    total = np.sum(e, axis=-1, keepdims=True)
    s = e / total
    # 1 - s is accurate wherever s <= 1/2, i.e. everywhere but a dominant arg-max,
    # where it would cancel to 0. There, 1 - s equals the sum of the other
    # entries over the total, so sum them without the winner instead.
    top = np.argmax(a, axis=-1, keepdims=True)
    others = e.copy()
    np.put_along_axis(others, top, 0, axis=-1)
    one_minus_s = 1 - s
    rest = np.sum(others, axis=-1, keepdims=True) / total
    np.put_along_axis(one_minus_s, top, rest, axis=-1)
    dy: FloatArray = s * one_minus_s
    return dy


# --- beyond the book: GELU, SiLU, softplus ------------------------------------


def gelu(x: ArrayLike) -> FloatArray:
    """Gaussian error linear unit, exact form ``x Phi(x) = x (1 + erf(x/sqrt 2)) / 2``.

    Phi is evaluated as ``erfc(-x/sqrt 2) / 2`` with ``math.erfc`` per point, which
    keeps full relative accuracy in the left tail where ``1 + erf`` cancels.
    Computed in float64 and cast back; about 15 ms per 100,000 points.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    v = a.astype(np.float64, copy=False)
    cdf = 0.5 * _erfc(-v / _SQRT_2)
    return (np.maximum(v, -_GELU_CLIP) * cdf).astype(a.dtype, copy=False)


def gelu_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`gelu`, ``Phi(x) + x phi(x)``, phi the standard normal pdf.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in about [-0.13, 1.13].
    """
    a = _as_float(x)
    v = a.astype(np.float64, copy=False)
    cdf = 0.5 * _erfc(-v / _SQRT_2)
    # Clipping keeps x*x finite; phi(+-40) is already exactly 0 in float64.
    c = np.clip(v, -_GELU_CLIP, _GELU_CLIP)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * c * c)
    return (cdf + c * pdf).astype(a.dtype, copy=False)


def silu(x: ArrayLike) -> FloatArray:
    """Sigmoid-weighted linear unit (Swish with beta = 1), ``x sigmoid(x)``.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    a = _as_float(x)
    s, _ = _sigmoid_pair(a)
    return np.maximum(a, -_SILU_CLIP) * s


def silu_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`silu`, ``s(x) + x s(x) (1 - s(x))`` with s the sigmoid.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Values in about [-0.1, 1.1].
    """
    a = _as_float(x)
    s, s_neg = _sigmoid_pair(a)
    c = np.clip(a, -_SILU_CLIP, _SILU_CLIP)
    return s + c * s * s_neg


def softplus(x: ArrayLike) -> FloatArray:
    """Softplus, ``ln(1 + e^x)``, a smooth ReLU.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
        Positive values (0 only where ``e^x`` underflows).
    """
    a = _as_float(x)
    # ln(1 + e^x) = max(x, 0) + ln(1 + e^(-|x|)): the exponent is never positive,
    # so nothing overflows, and log1p keeps the small correction accurate.
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def softplus_grad(x: ArrayLike) -> FloatArray:
    """Derivative of :func:`softplus`, which is :func:`sigmoid`.

    Parameters
    ----------
    x : array_like of shape (...)

    Returns
    -------
    ndarray of shape (...), dtype float32 or float64
    """
    return sigmoid(x)


# --- registry -----------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """One entry of the activation registry, as listed by ``GET /activations``.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"leaky_relu"``.
    aliases : tuple of str
        Other accepted names, lower case.
    formula : str
        Plain-text/Unicode formula.
    params : Mapping of str to float
        Parameter names and default values (read-only).
    notes : str
        Strengths and weaknesses in a few sentences.
    fn : callable
        ``fn(x, **params) -> ndarray``, the activation.
    grad : callable
        ``grad(x, **params) -> ndarray``, its derivative (maxout: per input;
        softmax: the Jacobian's diagonal).
    """

    name: str
    aliases: tuple[str, ...]
    formula: str
    params: Mapping[str, float]
    notes: str
    fn: Callable[..., FloatArray]
    grad: Callable[..., FloatArray]


def _params(**defaults: float) -> Mapping[str, float]:
    return MappingProxyType(defaults)


ACTIVATIONS: Mapping[str, Activation] = MappingProxyType(
    {
        a.name: a
        for a in (
            Activation(
                name="identity",
                aliases=("linear",),
                formula="f(x) = x",
                params=_params(),
                notes=(
                    "Passes its input through unchanged; the usual output activation "
                    "for regression (the book's identity_function). Stacking linear "
                    "layers with it yields just another linear map, so it adds no "
                    "expressive power in hidden layers."
                ),
                fn=identity,
                grad=identity_grad,
            ),
            Activation(
                name="step",
                aliases=(),
                formula="h(x) = 1 if x > 0 else 0",
                params=_params(),
                notes=(
                    "The perceptron's threshold unit (the book's step_function). Its "
                    "derivative is 0 everywhere except at the jump, where it does not "
                    "exist, so gradient descent gets no signal through it; that is why "
                    "neural networks use smooth activations such as the sigmoid."
                ),
                fn=step,
                grad=step_grad,
            ),
            Activation(
                name="sigmoid",
                aliases=(),
                formula="σ(x) = 1 / (1 + e^(−x))",
                params=_params(),
                notes=(
                    "Smooth and bounded in (0, 1), so it reads as a probability; the "
                    "classic choice for binary outputs and the hidden activation of "
                    "the book's chapter 3 network. Its derivative σ(1 − σ) is at most "
                    "0.25 and vanishes for large |x|, so gradients shrink layer by "
                    "layer (vanishing gradients). Its output is not zero-centred, "
                    "which skews weight updates, and exp costs more than a comparison."
                ),
                fn=sigmoid,
                grad=sigmoid_grad,
            ),
            Activation(
                name="tanh",
                aliases=(),
                formula="tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x))",
                params=_params(),
                notes=(
                    "A rescaled sigmoid, tanh(x) = 2σ(2x) − 1, with zero-centred "
                    "output in (−1, 1) and slope 1 at the origin, so it usually trains "
                    "faster than the sigmoid. It still saturates: 1 − tanh² vanishes "
                    "for large |x|, and deep stacks suffer from vanishing gradients."
                ),
                fn=tanh,
                grad=tanh_grad,
            ),
            Activation(
                name="relu",
                aliases=(),
                formula="ReLU(x) = max(0, x)",
                params=_params(),
                notes=(
                    "Cheap and non-saturating for x > 0, where the gradient is exactly "
                    "1, which makes deep networks trainable and gives sparse "
                    "activations; the default hidden activation today. For x < 0 the "
                    "gradient is 0, so a unit pushed below 0 for every input stops "
                    "learning (dying ReLU). Its output is not zero-centred, and at the "
                    "kink the right-hand derivative 1 is used."
                ),
                fn=relu,
                grad=relu_grad,
            ),
            Activation(
                name="leaky_relu",
                aliases=(),
                formula="f(x) = x if x ≥ 0 else αx",
                params=_params(alpha=0.01),
                notes=(
                    "ReLU with a small fixed slope α for x < 0, so negative inputs "
                    "still pass a gradient and units cannot die. It keeps ReLU's low "
                    "cost, but α is a hyperparameter and the gain over ReLU is often "
                    "small."
                ),
                fn=leaky_relu,
                grad=leaky_relu_grad,
            ),
            Activation(
                name="prelu",
                aliases=(),
                formula="f(x) = x if x ≥ 0 else αx  (α learned)",
                params=_params(alpha=0.25),
                notes=(
                    "Parametric ReLU (He et al., 2015): the Leaky ReLU formula with α "
                    "learned by backpropagation, per channel or shared; here α is a "
                    "given value, defaulting to their initial 0.25. The network picks "
                    "its own negative slope and units do not die, at the cost of extra "
                    "parameters and some overfitting risk on small data sets."
                ),
                fn=prelu,
                grad=prelu_grad,
            ),
            Activation(
                name="elu",
                aliases=(),
                formula="f(x) = x if x ≥ 0 else α(e^x − 1)",
                params=_params(alpha=1.0),
                notes=(
                    "Identity for x ≥ 0 and a smooth curve saturating at −α below. "
                    "Negative outputs push mean activations towards 0, and the "
                    "gradient αe^x never reaches exactly 0, which answers ReLU's dying "
                    "units. It costs an exp for negative inputs, and for α ≠ 1 the "
                    "slope jumps at 0 (the right-hand value 1 is used)."
                ),
                fn=elu,
                grad=elu_grad,
            ),
            Activation(
                name="maxout",
                aliases=(),
                formula="y_j = max(x_(jk), x_(jk+1), …, x_(jk+k−1))",
                params=_params(k=2),
                notes=(
                    "Goodfellow et al. (2013): each output is the maximum of a group "
                    "of k inputs (normally k learned linear pieces), so a unit learns "
                    "a convex piecewise-linear activation with ReLU and Leaky ReLU as "
                    "special cases. It neither saturates nor dies, since the gradient "
                    "1 always reaches each group's winner, but it costs k times the "
                    "parameters. Here y has len(x)/k values and dy marks each group's "
                    "first arg-max."
                ),
                fn=maxout,
                grad=maxout_grad,
            ),
            Activation(
                name="softmax",
                aliases=(),
                formula="softmax(x)_i = e^(x_i) / Σ_j e^(x_j)",
                params=_params(),
                notes=(
                    "Turns a score vector into a probability distribution, hence the "
                    "output layer of multi-class classifiers such as this MNIST "
                    "network; it keeps the order, so argmax needs no softmax. Adding "
                    "one constant to every input changes nothing, which lets "
                    "implementations subtract the maximum so that exp cannot overflow. "
                    "dy is the Jacobian's diagonal s_i(1 − s_i); the full Jacobian is "
                    "diag(s) − s sᵀ."
                ),
                fn=softmax,
                grad=softmax_grad,
            ),
            Activation(
                name="gelu",
                aliases=(),
                formula="GELU(x) = x·Φ(x) = ½·x·(1 + erf(x / √2))",
                params=_params(),
                notes=(
                    "Gaussian Error Linear Unit (Hendrycks and Gimpel, 2016): x "
                    "weighted by the probability Φ(x) that a standard normal variable "
                    "is below it, a smooth ReLU-like curve with a small negative dip "
                    "(minimum ≈ −0.17 at x ≈ −0.75). It is the standard activation of "
                    "transformers such as BERT and GPT, but costlier than ReLU; this "
                    "is the exact erf form, not the tanh approximation."
                ),
                fn=gelu,
                grad=gelu_grad,
            ),
            Activation(
                name="silu",
                aliases=("swish",),
                formula="SiLU(x) = x·σ(x) = x / (1 + e^(−x))",
                params=_params(),
                notes=(
                    "Sigmoid-weighted linear unit, also called Swish (β = 1): smooth, "
                    "non-monotonic, bounded below (minimum ≈ −0.28 at x ≈ −1.28). "
                    "Unlike ReLU it keeps a gradient for negative inputs; it is used "
                    "in modern CNNs and, gated (SwiGLU), in transformer language "
                    "models. It needs an exp per element."
                ),
                fn=silu,
                grad=silu_grad,
            ),
            Activation(
                name="softplus",
                aliases=(),
                formula="softplus(x) = ln(1 + e^x)",
                params=_params(),
                notes=(
                    "A smooth, always positive approximation of ReLU whose derivative "
                    "is the sigmoid. It is differentiable everywhere, but costs exp "
                    "and log, gives no exact zeros (no sparsity) and its gradient "
                    "still vanishes for very negative x."
                ),
                fn=softplus,
                grad=softplus_grad,
            ),
        )
    }
)
"""The registry, keyed by canonical name, in the order of API.md."""


def names() -> list[str]:
    """Return the canonical activation names, in registry order.

    Returns
    -------
    list of str
    """
    return list(ACTIVATIONS)


def get(name: str) -> Activation:
    """Look up an activation by name or alias, ignoring case and surrounding spaces.

    Parameters
    ----------
    name : str
        E.g. ``"ReLU"``, ``" swish "``, ``"linear"``.

    Returns
    -------
    Activation

    Raises
    ------
    UnknownActivationError
        If no name or alias matches; the error lists the valid names.
    """
    key = name.strip().lower()
    for activation in ACTIVATIONS.values():
        if key == activation.name or key in activation.aliases:
            return activation
    raise UnknownActivationError(name, names())


def _resolve_params(
    activation: Activation, params: Mapping[str, float] | None
) -> dict[str, float]:
    """Merge ``params`` over the defaults after checking names and values.

    Parameters
    ----------
    activation : Activation
    params : Mapping of str to float, or None

    Returns
    -------
    dict of str to float
        Every parameter of ``activation``; maxout's ``k`` as an ``int``.

    Raises
    ------
    InputError
        For an unknown name, a value that is not a finite real number, or an
        invalid ``k``.
    """
    given = dict(params or {})
    unknown = sorted(set(given) - set(activation.params))
    if unknown:
        valid = ", ".join(activation.params) or "none"
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)} for {activation.name}; "
            f"valid parameters: {valid}"
        )
    resolved = dict(activation.params)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"parameter {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InputError(f"parameter {key} must be finite, got {value!r}")
        resolved[key] = _check_k(value) if key == "k" else float(value)
    return resolved


def evaluate(
    name: str, x: ArrayLike, params: Mapping[str, float] | None = None
) -> tuple[
    Activation,
    dict[str, float],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """Evaluate an activation and its derivative at the points ``x``.

    Point-count limits are the caller's job (the HTTP layer enforces them).

    Parameters
    ----------
    name : str
        Canonical name or alias, any case.
    x : array_like of shape (n,)
        Finite real numbers, ``n >= 1``.
    params : Mapping of str to float, optional
        Overrides of the activation's defaults.

    Returns
    -------
    activation : Activation
    params : dict of str to float
        The defaults merged with ``params``.
    x : ndarray of shape (n,), dtype float64
        A copy of the input.
    y : ndarray of shape (n,), dtype float64
        ``(n // k,)`` for maxout.
    dy : ndarray of shape (n,), dtype float64

    Raises
    ------
    UnknownActivationError
        If ``name`` is not in the registry.
    InputError
        For an invalid parameter, an ``x`` that is not a non-empty 1-D sequence
        of finite real numbers, a maxout ``n`` that is not a multiple of ``k``,
        or a result that overflows float64 (e.g. a huge ``alpha``).
    """
    activation = get(name)
    resolved = _resolve_params(activation, params)
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nesting
        # The parser's message would echo the offending value back to the client.
        raise InputError("x must be a 1-D sequence of real numbers") from exc
    if raw.dtype.kind not in "biuf":  # complex, strings, objects (e.g. huge ints)
        raise InputError(f"x must be a 1-D sequence of real numbers, got {raw.dtype}")
    points = raw.astype(np.float64)  # always a copy: the caller keeps its array
    if points.ndim != 1:
        raise InputError(f"x must be 1-D, got shape {points.shape}")
    if points.size == 0:
        raise InputError("x must not be empty")
    finite = np.isfinite(points)
    if not finite.all():
        first = int(np.argmin(finite))
        raise InputError(f"x must be finite (x[{first}] is not)")
    y = np.asarray(activation.fn(points, **resolved), dtype=np.float64)
    dy = np.asarray(activation.grad(points, **resolved), dtype=np.float64)
    if not (np.isfinite(y).all() and np.isfinite(dy).all()):
        raise InputError(
            f"{activation.name} overflows float64 for these x and parameters {resolved}"
        )
    return activation, resolved, points, y, dy
