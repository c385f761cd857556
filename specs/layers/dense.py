"""Dense (affine) layer over a batch, A = X·W + 1·b, i.e. A_{α'α} = b_α + Σ_β X_{α'β} W_{βα} (003 §9.1).

X is N×K (a batch of N samples with K features), W is K×M, b a 1×M row. The derived VJPs
are 003 §9.1's boxed results: ∂L/∂X = G·Wᵀ, ∂L/∂W = Xᵀ·G, ∂L/∂b = Σ_{α'} G_{α'·}.
"""

import sympy as sp

from layergen.spec import N, MatrixMap, broadcast_rows

K, M = sp.symbols("K M", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, K)
W = sp.MatrixSymbol("W", K, M)
b = sp.MatrixSymbol("b", 1, M)
A = sp.MatrixSymbol("A", N, M)

SPEC = MatrixMap(
    name="dense",
    kind="map",
    doc=__doc__,
    inputs=[X],
    params=[W, b],
    forward={A: X * W + broadcast_rows(b, N)},
)
