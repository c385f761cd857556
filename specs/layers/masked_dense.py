"""Masked dense layer A = X·(W ⊙ M) + 1·b, M a constant 0/1 mask (MADE, 000 §10.3).

The mask gets no gradient; the derived ∂L/∂W = (Xᵀ·G) ⊙ M keeps masked weights at zero.
"""

import sympy as sp

from layergen.spec import N, MatrixMap, broadcast_rows

K, M = sp.symbols("K M", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, K)
W = sp.MatrixSymbol("W", K, M)
Mask = sp.MatrixSymbol("Mask", K, M)
b = sp.MatrixSymbol("b", 1, M)
A = sp.MatrixSymbol("A", N, M)

SPEC = MatrixMap(
    name="masked_dense",
    kind="map",
    doc=__doc__,
    inputs=[X],
    params=[W, b],
    constants=[Mask],
    forward={A: X * sp.HadamardProduct(W, Mask) + broadcast_rows(b, N)},
)
