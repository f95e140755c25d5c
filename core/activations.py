"""Activation functions and their derivatives: the maths, one pair per name.

What each function is for, its formula and its trade-offs are in
:mod:`core.catalogue`; this module only computes. Unless a docstring says
otherwise, every function here follows one signature:

Parameters
----------
x : array_like of shape (...)
    Real numbers. float32 and float64 keep their dtype; integers, booleans
    and float16 are computed in float64.
alpha : float, optional
    Where the function has one: a finite real number.

Returns
-------
ndarray of shape (...), float32 or float64
    Element-wise; never an alias of ``x``.

Raises
------
InputError
    ``x`` is not real numbers (complex, strings, objects), or a parameter is
    not a finite real number (a huge integer included: never OverflowError).

For finite input no function overflows or emits a ``RuntimeWarning``, however
large ``|x|`` is. ``±inf`` gives the limit where one exists; NaN gives NaN,
except where the result is a branch choice (``step``, the ReLU-family
derivatives). Derivatives at a kink take the right-hand value
(``relu_grad(0) == 1``), and ``step_grad`` is 0 everywhere.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import InputError

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
    """``x`` itself when float32/float64, else a float64 copy; InputError if not real."""
    a = np.asarray(x)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind not in "biuf":
        raise InputError(f"x must contain real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _show(value: object) -> str:
    """``repr(value)`` clipped for a message; client values can be any size."""
    if isinstance(value, int) and value.bit_length() > 64:
        # repr() of a 5,000-digit integer raises ValueError (the int/str limit).
        return "an integer beyond 64 bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def real_param(name: str, value: object) -> float:
    """A parameter such as ``alpha`` as a finite float, or InputError.

    Booleans are refused (JSON ``true`` is not a slope), and so is an integer
    too large for a float, which ``float()`` would raise as OverflowError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"parameter {name} must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InputError(f"parameter {name} is too large for a float") from None
    if not math.isfinite(number):
        raise InputError(f"parameter {name} must be finite, got {number!r}")
    return number


def group_size(k: object) -> int:
    """maxout's ``k`` as an int >= 1 (an integral float is accepted), or InputError."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise InputError(f"k must be an integer >= 1, got {_show(k)}")
    if isinstance(k, numbers.Integral):
        size = int(k)  # exact, however large
    else:
        value = float(k)
        if not (math.isfinite(value) and value.is_integer()):
            raise InputError(f"k must be an integer >= 1, got {_show(k)}")
        size = int(value)
    if size < 1:
        raise InputError(f"k must be an integer >= 1, got {_show(size)}")
    return size


def _sigmoid_pair(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(sigmoid(a), 1 - sigmoid(a))``, each without cancellation."""
    # e^(-|x|) is in (0, 1], so nothing overflows; the usual two-branch form
    # 1/(1+e^-x) vs e^x/(1+e^x) then needs no np.exp of a large positive value.
    z = np.exp(-np.abs(a))
    big = 1 / (1 + z)
    small = z / (1 + z)
    positive = a >= 0
    return np.where(positive, big, small), np.where(positive, small, big)


def _erfc(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Element-wise ``math.erfc`` (NumPy has no error function), to ~1 ulp.

    ``map`` over a list costs ~0.15 µs a point, a few times faster than
    ``np.vectorize``.
    """
    flat = np.fromiter(map(math.erfc, v.ravel().tolist()), np.float64, count=v.size)
    return flat.reshape(v.shape)


def _last_axis(x: ArrayLike, name: str) -> FloatArray:
    a = _as_float(x)
    if a.ndim == 0:
        raise InputError(f"{name} needs x with at least 1 dimension, got a scalar")
    return a


# --- the book's: identity, step, sigmoid, ReLU --------------------------------


def identity(x: ArrayLike) -> FloatArray:
    """``x``, as a new array (the book's ``identity_function``)."""
    return _as_float(x).copy()


def identity_grad(x: ArrayLike) -> FloatArray:
    """1 everywhere."""
    return np.ones_like(_as_float(x))


def step(x: ArrayLike) -> FloatArray:
    """1 where ``x > 0``, else 0: ``step(0) == 0`` as in the book; NaN gives 0."""
    a = _as_float(x)
    return (a > 0).astype(a.dtype)


step_function = step
"""The book's name for :func:`step`."""


def step_grad(x: ArrayLike) -> FloatArray:
    """0 everywhere, the jump at 0 included."""
    return np.zeros_like(_as_float(x))


def sigmoid(x: ArrayLike) -> FloatArray:
    """``1 / (1 + e^-x)``, in [0, 1], with full relative accuracy in both tails."""
    return _sigmoid_pair(_as_float(x))[0]


def sigmoid_grad(x: ArrayLike) -> FloatArray:
    """``s(x) (1 - s(x))``, at most 0.25."""
    s, s_neg = _sigmoid_pair(_as_float(x))
    # 1 - s would cancel to 0 for x > ~37; sigmoid(-x) keeps full relative accuracy.
    return s * s_neg


def relu(x: ArrayLike) -> FloatArray:
    """``max(0, x)``."""
    y: FloatArray = np.maximum(_as_float(x), 0)
    return y


def relu_grad(x: ArrayLike) -> FloatArray:
    """1 for ``x >= 0`` (the right-hand value at 0), else 0."""
    a = _as_float(x)
    return (a >= 0).astype(a.dtype)


# --- tanh and the ReLU variants -----------------------------------------------


def tanh(x: ArrayLike) -> FloatArray:
    """Hyperbolic tangent, in [-1, 1]."""
    return np.tanh(_as_float(x))


def tanh_grad(x: ArrayLike) -> FloatArray:
    """``1 - tanh(x)^2 = sech(x)^2``, in [0, 1]."""
    a = _as_float(x)
    # sech x = 2e^(-|x|) / (1 + e^(-2|x|)): no cancellation where tanh^2 -> 1, and
    # squaring e^(-|x|) instead of computing 2|x| cannot overflow.
    z = np.exp(-np.abs(a))
    sech = 2 * z / (1 + z * z)
    dy: FloatArray = sech * sech
    return dy


def leaky_relu(x: ArrayLike, alpha: float = 0.01) -> FloatArray:
    """``x`` for ``x >= 0``, ``alpha x`` below; ±inf where ``alpha x`` overflows."""
    a, slope = _as_float(x), real_param("alpha", alpha)
    # np.where evaluates alpha * x for every element, including the ones it then
    # discards (large positive x with alpha > 1, inf * 0): those must not warn.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(a >= 0, a, a * slope).astype(a.dtype, copy=False)


def leaky_relu_grad(x: ArrayLike, alpha: float = 0.01) -> FloatArray:
    """1 for ``x >= 0`` (the right-hand value at 0), ``alpha`` below."""
    a, slope = _as_float(x), real_param("alpha", alpha)
    with np.errstate(over="ignore"):  # a huge alpha saturates in float32
        return np.where(a >= 0, 1.0, slope).astype(a.dtype, copy=False)


def prelu(x: ArrayLike, alpha: float = 0.25) -> FloatArray:
    """:func:`leaky_relu` whose ``alpha`` training would learn; here it is given."""
    return leaky_relu(x, alpha)


def prelu_grad(x: ArrayLike, alpha: float = 0.25) -> FloatArray:
    """:func:`leaky_relu_grad`: the derivative with respect to ``x``."""
    return leaky_relu_grad(x, alpha)


def elu(x: ArrayLike, alpha: float = 1.0) -> FloatArray:
    """``x`` for ``x >= 0``, ``alpha (e^x - 1)`` below, saturating at ``-alpha``."""
    a, scale = _as_float(x), real_param("alpha", alpha)
    # min(x, 0) keeps exp away from large positive x, whose branch is discarded;
    # expm1 keeps e^x - 1 accurate for tiny negative x.
    with np.errstate(over="ignore"):  # a huge alpha saturates in float32
        negative = scale * np.expm1(np.minimum(a, 0))
        return np.where(a >= 0, a, negative).astype(a.dtype, copy=False)


def elu_grad(x: ArrayLike, alpha: float = 1.0) -> FloatArray:
    """1 for ``x >= 0`` (the right-hand value at 0), ``alpha e^x`` below."""
    a, scale = _as_float(x), real_param("alpha", alpha)
    with np.errstate(over="ignore"):
        negative = scale * np.exp(np.minimum(a, 0))
        return np.where(a >= 0, 1.0, negative).astype(a.dtype, copy=False)


# --- along the last axis: maxout, softmax -------------------------------------


def _groups(x: ArrayLike, k: object) -> tuple[FloatArray, int]:
    """``x`` of shape ``(..., m)`` as ``(..., m // k, k)``, after the checks."""
    a = _last_axis(x, "maxout")
    size = group_size(k)
    m = a.shape[-1]
    if m % size:  # a huge k included: m % k == m
        raise InputError(
            f"maxout needs len(x) to be a multiple of k={_show(size)}, got {m}"
        )
    if m == 0:  # no groups whatever k is; a huge k must not reach reshape
        size = 1
    return a.reshape(*a.shape[:-1], m // size, size), size


def maxout(x: ArrayLike, k: int = 2) -> FloatArray:
    """The maximum of each group of ``k`` consecutive values along the last axis.

    Parameters
    ----------
    x : array_like of shape (..., m)
        ``m`` a multiple of ``k``.
    k : int, default 2
        Group size, an integer >= 1 (an integral float is accepted).

    Returns
    -------
    ndarray of shape (..., m // k), float32 or float64

    Raises
    ------
    InputError
        An invalid ``k``, a scalar ``x``, or ``m`` not a multiple of ``k``.
    """
    g, _ = _groups(x, k)
    y: FloatArray = g.max(axis=-1)
    return y


def maxout_grad(x: ArrayLike, k: int = 2) -> FloatArray:
    """Derivative of :func:`maxout` with respect to each input.

    Returns
    -------
    ndarray of shape (..., m), float32 or float64
        1 at the first arg-max of each group (the input the output copies),
        0 elsewhere.
    """
    g, size = _groups(x, k)
    winner = np.argmax(g, axis=-1, keepdims=True)  # first one on ties
    mask = np.arange(size) == winner
    dy: FloatArray = mask.astype(g.dtype).reshape(*g.shape[:-2], -1)
    return dy


def _shifted(a: FloatArray) -> FloatArray:
    """``a - max(a)`` along the last axis: every entry <= 0, the maximum 0."""
    # Softmax is invariant to adding a constant to a row; subtracting the row max
    # makes every exponent <= 0, so e^x cannot overflow and each row sums to >= 1.
    # A difference beyond the float range (finite rows spanning more than the max
    # float) correctly becomes -inf and e^-inf = 0; inf - inf in a non-finite row
    # gives NaN. Neither should warn.
    with np.errstate(over="ignore", invalid="ignore"):
        d: FloatArray = a - np.max(a, axis=-1, keepdims=True)
    return d


def softmax(x: ArrayLike) -> FloatArray:
    """Softmax along the last axis: each row becomes positive and sums to 1.

    Parameters
    ----------
    x : array_like of shape (..., k)
        One score vector, or a batch of them as rows, e.g. ``(n, 10)``.

    Returns
    -------
    ndarray of shape (..., k), float32 or float64
        A row containing NaN or +inf gives NaN.

    Raises
    ------
    InputError
        ``x`` is a scalar.
    """
    a = _last_axis(x, "softmax")
    if a.shape[-1] == 0:
        return a.copy()
    e = np.exp(_shifted(a))
    y: FloatArray = e / np.sum(e, axis=-1, keepdims=True)
    return y


def softmax_grad(x: ArrayLike) -> FloatArray:
    """Diagonal of the softmax Jacobian, ``s_i (1 - s_i)``, along the last axis.

    The full Jacobian of a row is ``diag(s) - s s^T``; ``/activations`` reports
    its diagonal, ``d s_i / d x_i``. Shapes and errors as :func:`softmax`.
    """
    a = _last_axis(x, "softmax")
    if a.shape[-1] == 0:
        return a.copy()
    e = np.exp(_shifted(a))
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


def log_softmax(x: ArrayLike) -> FloatArray:
    """``log(softmax(x))`` along the last axis, finite for any finite row.

    What a cross-entropy loss needs: ``log`` of :func:`softmax` itself gives
    ``-inf`` once a probability underflows. Shapes and errors as :func:`softmax`.
    """
    d = _shifted(_last_axis(x, "log_softmax"))
    y: FloatArray = d - np.log(np.sum(np.exp(d), axis=-1, keepdims=True))
    return y


# --- beyond the book: GELU, SiLU, softplus ------------------------------------


def gelu(x: ArrayLike) -> FloatArray:
    """``x Phi(x)``, the exact erf form; computed in float64 and cast back.

    Phi is ``erfc(-x / sqrt 2) / 2`` with ``math.erfc`` per point, which keeps
    full relative accuracy in the left tail, where ``1 + erf`` cancels; about
    15 ms per 100,000 points.
    """
    a = _as_float(x)
    v = a.astype(np.float64, copy=False)
    cdf = 0.5 * _erfc(-v / _SQRT_2)
    return (np.maximum(v, -_GELU_CLIP) * cdf).astype(a.dtype, copy=False)


def gelu_grad(x: ArrayLike) -> FloatArray:
    """``Phi(x) + x phi(x)``, phi the standard normal pdf; in about [-0.13, 1.13]."""
    a = _as_float(x)
    v = a.astype(np.float64, copy=False)
    cdf = 0.5 * _erfc(-v / _SQRT_2)
    # Clipping keeps x*x finite; phi(+-40) is already exactly 0 in float64.
    c = np.clip(v, -_GELU_CLIP, _GELU_CLIP)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * c * c)
    return (cdf + c * pdf).astype(a.dtype, copy=False)


def silu(x: ArrayLike) -> FloatArray:
    """``x sigmoid(x)`` (Swish with beta = 1)."""
    a = _as_float(x)
    s, _ = _sigmoid_pair(a)
    return np.maximum(a, -_SILU_CLIP) * s


def silu_grad(x: ArrayLike) -> FloatArray:
    """``s + x s (1 - s)`` with ``s = sigmoid(x)``; in about [-0.1, 1.1]."""
    a = _as_float(x)
    s, s_neg = _sigmoid_pair(a)
    c = np.clip(a, -_SILU_CLIP, _SILU_CLIP)
    return s + c * s * s_neg


def softplus(x: ArrayLike) -> FloatArray:
    """``ln(1 + e^x)``, positive (0 only where ``e^x`` underflows)."""
    a = _as_float(x)
    # ln(1 + e^x) = max(x, 0) + ln(1 + e^(-|x|)): the exponent is never positive,
    # so nothing overflows, and log1p keeps the small correction accurate.
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def softplus_grad(x: ArrayLike) -> FloatArray:
    """:func:`sigmoid`."""
    return sigmoid(x)
