"""LU-decomposed invertible linear mixing of the features, y = W·x with W = P·L·U (001 §28.3).

Glow's invertible 1×1 convolution on a feature vector: P is a fixed permutation, L unit lower
triangular, U upper triangular, so every W they form is invertible while U_ii ≠ 0. Written over
a batch, Y = X·Wᵀ = X·Uᵀ·Lᵀ·Pᵀ. Derived from the declared structures: log|det J| = Σ_i log|U_ii|
(det P = ±1, det L = 1), the VJPs restricted to each triangle, and the inverse
X = Y·P·L⁻ᵀ·U⁻ᵀ by triangular solves.
"""

import sympy as sp

from layergen.spec import N, MatrixMap

D = sp.Symbol("D", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, D)
P = sp.MatrixSymbol("P", D, D)
L = sp.MatrixSymbol("L", D, D)
U = sp.MatrixSymbol("U", D, D)
Y = sp.MatrixSymbol("Y", N, D)

SPEC = MatrixMap(
    name="lu_linear",
    kind="bijection",
    doc=__doc__,
    inputs=[X],
    params=[L, U],
    constants=[P],
    structure={P: "permutation", L: "unit_lower", U: "upper"},
    forward={Y: X * (P * L * U).T},
)
