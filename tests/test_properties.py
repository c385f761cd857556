"""Property-based numerical-stability tests of generated kernels at extreme values.

Every property is checked in float64 and float32 (the kernels keep the caller's dtype).
Shapes are drawn by hypothesis: N in 1..8 rows, D in 1..6 columns.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import module

DTYPES = [np.float64, np.float32]
#: tolerance used for "equal up to rounding" in each dtype (the brief's 1e-12 / 1e-5)
TOL = {np.float64: 1e-12, np.float32: 1e-5}
SETTINGS = settings(max_examples=60, deadline=None)

ROWS = st.integers(1, 8)
COLS = st.integers(1, 6)


def _width(dtype: type) -> int:
    return 64 if dtype is np.float64 else 32


def _floats(dtype: type, lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, width=_width(dtype), allow_nan=False, allow_infinity=False)


def _extreme_floats(dtype: type, bound: float) -> st.SearchStrategy[float]:
    """Any float in [-bound, bound], with the endpoints (and 0) drawn often: rows like [1e4, -1e4]."""
    return st.one_of(st.sampled_from([-bound, bound, 0.0]), _floats(dtype, -bound, bound))


@st.composite
def batches(draw: st.DrawFn, dtype: type, bound: float = 1e4) -> np.ndarray:
    shape = (draw(ROWS), draw(COLS))
    return draw(arrays(dtype, shape, elements=_extreme_floats(dtype, bound)))


def _c(a: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


# --------------------------------------------------------------------------- 1. softmax


def _softmax(x: np.ndarray) -> np.ndarray:
    y = np.full_like(x, np.nan)
    module("softmax").forward(x, y)
    return y


def _check_probability_rows(x: np.ndarray, y: np.ndarray, dtype: type) -> None:
    assert y.dtype == dtype
    assert np.all(np.isfinite(y)), (x, y)
    assert np.all((y >= 0) & (y <= 1)), (x, y)
    row_sums = y.sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(row_sums, 1.0, rtol=0, atol=TOL[dtype], err_msg=f"x={x!r}")


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_softmax_is_a_probability_vector(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype))
    _check_probability_rows(x, _softmax(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_huge_spread_rows(dtype: type) -> None:
    x = _c([[1e4, -1e4], [-1e4, 1e4], [1e4, -1e4], [-1e4, -1e4]], dtype)
    y = _softmax(x)
    _check_probability_rows(x, y, dtype)
    assert np.array_equal(y[:3], _c([[1, 0], [0, 1], [1, 0]], dtype)), y
    np.testing.assert_allclose(y[3], 0.5, rtol=0, atol=TOL[dtype])  # same as softmax([0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_softmax_vjp_finite_and_annihilates_constant_rows(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype))
    n, d = x.shape
    m = module("softmax")
    grad_y = data.draw(arrays(dtype, (n, d), elements=_floats(dtype, -10, 10)))
    grad_x = np.full_like(x, np.nan)
    m.vjp(x, grad_y, grad_x)
    assert np.all(np.isfinite(grad_x)), (x, grad_y, grad_x)

    # J^T 1 = 0: a per-row constant upstream gradient has no effect (shift invariance).
    c = data.draw(arrays(dtype, (n, 1), elements=_floats(dtype, -10, 10)))
    const = _c(np.broadcast_to(c, (n, d)), dtype)
    m.vjp(x, const, grad_x)
    assert np.all(np.isfinite(grad_x)), (x, const, grad_x)
    bound = TOL[dtype] * (1.0 + np.abs(c.astype(np.float64)))
    assert np.all(np.abs(grad_x) <= bound), f"x={x!r}\nc={c!r}\ngrad_x={grad_x!r}"


# --------------------------------------------------------------------------- 2. sigmoid


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_sigmoid_bounded_finite_monotone(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype))
    # sort the flattened values so that C-order traversal of the output must be non-decreasing
    x = _c(np.sort(x, axis=None).reshape(x.shape), dtype)
    y = np.full_like(x, np.nan)
    module("sigmoid").forward(x, y)
    assert np.all(np.isfinite(y)), (x, y)
    assert np.all((y >= 0) & (y <= 1)), (x, y)
    assert np.all(np.diff(y.ravel()) >= 0), (x, y)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_sigmoid_vjp_finite_nonnegative(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype))
    g = np.full_like(x, np.nan)
    module("sigmoid").vjp(x, np.ones_like(x), g)
    assert np.all(np.isfinite(g)), (x, g)
    assert np.all(g >= 0), (x, g)
    assert np.all(g <= 0.25 * (1 + TOL[dtype])), (x, g)  # σ(1 − σ) ≤ 1/4


# --------------------------------------------------------------------------- 3. softplus


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_softplus_bounds_and_odd_part(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype))
    m = module("softplus")
    y_pos = np.full_like(x, np.nan)
    y_neg = np.full_like(x, np.nan)
    m.forward(x, y_pos)
    m.forward(_c(-x, dtype), y_neg)
    assert np.all(np.isfinite(y_pos)) and np.all(np.isfinite(y_neg)), (x, y_pos, y_neg)
    assert np.all(y_pos >= np.maximum(x, 0)), (x, y_pos)
    # softplus(x) − softplus(−x) = x
    diff = y_pos.astype(np.float64) - y_neg.astype(np.float64)
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
    assert np.all(np.abs(diff - x) <= TOL[dtype] * scale), (x, diff)


# --------------------------------------------------------------------------- 4. bce_logits


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_bce_logits_finite_nonnegative_bounded_gradient(dtype: type, data: st.DataObject) -> None:
    phi = data.draw(batches(dtype))
    n = phi.shape[0]
    t = data.draw(
        arrays(dtype, phi.shape, elements=st.one_of(st.sampled_from([0.0, 1.0]), _floats(dtype, 0, 1)))
    )
    m = module("bce_logits")
    loss = m.loss(phi, t)
    grad = np.full_like(phi, np.nan)
    loss2 = m.loss_grad(phi, t, grad)
    for value in (loss, loss2):
        assert np.isfinite(value), (phi, t, value)
        assert value >= 0, (phi, t, value)
    assert np.all(np.isfinite(grad)), (phi, t, grad)
    assert np.all(np.abs(grad) <= (1.0 / n) * (1 + TOL[dtype])), (phi, t, grad)


# --------------------------------------------------------------------------- 5. softmax_cross_entropy


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_softmax_cross_entropy_one_hot(dtype: type, data: st.DataObject) -> None:
    phi = data.draw(batches(dtype))
    n, d = phi.shape
    labels = data.draw(arrays(np.int64, (n,), elements=st.integers(0, d - 1)))
    t = np.zeros((n, d), dtype=dtype)
    t[np.arange(n), labels] = 1
    m = module("softmax_cross_entropy")
    loss = m.loss(phi, t)
    grad = np.full_like(phi, np.nan)
    loss2 = m.loss_grad(phi, t, grad)
    for value in (loss, loss2):
        assert np.isfinite(value), (phi, t, value)
        assert value >= 0, (phi, t, value)
    assert np.all(np.isfinite(grad)), (phi, t, grad)
    row_sums = grad.sum(axis=1, dtype=np.float64)
    # (π − t)/N sums to 0 over a one-hot row; same tolerance as softmax's Σπ = 1, divided by N
    np.testing.assert_allclose(row_sums, 0.0, rtol=0, atol=TOL[dtype] / n, err_msg=f"phi={phi!r}")


# --------------------------------------------------------------------------- 6./7. affine flows


def _assert_round_trip(
    x: np.ndarray, y: np.ndarray, shift: np.ndarray, log_scale: np.ndarray, x_back: np.ndarray, dtype: type
) -> None:
    """|h⁻¹(h(x)) − x| ≤ tol · scale for y = x·e^{log_scale} + shift.

    The scale is max(1, |x|, (|y| + |shift|)·e^{−log_scale}), not just max(1, |x|): storing y
    in the working dtype already costs ½ulp(|y|), and the inverse multiplies that by e^{−log_scale}
    (up to e^5 ≈ 148 here). For x = 1, α = −5, β = −5 even the correctly rounded float32 y maps
    back to 0.9999647 (error 3.5e-5), so a bound of 1e-5·max(1, |x|) is unattainable by any
    float32 implementation; this bound is the one a backward-stable kernel meets.
    """
    x64 = x.astype(np.float64)
    err = np.abs(x_back.astype(np.float64) - x64)
    amplify = np.exp(-log_scale.astype(np.float64))
    scale = np.maximum.reduce(
        [np.ones_like(x64), np.abs(x64), (np.abs(y.astype(np.float64)) + np.abs(shift.astype(np.float64))) * amplify]
    )
    assert np.all(np.isfinite(x_back)), x_back
    assert np.all(err <= TOL[dtype] * scale), f"x={x!r}\nx_back={x_back!r}\nerr={err!r}"


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_affine_elementwise_round_trip_and_logdet(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype, bound=1e3))
    n, d = x.shape
    alpha = data.draw(arrays(dtype, (d,), elements=_extreme_floats(dtype, 5.0)))
    beta = data.draw(arrays(dtype, (d,), elements=_extreme_floats(dtype, 5.0)))
    m = module("affine_elementwise")
    y = np.full_like(x, np.nan)
    ld_f = np.full(n, np.nan, dtype=dtype)
    m.forward(x, alpha, beta, y, ld_f)
    x_back = np.full_like(x, np.nan)
    ld_i = np.full(n, np.nan, dtype=dtype)
    m.inverse(y, alpha, beta, x_back, ld_i)
    assert np.all(np.isfinite(y)), (x, alpha, beta, y)
    _assert_round_trip(x, y, np.broadcast_to(beta, x.shape), np.broadcast_to(alpha, x.shape), x_back, dtype)
    np.testing.assert_allclose(ld_i, -ld_f, rtol=0, atol=TOL[dtype])
    expected = np.full(n, alpha.astype(np.float64).sum())  # log|det| = Σ α for every row (000 §10.3)
    atol = TOL[dtype] * max(1.0, float(np.abs(alpha.astype(np.float64)).sum()))
    np.testing.assert_allclose(ld_f, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_affine_coupling_round_trip_and_logdet(dtype: type, data: st.DataObject) -> None:
    x = data.draw(batches(dtype, bound=1e3))
    n, d = x.shape
    s = data.draw(arrays(dtype, (n, d), elements=_extreme_floats(dtype, 5.0)))
    t = data.draw(arrays(dtype, (n, d), elements=_extreme_floats(dtype, 10.0)))
    m = module("affine_coupling")
    y = np.full_like(x, np.nan)
    ld_f = np.full(n, np.nan, dtype=dtype)
    m.forward(x, s, t, y, ld_f)
    x_back = np.full_like(x, np.nan)
    ld_i = np.full(n, np.nan, dtype=dtype)
    m.inverse(y, s, t, x_back, ld_i)
    assert np.all(np.isfinite(y)), (x, s, t, y)
    _assert_round_trip(x, y, t, s, x_back, dtype)
    np.testing.assert_allclose(ld_i, -ld_f, rtol=0, atol=TOL[dtype])
    s64 = s.astype(np.float64)
    atol = TOL[dtype] * np.maximum(1.0, np.abs(s64).sum(axis=1))
    assert np.all(np.abs(ld_f - s64.sum(axis=1)) <= atol), (s, ld_f)
