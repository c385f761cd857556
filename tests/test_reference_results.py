"""Derived results equal the boxed results of the reference notes (symbolic oracles)."""

from __future__ import annotations

import random

import numpy as np
import sympy as sp

from layergen.spec.functions import sigmoid, to_elementary
from layergen.spec.declare import N

from conftest import derivation, module


def assert_same(a: sp.Expr, b: sp.Expr) -> None:
    """a ≡ b: symbolically, or else at random points to 30 digits."""
    diff = to_elementary(sp.sympify(a) - sp.sympify(b))
    if sp.simplify(diff) == 0:
        return
    rng = random.Random(0)
    for _ in range(8):
        point = {s: sp.Float(rng.uniform(-2, 2), 40) if not s.is_integer else rng.randint(1, 9)
                 for s in diff.free_symbols}
        assert abs(sp.N(diff.subs(point), 40)) < 1e-28, f"{a} ≠ {b} at {point}"


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def test_mse_gradient_is_003_eq_2_1() -> None:
    # 003 §2.1: ∂L/∂Φ_β = (Φ_β − y_β)/n
    assert_same(derivation("mse").loss_gradients["Phi"], (sym("Phi") - sym("y")) / N)


def test_bce_gradient_is_003_eq_2_2() -> None:
    # 003 §2.2, boxed: ∂L/∂Φ_β = (π_β − t_β)/n with π = σ(Φ)
    phi, t = sym("Phi"), sym("t")
    assert_same(derivation("bce_logits").loss_gradients["Phi"], (sigmoid(phi) - t) / N)


def test_softmax_cross_entropy_gradient_is_003_eq_2_3() -> None:
    # 003 §2.3, boxed: ∂L/∂Φ_{μν} = (π_{μν} − t_{μν})/n, using Σ_ν t_{μν} = 1.
    der = derivation("softmax_cross_entropy")
    phi, t, lse = sym("Phi"), sym("t"), sym("lse")
    # The adjoint of lse sums t/n over a sample's features: 1/n for normalised targets.
    assert_same(der.reduction_adjoints["lse"], t / N)
    grad = der.loss_gradients["Phi"].subs(sym("grad_lse"), 1 / N)
    assert_same(grad, (sp.exp(phi - lse) - t) / N)


def test_softmax_cross_entropy_kernel_matches_an_expanded_sympy_derivative() -> None:
    """Independent of the reduction machinery: differentiate the explicit 3-class loss."""
    phis = sp.symbols("p0:3", real=True)
    target = [0, 1, 0]
    n_batch = 1
    softmax = [sp.exp(p) / sum(sp.exp(q) for q in phis) for p in phis]
    loss = -sum(tk * sp.log(pk) for tk, pk in zip(target, softmax)) / n_batch
    values = np.array([[0.3, -1.2, 2.0]])
    point = dict(zip(phis, values[0]))
    expected = [float(sp.diff(loss, p).subs(point)) for p in phis]
    grad = np.empty_like(values)
    value = module("softmax_cross_entropy").loss_grad(values, np.array([target], float), grad)
    assert np.allclose(grad[0], expected, rtol=1e-13, atol=1e-15)
    assert abs(value - float(loss.subs(point))) < 1e-13


def test_dense_vjps_are_003_section_9_1() -> None:
    """∂L/∂X_{μν} = Σ_α G_{μα} W_{να}; ∂L/∂W_{μν} = Σ_{α'} G_{α'ν} X_{α'μ}; ∂L/∂b_μ = Σ_{α'} G_{α'μ}."""
    der = derivation("dense")
    n, k, m = 2, 3, 2
    X = sp.Matrix(n, k, lambda i, j: sp.Symbol(f"X{i}{j}"))
    W = sp.Matrix(k, m, lambda i, j: sp.Symbol(f"W{i}{j}"))
    b = sp.Matrix(1, m, lambda i, j: sp.Symbol(f"b{j}"))
    G = sp.Matrix(n, m, lambda i, j: sp.Symbol(f"G{i}{j}"))
    sizes = {sp.Symbol("N", integer=True, positive=True): n, sp.Symbol("K", integer=True, positive=True): k,
             sp.Symbol("M", integer=True, positive=True): m}
    explicit = {der.symbols["X"]: X, der.symbols["W"]: W, der.symbols["b"]: b, sp.MatrixSymbol("grad_A", *der.symbols["A"].shape): G}

    def evaluate(expr: sp.MatrixExpr) -> sp.Matrix:
        return sp.Matrix(expr.xreplace(explicit).subs(sizes).doit())

    boxed_x = sp.Matrix(n, k, lambda mu, nu: sum(G[mu, a] * W[nu, a] for a in range(m)))
    boxed_w = sp.Matrix(k, m, lambda mu, nu: sum(G[a, nu] * X[a, mu] for a in range(n)))
    boxed_b = sp.Matrix(1, m, lambda _, mu: sum(G[a, mu] for a in range(n)))
    assert sp.simplify(evaluate(der.vjps["X"]) - boxed_x) == sp.zeros(n, k)
    assert sp.simplify(evaluate(der.vjps["W"]) - boxed_w) == sp.zeros(k, m)
    assert sp.simplify(evaluate(der.vjps["b"]) - boxed_b) == sp.zeros(1, m)
    # and the forward map is 003 §9.1's A_{α'α} = b_α + Σ_β X_{α'β} W_{βα}
    assert sp.simplify(evaluate(der.outputs["A"]) - (X * W + sp.ones(n, 1) * b)) == sp.zeros(n, m)


def test_activation_derivatives_match_the_notes() -> None:
    x, g = sym("x"), sym("grad_y")
    expected = {
        "sigmoid": sigmoid(x) * (1 - sigmoid(x)),                      # 003 §2.2: σ' = σ(1 − σ)
        "tanh": 1 - sp.tanh(x) ** 2,
        "softplus": sigmoid(x),
        "silu": sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x)),
        "gelu": (1 + sp.erf(x / sp.sqrt(2))) / 2 + x * sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi),
        "identity": sp.Integer(1),
    }
    for name, derivative in expected.items():
        # 003 §9.1, boxed: ∂L/∂X_{μν} = ∂L/∂F_{μν} f'(X_{μν})
        assert_same(derivation(name).vjps["x"], g * derivative)


def test_affine_flow_logdet_and_inverse_are_000_section_10_3() -> None:
    der = derivation("affine_elementwise")
    y, alpha, beta = sym("y"), sym("alpha"), sym("beta")
    assert der.jacobian_structure == "diagonal"
    assert_same(der.logdet, alpha)                          # ln|det Df| = Σ_i α_i
    assert_same(der.inverse["x"], sp.exp(-alpha) * (y - beta))
    assert der.inverse_source == "solved"


def test_coupling_logdet_and_inverse_are_000_eqs_81_82() -> None:
    der = derivation("affine_coupling")
    y, s, t = sym("y"), sym("s"), sym("t")
    assert_same(der.logdet, s)                                # eq. 82: ln|det| = Σ α_i
    assert_same(der.inverse["x"], (y - t) * sp.exp(-s))      # eq. 81
    assert_same(der.logdet_partials["s"], 1)


def test_shear_is_triangular_and_rotation_dense() -> None:
    assert derivation("shear2d").jacobian_structure == "lower-triangular"
    assert derivation("rotation2d").jacobian_structure == "dense"
    assert_same(derivation("rotation2d").logdet, 0)
    assert_same(derivation("shear2d").logdet, sym("a") * sym("x0"))


def test_sos_jacobian_is_000_eq_89_and_its_inverse_is_numeric() -> None:
    # 000 eq. 89: ∂y/∂x = Σ_j (Σ_i a_ij x^i)², the integrand of eq. 86 at u = x; the notes say
    # the inverse has no closed form, so it must be the bracketed numeric one.
    der = derivation("sos_polynomial")
    x = sym("x")
    squares = sp.Add(*[sp.Add(*[sym(f"a_{i}_{j}") * x**i for i in range(3)]) ** 2 for j in (1, 2)])
    assert_same(der.numeric_inverse.dh, squares)
    assert_same(der.logdet, sp.log(squares))
    assert der.inverse is None and der.inverse_source == "numeric"
    assert der.numeric_inverse.increasing
    assert [str(b) for b in der.numeric_inverse.bracket] == ["-L", "L"]
    # r = 0 would be the affine transformer: h(0) = b, h'(0) = a_0_1² + a_0_2²
    assert_same(der.outputs["y"].subs(x, 0), sym("b"))
