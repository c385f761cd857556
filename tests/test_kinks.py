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
