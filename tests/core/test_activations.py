"""Tests of core.activations against independent pure-Python references."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import activations as act
from core.errors import InputError
from tests.core.conftest import NAMES

# The database would write .hypothesis/ into the working tree; runs stay short.
FAST = settings(max_examples=60, deadline=None, database=None)

ELEMENTWISE = [n for n in NAMES if n not in ("maxout", "softmax")]


def f_of(name: str) -> Callable[..., np.ndarray]:
    fn: Callable[..., np.ndarray] = getattr(act, name)
    return fn


def df_of(name: str) -> Callable[..., np.ndarray]:
    fn: Callable[..., np.ndarray] = getattr(act, f"{name}_grad")
    return fn


# Large |x| where naive formulas overflow, the kink at 0, and values near 0.
GRID = [
    -1e4,
    -700.0,
    -30.0,
    -5.0,
    -1.0,
    -0.5,
    -1e-8,
    -1e-300,
    0.0,
    1e-300,
    1e-8,
    0.5,
    1.0,
    5.0,
    30.0,
    700.0,
    1e4,
]
EXTREME = [-1e300, -1e4, -1000.0, -700.0, -30.0, 0.0, 30.0, 700.0, 1000.0, 1e4, 1e300]


# --- independent references: per element, float64, from the formula -------------------


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def ref_identity(v: float) -> float:
    return v


def ref_step(v: float) -> float:
    return 1.0 if v > 0 else 0.0


def ref_sigmoid(v: float) -> float:
    # The textbook formula is accurate for any v once e^(-v) may become inf.
    return 1.0 / (1.0 + _exp(-v))


def ref_tanh(v: float) -> float:
    # tanh|v| = (1 - e^(-2|v|)) / (1 + e^(-2|v|)), written with expm1.
    m = math.expm1(-2.0 * abs(v))
    return math.copysign(-m / (2.0 + m), v)


def ref_relu(v: float) -> float:
    return v if v > 0 else 0.0


def ref_leaky(v: float, alpha: float) -> float:
    return v if v > 0 else alpha * v


def ref_elu(v: float, alpha: float) -> float:
    return v if v > 0 else alpha * math.expm1(v)


def ref_gelu(v: float) -> float:
    return v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


def ref_silu(v: float) -> float:
    return v / (1.0 + _exp(-v))


def ref_softplus(v: float) -> float:
    try:
        return math.log1p(math.exp(v))
    except OverflowError:
        return v  # ln(1 + e^v) == v to double precision once v > 37


def ref_softmax(row: list[float]) -> list[float]:
    # s_i = 1 / sum_j e^(x_j - x_i): no max subtraction; overflow means s_i ~ 0.
    return [1.0 / math.fsum(_exp(xj - xi) for xj in row) for xi in row]


def ref_softmax_diag(row: list[float]) -> list[float]:
    # s_i (1 - s_i) = S_other / (1 + S_other)^2, S_other = sum_{j != i} e^(x_j - x_i)
    out = []
    for i, xi in enumerate(row):
        other = math.fsum(_exp(xj - xi) for j, xj in enumerate(row) if j != i)
        out.append(0.0 if math.isinf(other) else other / (1.0 + other) ** 2)
    return out


def ref_maxout(values: list[float], k: int) -> tuple[list[float], list[float]]:
    y, dy = [], []
    for start in range(0, len(values), k):
        group = values[start : start + k]
        best = max(group)
        y.append(best)
        first = group.index(best)
        dy.extend(1.0 if i == first else 0.0 for i in range(k))
    return y, dy


RefFn = Callable[..., float]

# name, params, reference, (rtol, atol) for the value check
ELEMENTWISE_CASES: list[tuple[str, dict[str, float], RefFn, float, float]] = [
    ("identity", {}, ref_identity, 0.0, 0.0),
    ("step", {}, ref_step, 0.0, 0.0),
    ("sigmoid", {}, ref_sigmoid, 1e-14, 0.0),
    ("tanh", {}, ref_tanh, 1e-14, 0.0),
    ("relu", {}, ref_relu, 0.0, 0.0),
    ("leaky_relu", {}, lambda v: ref_leaky(v, 0.01), 1e-15, 0.0),
    ("leaky_relu", {"alpha": 0.3}, lambda v: ref_leaky(v, 0.3), 1e-15, 0.0),
    ("prelu", {}, lambda v: ref_leaky(v, 0.25), 1e-15, 0.0),
    ("prelu", {"alpha": 2.5}, lambda v: ref_leaky(v, 2.5), 1e-15, 0.0),
    ("elu", {}, lambda v: ref_elu(v, 1.0), 1e-14, 0.0),
    ("elu", {"alpha": 0.5}, lambda v: ref_elu(v, 0.5), 1e-14, 0.0),
    # 1 + erf(x/sqrt 2) cancels for x << 0, so the erf reference is only good to
    # ~1e-16 absolute there; the tail is checked separately below.
    ("gelu", {}, ref_gelu, 1e-13, 1e-15),
    ("silu", {}, ref_silu, 1e-14, 0.0),
    ("softplus", {}, ref_softplus, 1e-14, 0.0),
]
CASE_IDS = [f"{n}-{p}" if p else n for n, p, *_ in ELEMENTWISE_CASES]


@pytest.mark.parametrize(
    ("name", "params", "ref", "rtol", "atol"), ELEMENTWISE_CASES, ids=CASE_IDS
)
def test_values_match_reference(
    name: str, params: dict[str, float], ref: RefFn, rtol: float, atol: float
) -> None:
    x = np.array(GRID)
    y = f_of(name)(x, **params)
    expected = np.array([ref(v) for v in GRID])
    assert y.dtype == np.float64
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)


def _central_difference(f: RefFn, v: float) -> float:
    # h ~ eps^(1/3) |x| balances truncation (h^2) against rounding (eps/h); dividing
    # by the step actually represented removes the error of forming v +- h.
    h = 6e-6 * max(1.0, abs(v))
    hi, lo = v + h, v - h
    return (f(hi) - f(lo)) / (hi - lo)


FD_POINTS = [-1e4, -700.0, -30.0, -8.0, -3.0, -1.3, -0.6, -0.2, 0.3, 0.9, 2.0, 4.0]
FD_POINTS += [8.0, 30.0, 700.0, 1e4]


@pytest.mark.parametrize(
    ("name", "params", "ref", "rtol", "atol"), ELEMENTWISE_CASES, ids=CASE_IDS
)
def test_derivative_matches_central_difference(
    name: str, params: dict[str, float], ref: RefFn, rtol: float, atol: float
) -> None:
    del rtol, atol  # the value tolerances; finite differences have their own
    x = np.array(FD_POINTS)  # no point within h of the kink at 0
    dy = df_of(name)(x, **params)
    fd = np.array([_central_difference(ref, v) for v in FD_POINTS])
    np.testing.assert_allclose(dy, fd, rtol=1e-6, atol=1e-9)


def _ref_sech2(v: float) -> float:
    try:
        return 1.0 / math.cosh(v) ** 2
    except OverflowError:
        return 0.0


def _ref_gelu_grad(v: float) -> float:
    pdf = math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) + v * pdf


# Closed-form derivatives, written from the textbook identities, checked over the
# whole grid (kink included, right-hand convention) with tight tolerances: this
# catches a derivative that is right near 0 but loses its tails to cancellation.
ANALYTIC_GRADS: list[tuple[str, dict[str, float], RefFn, float]] = [
    ("identity", {}, lambda v: 1.0, 0.0),
    ("step", {}, lambda v: 0.0, 0.0),
    ("sigmoid", {}, lambda v: ref_sigmoid(v) * ref_sigmoid(-v), 1e-13),
    ("tanh", {}, _ref_sech2, 1e-13),
    ("relu", {}, lambda v: 1.0 if v >= 0 else 0.0, 0.0),
    ("leaky_relu", {"alpha": 0.3}, lambda v: 1.0 if v >= 0 else 0.3, 0.0),
    ("prelu", {}, lambda v: 1.0 if v >= 0 else 0.25, 0.0),
    ("elu", {"alpha": 0.5}, lambda v: 1.0 if v >= 0 else 0.5 * math.exp(v), 1e-14),
    ("silu", {}, lambda v: ref_sigmoid(v) * (1 + v * ref_sigmoid(-v)), 1e-13),
    ("softplus", {}, ref_sigmoid, 1e-14),
]


@pytest.mark.parametrize(
    ("name", "params", "ref", "rtol"),
    ANALYTIC_GRADS,
    ids=[c[0] for c in ANALYTIC_GRADS],
)
def test_derivative_matches_closed_form(
    name: str, params: dict[str, float], ref: RefFn, rtol: float
) -> None:
    dy = df_of(name)(np.array(GRID), **params)
    np.testing.assert_allclose(dy, [ref(v) for v in GRID], rtol=rtol, atol=0)


def test_gelu_derivative_matches_closed_form() -> None:
    # Like the value, the erf reference cancels for x << 0: absolute tolerance.
    dy = act.gelu_grad(np.array(GRID))
    np.testing.assert_allclose(dy, [_ref_gelu_grad(v) for v in GRID], atol=1e-15)


def test_gelu_left_tail_keeps_relative_accuracy() -> None:
    # Mills-ratio series: Phi(x) = phi(x)/|x| (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...)
    for v in (-10.0, -20.0, -30.0):
        pdf = math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
        cdf = pdf / -v * (1 - v**-2 + 3 * v**-4 - 15 * v**-6 + 105 * v**-8)
        assert act.gelu(np.array([v]))[0] == pytest.approx(v * cdf, rel=1e-6)


@pytest.mark.parametrize(
    ("fn", "x", "expected"),
    [
        (act.relu_grad, 0.0, 1.0),
        (act.relu_grad, -1e-300, 0.0),
        (act.leaky_relu_grad, 0.0, 1.0),
        (act.leaky_relu_grad, -1e-300, 0.01),
        (act.prelu_grad, 0.0, 1.0),
        (act.prelu_grad, -1e-300, 0.25),
        (act.elu_grad, 0.0, 1.0),
        (act.elu_grad, -1e-300, 1.0),
        (act.step_grad, 0.0, 0.0),
        (act.step_grad, 1.0, 0.0),
        (act.step_grad, -1.0, 0.0),
        (act.step, 0.0, 0.0),
        (act.relu, 0.0, 0.0),
        (act.sigmoid, 0.0, 0.5),
        (act.sigmoid_grad, 0.0, 0.25),
        (act.tanh_grad, 0.0, 1.0),
        (act.gelu, 0.0, 0.0),
        (act.gelu_grad, 0.0, 0.5),
        (act.silu_grad, 0.0, 0.5),
        (act.softplus, 0.0, math.log(2.0)),
    ],
)
def test_known_values_and_kinks(
    fn: Callable[..., np.ndarray], x: float, expected: float
) -> None:
    assert fn(np.array([x]))[0] == expected


def test_elu_kink_takes_right_hand_value_for_any_alpha() -> None:
    dy = act.elu_grad(np.array([-1e-300, 0.0, 1e-300]), alpha=0.5)
    np.testing.assert_array_equal(dy, [0.5, 1.0, 1.0])


# --- no overflow, no warnings, dtype --------------------------------------------------


def _call(name: str, fn: str, x: np.ndarray) -> np.ndarray:
    if name == "maxout" and x.size % 2:
        x = x[:-1]
    return (f_of if fn == "f" else df_of)(name)(x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_inputs_stay_finite_without_warnings(name: str, dtype: type) -> None:
    limit = float(np.finfo(dtype).max)
    x = np.clip(np.array(EXTREME), -limit, limit).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for fn in ("f", "df"):
            out = _call(name, fn, x)
            assert out.dtype == dtype
            assert np.isfinite(out).all(), (fn, out)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_inputs_raise_no_floating_point_errors(name: str) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        _call(name, "f", x)
        _call(name, "df", x)


@pytest.mark.parametrize(
    ("name", "x", "expected"),
    [
        ("sigmoid", [np.inf, -np.inf], [1.0, 0.0]),
        ("tanh", [np.inf, -np.inf], [1.0, -1.0]),
        ("relu", [np.inf, -np.inf], [np.inf, 0.0]),
        ("elu", [np.inf, -np.inf], [np.inf, -1.0]),
        ("gelu", [np.inf, -np.inf], [np.inf, 0.0]),
        ("silu", [np.inf, -np.inf], [np.inf, 0.0]),
        ("softplus", [np.inf, -np.inf], [np.inf, 0.0]),
        ("sigmoid", [np.nan], [np.nan]),
        ("softplus", [np.nan], [np.nan]),
    ],
)
def test_infinite_inputs_give_limits(
    name: str, x: list[float], expected: list[float]
) -> None:
    np.testing.assert_array_equal(f_of(name)(np.array(x)), expected)


@pytest.mark.parametrize("name", NAMES)
def test_float32_is_preserved_and_close_to_float64(name: str) -> None:
    x64 = np.linspace(-6, 6, 24)
    for fn in ("fn", "grad"):
        out32 = _call(name, fn, x64.astype(np.float32))
        out64 = _call(name, fn, x64)
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, out64, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("x", [[-2, 0, 1, 3], [True, False, True, True]])
def test_integer_and_bool_inputs_become_float64(name: str, x: list[int]) -> None:
    for fn in ("fn", "grad"):
        out = _call(name, fn, np.array(x))
        expected = _call(name, fn, np.array(x, dtype=np.float64))
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", NAMES)
def test_non_real_input_is_rejected(name: str) -> None:
    with pytest.raises(InputError, match="real numbers"):
        _call(name, "f", np.array(["a", "b"]))


def test_identity_returns_a_copy() -> None:
    x = np.array([1.0, 2.0])
    y = act.identity(x)
    y[0] = 5.0
    assert x[0] == 1.0


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_batch_matches_rows(name: str) -> None:
    x = np.linspace(-4, 4, 12).reshape(3, 4)
    for fn in (f_of(name), df_of(name)):
        batch = fn(x)
        assert batch.shape == (3, 4)
        for i in range(3):
            np.testing.assert_array_equal(batch[i], fn(x[i]))


# --- softmax --------------------------------------------------------------------------

SOFTMAX_ROWS = [
    [0.0],
    [1.0, 2.0, 3.0],
    [-1000.0, 0.0, 1000.0],
    [1000.0, 1000.0, 999.0],
    [1e4, 1e4 - 1, 1e4 - 30],
    [-1e4, -1e4, -1e4 + 5],
    [0.0, 40.0],  # the arg-max's 1 - s is ~4e-18, lost by a naive 1 - s
    [3.0, -2.0, 0.5, 0.5, 7.0, -7.0],
]


@pytest.mark.parametrize("row", SOFTMAX_ROWS)
def test_softmax_matches_reference(row: list[float]) -> None:
    x = np.array(row)
    s = act.softmax(x)
    np.testing.assert_allclose(s, ref_softmax(row), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(act.softmax_grad(x), ref_softmax_diag(row), rtol=1e-12)
    assert math.fsum(s) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("row", [[0.3, -1.2, 2.0, 0.0], [5.0, 5.5, -3.0]])
def test_softmax_grad_matches_central_difference(row: list[float]) -> None:
    dy = act.softmax_grad(np.array(row))
    for i in range(len(row)):

        def s_i(v: float, i: int = i) -> float:
            return ref_softmax([v if j == i else xj for j, xj in enumerate(row)])[i]

        assert dy[i] == pytest.approx(_central_difference(s_i, row[i]), rel=1e-6)


def test_softmax_rows_of_a_batch() -> None:
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0], [-5.0, 0.0, 5.0]])
    s = act.softmax(x)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(s[1], [1 / 3] * 3)
    for i, row in enumerate(x):
        np.testing.assert_array_equal(s[i], act.softmax(row))
        np.testing.assert_array_equal(act.softmax_grad(x)[i], act.softmax_grad(row))


@pytest.mark.parametrize("shift", [-1e4, -1000.0, -1.0, 0.5, 1000.0, 1e4])
def test_softmax_is_shift_invariant(shift: float) -> None:
    x = np.array([0.25, -1.5, 2.0, 0.0])
    np.testing.assert_allclose(act.softmax(x + shift), act.softmax(x), rtol=1e-11)


@pytest.mark.parametrize(
    "fn", [act.softmax, act.softmax_grad, act.log_softmax, act.maxout]
)
def test_axis_functions_reject_scalars(fn: Callable[..., np.ndarray]) -> None:
    with pytest.raises(InputError, match="at least 1 dimension"):
        fn(np.float64(1.0))


@pytest.mark.parametrize("row", SOFTMAX_ROWS)
def test_log_softmax_is_the_log_of_softmax_without_underflow(row: list[float]) -> None:
    got = act.log_softmax(np.array(row))
    assert np.isfinite(got).all()  # finite where softmax itself underflows to 0
    top = max(row)
    log_total = math.log(math.fsum(math.exp(v - top) for v in row))
    np.testing.assert_allclose(got, [v - top - log_total for v in row], rtol=1e-13)
    s = ref_softmax(row)
    shown = [i for i, v in enumerate(s) if v > 1e-300]
    np.testing.assert_allclose(got[shown], [math.log(s[i]) for i in shown], rtol=1e-12)


def test_softmax_of_empty_rows_is_empty() -> None:
    assert act.softmax(np.zeros((2, 0))).shape == (2, 0)
    assert act.softmax_grad(np.zeros((0,))).shape == (0,)


# --- maxout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "k", "y", "dy"),
    [
        ([1, 5, 3, 2, -1, -4], 2, [5, 3, -1], [0, 1, 1, 0, 1, 0]),
        ([1, 5, 3, 2, -1, -4], 3, [5, 2], [0, 1, 0, 1, 0, 0]),
        ([1, 5, 3, 2, -1, -4], 6, [5], [0, 1, 0, 0, 0, 0]),
        ([1, 5, 3], 1, [1, 5, 3], [1, 1, 1]),
        ([2, 2, 1, 1], 2, [2, 1], [1, 0, 1, 0]),  # ties: the first arg-max
        ([7, 7, 7], 3, [7], [1, 0, 0]),
    ],
)
def test_maxout_groups(x: list[float], k: int, y: list[float], dy: list[float]) -> None:
    np.testing.assert_array_equal(act.maxout(np.array(x, float), k=k), y)
    np.testing.assert_array_equal(act.maxout_grad(np.array(x, float), k=k), dy)
    ref_y, ref_dy = ref_maxout([float(v) for v in x], k)
    assert (ref_y, ref_dy) == ([float(v) for v in y], [float(v) for v in dy])


def test_maxout_batch_groups_along_last_axis() -> None:
    x = np.array([[1.0, 4.0, 3.0, 2.0], [0.0, -1.0, 9.0, 9.0]])
    np.testing.assert_array_equal(act.maxout(x), [[4.0, 3.0], [0.0, 9.0]])
    np.testing.assert_array_equal(act.maxout_grad(x), [[0, 1, 1, 0], [1, 0, 1, 0]])


def test_maxout_grad_matches_central_difference() -> None:
    row = [0.3, -1.2, 2.0, 0.1, -0.5, -0.4]
    dy = act.maxout_grad(np.array(row), k=3)
    for j in range(len(row)):

        def y_of(v: float, j: int = j) -> float:
            moved = [v if i == j else xi for i, xi in enumerate(row)]
            return ref_maxout(moved, 3)[0][j // 3]

        assert dy[j] == pytest.approx(_central_difference(y_of, row[j]), abs=1e-9)


@pytest.mark.parametrize("k", [0, -1, 1.5, math.nan, math.inf, True, "2", None])
def test_maxout_rejects_bad_k(k: object) -> None:
    with pytest.raises(InputError, match="k must be an integer >= 1"):
        act.maxout(np.zeros(4), k=k)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="k must be an integer >= 1"):
        act.maxout_grad(np.zeros(4), k=k)  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "k"), [(3, 2), (5, 2), (4, 3), (1, 2)])
def test_maxout_rejects_length_not_multiple_of_k(size: int, k: int) -> None:
    with pytest.raises(InputError, match=f"multiple of k={k}, got {size}"):
        act.maxout(np.zeros(size), k=k)


@pytest.mark.parametrize(
    "k", [10**400, -(10**400), 2**63, 1e300], ids=["10^400", "-10^400", "2^63", "1e300"]
)
def test_maxout_huge_k_is_an_input_error(k: object) -> None:
    # Never OverflowError (a 500 over HTTP), whatever the size of the integer.
    for fn in (act.maxout, act.maxout_grad):
        with pytest.raises(InputError, match="k"):
            fn(np.zeros(4), k=k)  # type: ignore[arg-type]
        # An empty axis has no groups for any k: empty, not an error.
        if isinstance(k, int) and k > 0:
            assert fn(np.zeros((2, 0)), k=k).shape == (2, 0)


@pytest.mark.parametrize(
    ("alpha", "message"),
    [
        (10**400, "alpha is too large for a float"),
        (-(10**5000), "alpha is too large for a float"),
        (math.nan, "alpha must be finite"),
        (math.inf, "alpha must be finite"),
        (True, "alpha must be a number"),
        ("0.1", "alpha must be a number"),
        (None, "alpha must be a number"),
    ],
    ids=["10^400", "-10^5000", "nan", "inf", "true", "string", "none"],
)
@pytest.mark.parametrize("name", ["leaky_relu", "prelu", "elu"])
def test_alpha_is_a_finite_real_number(name: str, alpha: object, message: str) -> None:
    for fn in (f_of(name), df_of(name)):
        with pytest.raises(InputError, match=message):
            fn(np.zeros(3), alpha=alpha)
    # Any real type of a finite value works: int, NumPy scalars.
    for ok in (2, np.float32(0.5), np.int64(3)):
        assert np.isfinite(f_of(name)(np.array([-1.0, 1.0]), alpha=ok)).all()


def test_maxout_accepts_integral_float_k() -> None:
    np.testing.assert_array_equal(act.maxout(np.arange(4.0), k=2.0), [1.0, 3.0])  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------

finite64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
vectors = hnp.arrays(np.float64, st.integers(1, 16), elements=finite64)
moderate = hnp.arrays(
    np.float64, st.integers(1, 16), elements=st.floats(-1e3, 1e3, width=64)
)


@FAST
@given(vectors)
def test_every_function_is_finite_for_finite_input(x: np.ndarray) -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for name in NAMES:
            for fn in ("f", "df"):
                out = _call(name, fn, x)
                assert np.isfinite(out).all(), (name, fn, x, out)


@FAST
@given(vectors)
def test_sigmoid_bounds_and_symmetry(x: np.ndarray) -> None:
    s = act.sigmoid(x)
    assert ((s >= 0) & (s <= 1)).all()
    np.testing.assert_allclose(act.sigmoid(-x), 1 - s, rtol=0, atol=1e-15)
    dy = act.sigmoid_grad(x)
    assert ((dy >= 0) & (dy <= 0.25 * (1 + 1e-15))).all()  # an ulp of rounding


@FAST
@given(vectors)
def test_relu_family_properties(x: np.ndarray) -> None:
    r = act.relu(x)
    assert (r >= 0).all()
    np.testing.assert_array_equal(r - act.relu(-x), x)
    sp = act.softplus(x)
    assert (sp >= r).all()
    assert (sp - r <= math.log(2) + 1e-15).all()
    assert (act.elu(x) >= -1).all()
    assert (act.tanh_grad(x) <= 1 + 1e-15).all()


@FAST
@given(moderate)
def test_smooth_relus_are_bounded_below(x: np.ndarray) -> None:
    assert (act.gelu(x) >= -0.1701).all()
    assert (act.silu(x) >= -0.2785).all()
    order = np.sort(x)
    for fn in (act.sigmoid, act.tanh, act.softplus):
        # libm-grade exp/tanh are accurate to an ulp, not guaranteed monotonic
        assert (np.diff(fn(order)) >= -1e-15).all()


@FAST
@given(moderate, st.floats(-1e3, 1e3))
def test_softmax_properties(x: np.ndarray, shift: float) -> None:
    s = act.softmax(x)
    assert ((s >= 0) & (s <= 1)).all()
    assert math.fsum(s) == pytest.approx(1.0, abs=1e-13)
    assert s[np.argmax(x)] == s.max()  # order is kept (near-ties may round equal)
    np.testing.assert_allclose(act.softmax(x + shift), s, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(act.softmax_grad(x), s * (1 - s), rtol=1e-9, atol=1e-15)


@FAST
@given(st.integers(1, 4), st.integers(0, 5), st.data())
def test_maxout_matches_reference(k: int, groups: int, data: st.DataObject) -> None:
    values = data.draw(
        st.lists(st.integers(-3, 3), min_size=k * groups, max_size=k * groups)
    )
    x = np.array(values, dtype=np.float64)
    ref_y, ref_dy = ref_maxout([float(v) for v in values], k)
    np.testing.assert_array_equal(act.maxout(x, k=k), ref_y)
    np.testing.assert_array_equal(act.maxout_grad(x, k=k), ref_dy)
