"""Sum-of-squares polynomial transformer (000 eq. 86–89; Jaini et al. 2019).

y = h(x; a, b) = b + ∫_0^x Σ_{j=1}^{k} (Σ_{i=0}^{r} a_{ij} u^i)² du          (000 eq. 86)

with k = 2 squared polynomials of degree r = 2, so h is a polynomial of degree 2r + 1 = 5.
The integrand is a sum of squares, so h is increasing for any coefficients (Proposition 1 of
the notes) and no constraint is placed on the conditioner that predicts a and b (000 eq. 87).
The integral is computed here by SymPy; the diagonal Jacobian entry ∂y/∂x (000 eq. 89), the
log-determinant Σ log ∂y/∂x and every gradient are derived. A quintic has no closed-form
inverse, so layergen generates a bracketed Newton/bisection with the derived derivative; its
bracket x ∈ [−L, L] is part of the spec (a latent value whose preimage lies outside it is an
error, not a silent extrapolation). For r = 0 the transformer is affine (000 §10.3).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

#: number of squared polynomials k and their degree r (000 eq. 86); the notes suggest small values
SQUARES, DEGREE = 2, 2

x, y, u, b = sp.symbols("x y u b", real=True)
reach = sp.Symbol("L", positive=True)
a = [[sp.Symbol(f"a_{i}_{j}", real=True) for i in range(DEGREE + 1)] for j in range(1, SQUARES + 1)]

integrand = sp.Add(*[sp.Add(*[a_j[i] * u**i for i in range(DEGREE + 1)]) ** 2 for a_j in a])

SPEC = Elementwise(
    name="sos_polynomial",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    conditioning={**{a_ij: (N, D) for a_j in a for a_ij in a_j}, b: (N, D)},
    hyper={reach: 1000.0},
    forward={y: b + sp.integrate(integrand, (u, 0, x))},
    bracket={x: (-reach, reach)},
)
