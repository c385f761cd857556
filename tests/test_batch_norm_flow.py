"""The batch-norm flow (000 eq. 75–77): training mode with batch statistics, evaluation mode
with running averages, and how the two specs agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from test_reference_results import assert_same, sym
from test_validation import elementwise, rejected, write

from conftest import derivation, module


def test_logdet_is_000_eq_77_and_inverse_eq_76() -> None:
    alpha, beta, y, eps = sym("alpha"), sym("beta"), sym("y"), sp.Symbol("epsilon", positive=True)
    train = derivation("batch_norm_flow")
    var = sp.Symbol("var", nonnegative=True)
    assert_same(train.logdet, alpha - sp.log(var + eps) / 2)          # eq. 77, statistics held fixed
    assert train.jacobian_structure == "diagonal" and train.inverse is None
    evaluation = derivation("batch_norm_flow_eval")
    m, v = sym("m"), sp.Symbol("v", nonnegative=True)
    assert_same(evaluation.logdet, alpha - sp.log(v + eps) / 2)
    assert_same(evaluation.inverse["x"], (y - beta) * sp.sqrt(v + eps) * sp.exp(-alpha) + m)   # eq. 76
    assert evaluation.inverse_source == "solved"


def test_training_mode_has_no_inverse_kernel() -> None:
    assert set(module("batch_norm_flow").KERNELS) == {"forward", "forward_vjp"}
    assert set(module("batch_norm_flow_eval").KERNELS) == {"forward", "inverse", "forward_vjp"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_mode_is_evaluation_mode_at_the_batch_statistics(dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 5)) * [1, 3, 0.1, 10, 1] + [0, 5, -2, 1, 100]).astype(dtype)
    alpha, beta = rng.normal(size=5).astype(dtype), rng.normal(size=5).astype(dtype)
    y_train, ld_train = np.empty_like(x), np.empty(64, dtype=dtype)
    module("batch_norm_flow").forward(x, alpha, beta, y_train, ld_train)
    mean, var = x.astype(np.float64).mean(axis=0), x.astype(np.float64).var(axis=0)
    y_eval, ld_eval = np.empty_like(x), np.empty(64, dtype=dtype)
    module("batch_norm_flow_eval").forward(x, alpha, beta, mean.astype(dtype), var.astype(dtype), y_eval, ld_eval)
    tol = 1e-12 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(y_train, y_eval, rtol=tol, atol=tol)
    np.testing.assert_allclose(ld_train, ld_eval, rtol=tol, atol=tol)
    # normalised: the training output has mean β and standard deviation e^α √(σ²/(σ²+ε)) per feature
    np.testing.assert_allclose(y_train.mean(axis=0), beta, atol=50 * tol)
    back, ld_back = np.empty_like(x), np.empty(64, dtype=dtype)
    module("batch_norm_flow_eval").inverse(y_train, alpha, beta, mean.astype(dtype), var.astype(dtype), back, ld_back)
    np.testing.assert_allclose(back, x, rtol=10 * tol, atol=10 * tol * np.abs(x).max())


def test_a_bijection_may_reduce_over_the_batch_only(tmp_path: Path) -> None:
    path = write(tmp_path, "feature_norm", elementwise("feature_norm", kind='"bijection"', reductions="{s: Sum(x, axis=1)}",
                                                      forward="{y: x - s}"))
    rejected(path, "reductions", "only over the batch (axis=0")


def test_batch_statistics_cannot_declare_an_inverse(tmp_path: Path) -> None:
    path = write(tmp_path, "centre", elementwise("centre", kind='"bijection"', reductions="{s: Sum(x, axis=0)}",
                                                 forward="{y: x - s}", inverse="{x: y + s}"))
    rejected(path, "inverse", "evaluation-mode spec")
