"""The documented sub-gradient convention at kinks, as the kernels compute it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import module


def derivative(name: str, x: float, dtype: type = np.float64, **hyper: float) -> float:
    xs = np.array([[x]], dtype=dtype)
    grad = np.empty_like(xs)
    module(name).vjp(xs, np.ones_like(xs), grad, *hyper.values())
    return float(grad[0, 0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_subgradient_at_zero_is_zero(dtype: type) -> None:
    assert derivative("relu", 0.0, dtype) == 0.0
    assert derivative("relu", 1e-30, dtype) == 1.0
    assert derivative("relu", -1e-30, dtype) == 0.0


def test_leaky_relu_subgradient_at_zero_is_alpha() -> None:
    assert derivative("leaky_relu", 0.0, alpha=0.2) == pytest.approx(0.2)
    assert derivative("leaky_relu", 0.5, alpha=0.2) == 1.0


def test_hard_tanh_subgradient_at_both_kinks_is_zero() -> None:
    assert derivative("hard_tanh", 1.0) == 0.0
    assert derivative("hard_tanh", -1.0) == 0.0
    assert derivative("hard_tanh", 0.999) == 1.0


def test_unselected_branch_never_poisons_the_gradient() -> None:
    """The NaN trap of `where`: a non-finite upstream value in one element stays there."""
    xs = np.array([[-3.0, 2.0, 0.0]])
    upstream = np.array([[1.0, 1.0, 1.0]])
    grad = np.empty_like(xs)
    module("relu").vjp(xs, upstream, grad)
    assert np.array_equal(grad, [[0.0, 1.0, 0.0]])
    huge = np.array([[-800.0, 800.0]])  # exp(800) overflows: the softplus branch must not produce NaN
    out = np.empty_like(huge)
    module("softplus").forward(huge, out)
    assert np.array_equal(out, [[0.0, 800.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_nll_gradient_stays_finite_at_extreme_log_variances(dtype: type) -> None:
    """∂ℓ/∂s = ½ − ½ (y − μ)² e^{−s} (001 §3.12) is ½ wherever e^{−s} underflows; a form with e^{s}
    beside e^{−s} (what SymPy's simplify made of it before ``derive.rules.tidy`` refused forms with
    more exponentials) is inf · 0 = NaN there, at s > 88.7 in float32 and s > 709.8 in float64."""
    s = np.array([[120.0, 800.0]], dtype=dtype)
    mu, y = np.zeros_like(s), np.ones_like(s)
    grad_mu, grad_s = np.empty_like(s), np.empty_like(s)
    module("gaussian_nll").loss_grad(mu, s, y, grad_mu, grad_s)
    assert np.all(np.isfinite(grad_s)) and np.all(np.isfinite(grad_mu))
    np.testing.assert_allclose(grad_s, 0.5, rtol=1e-6)


def test_simplification_adds_no_exponential() -> None:
    """``tidy`` keeps simplify's result only if it has no more distinct exponentials than its input."""
    import sympy as sp

    from layergen.derive.rules import tidy

    s, t = sp.symbols("s t", real=True)
    stable = sp.Rational(1, 2) - t**2 * sp.exp(-s) / 2
    assert sp.simplify(stable, ratio=1.0, rational=False, inverse=False).atoms(sp.exp) == {sp.exp(s), sp.exp(-s)}
    assert tidy(stable) == stable


def test_simplification_keeps_piecewise_conditions_and_simplifies_their_values() -> None:
    """``tidy`` simplifies a ``Piecewise``'s values but leaves its conditions as derived: they are final
    after the kink convention, and simplifying a polynomial condition took seconds. (SymPy's simplify
    would merge the redundant ``x > 1 ∧ x > 2`` into ``x > 2``, so this fails if the conditions are
    simplified too.)"""
    import sympy as sp

    from layergen.derive.rules import tidy

    x, a = sp.symbols("x a", real=True)
    slope = a**2 + x**4  # a sum of squares, as h' of the sum-of-squares transformer
    redundant = sp.And(x > 1, x > 2)
    assert sp.simplify(sp.Piecewise((x, redundant), (0, True))).args[0][1] != redundant
    inner = sp.Piecewise((sp.sin(x)**2 + sp.cos(x)**2, x > 1), (x, True))
    derived = sp.Piecewise((0, sp.Eq(slope, 0)), ((a * x + x) / (a + 1) * inner, redundant), (x * a / a, True),
                           evaluate=False)
    tidied = tidy(derived)
    assert isinstance(tidied, sp.Piecewise) and not tidied.has(sp.Dummy)
    assert [cond for _, cond in tidied.args] == [sp.Eq(slope, 0), redundant, sp.true]
    value = tidied.args[1][0]
    assert not value.has(a, sp.sin, sp.cos)
    assert sp.simplify(sp.piecewise_fold(value - x * sp.Piecewise((1, x > 1), (x, True)))) == 0
