"""Linear bijections over structured factors (LU mixing, permutation, reversal; 001 §28.3).

The oracles here are NumPy's own: ``slogdet`` and ``solve`` of W = P·L·U assembled with
``np.tril``/``np.triu`` (independent of the derived structure rules and of the generated code).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from layergen.verify.checks import verifier_for
from layergen.verify.harness import KernelCall

from conftest import derivation, module


def lu_values(rng: np.random.Generator, n: int, d: int) -> dict[str, np.ndarray]:
    U = rng.normal(0, 0.3, (d, d))
    np.fill_diagonal(U, rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d))
    return {"X": rng.normal(size=(n, d)), "L": rng.normal(0, 0.3, (d, d)), "U": U,
            "P": np.eye(d)[rng.permutation(d)]}


def assembled(values: dict[str, np.ndarray]) -> np.ndarray:
    d = len(values["L"])
    return values["P"] @ (np.tril(values["L"], -1) + np.eye(d)) @ np.triu(values["U"])


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-4)])
@pytest.mark.parametrize("d", [3, 16, 48])
def test_lu_forward_logdet_and_inverse_match_numpy(d: int, dtype: type, tol: float) -> None:
    values = lu_values(np.random.default_rng(d), 257, d)
    W = assembled(values)
    out, _ = KernelCall(module("lu_linear"), "forward")(values, dtype, {"N": 257, "D": d})
    np.testing.assert_allclose(out["Y"], values["X"] @ W.T, rtol=tol, atol=tol)
    sign, logabs = np.linalg.slogdet(W)
    np.testing.assert_allclose(out["logdet"], np.full(257, logabs), rtol=tol, atol=tol)
    back, _ = KernelCall(module("lu_linear"), "inverse")({**values, "Y": out["Y"]}, dtype, {"N": 257, "D": d})
    np.testing.assert_allclose(back["X"], np.linalg.solve(W, out["Y"].astype(np.float64).T).T, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(back["logdet"], -out["logdet"], rtol=tol, atol=tol)


def test_entries_outside_the_triangles_are_not_parameters() -> None:
    """They change nothing in the outputs and get exactly zero gradient."""
    rng = np.random.default_rng(0)
    values = lu_values(rng, 9, 5)
    sizes = {"N": 9, "D": 5}
    forward = KernelCall(module("lu_linear"), "forward")
    base, _ = forward(values, np.float64, sizes)
    scrambled = dict(values, L=values["L"] + np.triu(rng.normal(size=(5, 5))),  # diagonal and above of L
                     U=values["U"] + np.tril(rng.normal(size=(5, 5)), -1))  # below the diagonal of U
    moved, _ = forward(scrambled, np.float64, sizes)
    np.testing.assert_array_equal(moved["Y"], base["Y"])
    np.testing.assert_array_equal(moved["logdet"], base["logdet"])
    grads, _ = KernelCall(module("lu_linear"), "forward_vjp")(
        {**values, "grad_Y": rng.normal(size=(9, 5)), "grad_logdet": rng.normal(size=9)}, np.float64, sizes)
    assert not np.triu(grads["grad_L"]).any() and grads["grad_L"][np.tril_indices(5, -1)].all()
    assert not np.tril(grads["grad_U"], -1).any() and grads["grad_U"][np.triu_indices(5)].all()


def test_logdet_gradient_is_the_inverse_diagonal() -> None:
    """With grad_Y = 0, ∂/∂U of Σ_n logdet_n is N·diag(1/U_ii), as ∂ log|det W|/∂W = W⁻ᵀ gives."""
    rng = np.random.default_rng(1)
    values = lu_values(rng, 7, 4)
    grads, _ = KernelCall(module("lu_linear"), "forward_vjp")(
        {**values, "grad_Y": np.zeros((7, 4)), "grad_logdet": np.ones(7)}, np.float64, {"N": 7, "D": 4})
    np.testing.assert_allclose(grads["grad_U"], np.diag(7.0 / np.diag(values["U"])), rtol=1e-14)
    np.testing.assert_array_equal(grads["grad_L"], 0.0)


def test_permutation_and_reversal_move_columns() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5))
    order = rng.permutation(5)
    P = np.eye(5)[order]  # y = P·x: y_i = x_order[i]
    out, _ = KernelCall(module("permutation"), "forward")({"X": x, "P": P}, np.float64, {"N": 6, "D": 5})
    np.testing.assert_array_equal(out["Y"], x[:, order])
    np.testing.assert_array_equal(out["logdet"], 0.0)
    out, _ = KernelCall(module("reversal"), "forward")({"X": x}, np.float64, {"N": 6, "D": 5})
    np.testing.assert_array_equal(out["Y"], x[:, ::-1])
    back, _ = KernelCall(module("reversal"), "inverse")({"Y": out["Y"]}, np.float64, {"N": 6, "D": 5})
    np.testing.assert_array_equal(back["X"], x)


def test_the_log_determinant_check_can_fail() -> None:
    """A forward kernel that forgets log|det U| is caught by the oracle and by mpmath's det."""
    real = module("lu_linear")

    def forgetful(X, L, U, P, Y, logdet, *scratch):  # type: ignore[no-untyped-def]
        real.forward(X, L, U, P, Y, logdet, *scratch)
        logdet[:] = 0.0
        return Y, logdet

    broken = types.SimpleNamespace(**{k: getattr(real, k) for k in ("KERNELS", "HYPER_DEFAULTS", "inverse", "forward_vjp")},
                                   forward=forgetful)
    rows = verifier_for(derivation("lu_linear"), broken, seed=0).run()
    failed = {(r.kernel, r.check) for r in rows if not r.ok}
    assert {("forward", "oracle"), ("forward", "logdet-det"), ("forward", "logdet-fd")} <= failed
