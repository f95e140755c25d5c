"""The activation catalogue behind ``/activations`` and the page's explorer.

One :class:`Activation` record per function of :mod:`core.activations`: its
name and aliases, the function and its derivative, its parameters with their
defaults, a formula and a few sentences on when to use it. :func:`evaluate`
runs one on client points, with the typed checks that keep every bad value an
:class:`~core.errors.InputError`.
"""

# The formulas and notes are written in mathematical Unicode on purpose (Greek
# letters, the minus sign): they are shown to people, not parsed.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core import activations as act
from core.errors import InputError, UnknownActivationError

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation function, as ``GET /activations`` lists it.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"leaky_relu"``.
    f, df : callable
        ``f(x, **params) -> ndarray`` and its derivative (maxout: per input;
        softmax: the Jacobian's diagonal), from :mod:`core.activations`.
    formula : str
        Plain-text/Unicode formula.
    notes : str
        Strengths and weaknesses in a few sentences.
    aliases : tuple of str
        Other accepted names, lower case.
    params : Mapping of str to float
        Parameter names and default values (read-only).
    """

    name: str
    f: Callable[..., act.FloatArray]
    df: Callable[..., act.FloatArray]
    formula: str
    notes: str
    aliases: tuple[str, ...] = ()
    params: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def _prose(text: str) -> str:
    """A triple-quoted paragraph as one line of text."""
    return " ".join(text.split())


_ENTRIES = (
    Activation(
        "identity", act.identity, act.identity_grad,
        formula="f(x) = x",
        aliases=("linear",),
        notes=_prose("""
            Passes its input through unchanged; the usual output activation for
            regression (the book's identity_function). Stacking linear layers with it
            yields just another linear map, so it adds no expressive power in hidden
            layers.
        """),
    ),
    Activation(
        "step", act.step, act.step_grad,
        formula="h(x) = 1 if x > 0 else 0",
        notes=_prose("""
            The perceptron's threshold unit (the book's step_function). Its derivative
            is 0 everywhere except at the jump, where it does not exist, so gradient
            descent gets no signal through it; that is why neural networks use smooth
            activations such as the sigmoid.
        """),
    ),
    Activation(
        "sigmoid", act.sigmoid, act.sigmoid_grad,
        formula="σ(x) = 1 / (1 + e^(−x))",
        notes=_prose("""
            Smooth and bounded in (0, 1), so it reads as a probability; the classic
            choice for binary outputs and the hidden activation of the book's chapter 3
            network. Its derivative σ(1 − σ) is at most 0.25 and vanishes for large |x|,
            so gradients shrink layer by layer (vanishing gradients). Its output is not
            zero-centred, which skews weight updates, and exp costs more than a
            comparison.
        """),
    ),
    Activation(
        "tanh", act.tanh, act.tanh_grad,
        formula="tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x))",
        notes=_prose("""
            A rescaled sigmoid, tanh(x) = 2σ(2x) − 1, with zero-centred output in (−1,
            1) and slope 1 at the origin, so it usually trains faster than the sigmoid.
            It still saturates: 1 − tanh² vanishes for large |x|, and deep stacks suffer
            from vanishing gradients.
        """),
    ),
    Activation(
        "relu", act.relu, act.relu_grad,
        formula="ReLU(x) = max(0, x)",
        notes=_prose("""
            Cheap and non-saturating for x > 0, where the gradient is exactly 1, which
            makes deep networks trainable and gives sparse activations; the default
            hidden activation today. For x < 0 the gradient is 0, so a unit pushed below
            0 for every input stops learning (dying ReLU). Its output is not
            zero-centred, and at the kink the right-hand derivative 1 is used.
        """),
    ),
    Activation(
        "leaky_relu", act.leaky_relu, act.leaky_relu_grad,
        formula="f(x) = x if x ≥ 0 else αx",
        params=MappingProxyType({"alpha": 0.01}),
        notes=_prose("""
            ReLU with a small fixed slope α for x < 0, so negative inputs still pass a
            gradient and units cannot die. It keeps ReLU's low cost, but α is a
            hyperparameter and the gain over ReLU is often small.
        """),
    ),
    Activation(
        "prelu", act.prelu, act.prelu_grad,
        formula="f(x) = x if x ≥ 0 else αx  (α learned)",
        params=MappingProxyType({"alpha": 0.25}),
        notes=_prose("""
            Parametric ReLU (He et al., 2015): the Leaky ReLU formula with α learned by
            backpropagation, per channel or shared; here α is a given value, defaulting
            to their initial 0.25. The network picks its own negative slope and units do
            not die, at the cost of extra parameters and some overfitting risk on small
            data sets.
        """),
    ),
    Activation(
        "elu", act.elu, act.elu_grad,
        formula="f(x) = x if x ≥ 0 else α(e^x − 1)",
        params=MappingProxyType({"alpha": 1.0}),
        notes=_prose("""
            Identity for x ≥ 0 and a smooth curve saturating at −α below. Negative
            outputs push mean activations towards 0, and the gradient αe^x never reaches
            exactly 0, which answers ReLU's dying units. It costs an exp for negative
            inputs, and for α ≠ 1 the slope jumps at 0 (the right-hand value 1 is used).
        """),
    ),
    Activation(
        "maxout", act.maxout, act.maxout_grad,
        formula="y_j = max(x_(jk), x_(jk+1), …, x_(jk+k−1))",
        params=MappingProxyType({"k": 2}),
        notes=_prose("""
            Goodfellow et al. (2013): each output is the maximum of a group of k inputs
            (normally k learned linear pieces), so a unit learns a convex
            piecewise-linear activation with ReLU and Leaky ReLU as special cases. It
            neither saturates nor dies, since the gradient 1 always reaches each group's
            winner, but it costs k times the parameters. Here y has len(x)/k values and
            dy marks each group's first arg-max.
        """),
    ),
    Activation(
        "softmax", act.softmax, act.softmax_grad,
        formula="softmax(x)_i = e^(x_i) / Σ_j e^(x_j)",
        notes=_prose("""
            Turns a score vector into a probability distribution, hence the output layer
            of multi-class classifiers such as this MNIST network; it keeps the order,
            so argmax needs no softmax. Adding one constant to every input changes
            nothing, which lets implementations subtract the maximum so that exp cannot
            overflow. dy is the Jacobian's diagonal s_i(1 − s_i); the full Jacobian is
            diag(s) − s sᵀ.
        """),
    ),
    Activation(
        "gelu", act.gelu, act.gelu_grad,
        formula="GELU(x) = x·Φ(x) = ½·x·(1 + erf(x / √2))",
        notes=_prose("""
            Gaussian Error Linear Unit (Hendrycks and Gimpel, 2016): x weighted by the
            probability Φ(x) that a standard normal variable is below it, a smooth
            ReLU-like curve with a small negative dip (minimum ≈ −0.17 at x ≈ −0.75). It
            is the standard activation of transformers such as BERT and GPT, but
            costlier than ReLU; this is the exact erf form, not the tanh approximation.
        """),
    ),
    Activation(
        "silu", act.silu, act.silu_grad,
        formula="SiLU(x) = x·σ(x) = x / (1 + e^(−x))",
        aliases=("swish",),
        notes=_prose("""
            Sigmoid-weighted linear unit, also called Swish (β = 1): smooth,
            non-monotonic, bounded below (minimum ≈ −0.28 at x ≈ −1.28). Unlike ReLU it
            keeps a gradient for negative inputs; it is used in modern CNNs and, gated
            (SwiGLU), in transformer language models. It needs an exp per element.
        """),
    ),
    Activation(
        "softplus", act.softplus, act.softplus_grad,
        formula="softplus(x) = ln(1 + e^x)",
        notes=_prose("""
            A smooth, always positive approximation of ReLU whose derivative is the
            sigmoid. It is differentiable everywhere, but costs exp and log, gives no
            exact zeros (no sparsity) and its gradient still vanishes for very negative
            x.
        """),
    ),
)  # fmt: skip

ACTIVATIONS: Mapping[str, Activation] = MappingProxyType({a.name: a for a in _ENTRIES})
"""The catalogue, keyed by canonical name, in the order of API.md."""


def names() -> list[str]:
    """The canonical activation names, in catalogue order."""
    return list(ACTIVATIONS)


def get(name: str) -> Activation:
    """Look up an activation by name or alias, ignoring case and surrounding spaces.

    Raises
    ------
    UnknownActivationError
        No name or alias matches; the error lists the valid names.
    """
    key = name.strip().lower()
    for activation in ACTIVATIONS.values():
        if key == activation.name or key in activation.aliases:
            return activation
    raise UnknownActivationError(name, names())


def _resolve_params(
    activation: Activation, params: Mapping[str, object] | None
) -> dict[str, float]:
    """The defaults with ``params`` merged over them, each value checked."""
    given = dict(params or {})
    unknown = sorted(map(str, set(given) - set(activation.params)))
    if unknown:
        valid = ", ".join(activation.params) or "none"
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)} for {activation.name}; "
            f"valid parameters: {valid}"
        )
    resolved = dict(activation.params)
    for key, value in given.items():
        resolved[key] = (
            act.group_size(value) if key == "k" else act.real_param(key, value)
        )
    return resolved


def _points(x: ArrayLike) -> F64:
    """``x`` as a non-empty, finite, 1-D float64 copy, or InputError."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as exc:  # ragged nesting
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
        raise InputError(f"x must be finite (x[{int(np.argmin(finite))}] is not)")
    return points


def evaluate(
    name: str, x: ArrayLike, params: Mapping[str, object] | None = None
) -> tuple[Activation, dict[str, float], F64, F64, F64]:
    """Evaluate an activation and its derivative at the points ``x``.

    Point-count limits are the caller's (the HTTP layer's settings).

    Parameters
    ----------
    name : str
        Canonical name or alias, any case.
    x : array_like of shape (n,)
        Finite real numbers, ``n >= 1``.
    params : Mapping of str to number, optional
        Overrides of the activation's defaults, as the client sent them.

    Returns
    -------
    activation : Activation
    params : dict of str to float
        The defaults merged with ``params`` (maxout's ``k`` as an int).
    x : ndarray of shape (n,), float64
        A copy of the input.
    y : ndarray of shape (n,), float64
        ``(n // k,)`` for maxout.
    dy : ndarray of shape (n,), float64

    Raises
    ------
    UnknownActivationError
        ``name`` is not in the catalogue.
    InputError
        An unknown parameter or a value that is not a finite real number
        (booleans, strings and integers beyond a float's range included), an
        ``x`` that is not a non-empty 1-D sequence of finite real numbers, a
        maxout ``n`` that is not a multiple of ``k``, or a result that
        overflows float64 (e.g. a huge ``alpha``).
    """
    activation = get(name)
    resolved = _resolve_params(activation, params)
    points = _points(x)
    y: F64 = np.asarray(activation.f(points, **resolved), dtype=np.float64)
    dy: F64 = np.asarray(activation.df(points, **resolved), dtype=np.float64)
    if not (np.isfinite(y).all() and np.isfinite(dy).all()):
        raise InputError(
            f"{activation.name} overflows float64 for these x and parameters {resolved}"
        )
    return activation, resolved, points, y, dy
