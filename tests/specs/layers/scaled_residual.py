"""A residual dense layer with a scaled skip and a scaled bias, A = X·W + c·X + c·1·b (W square): a matrix
spec whose kernels need what the catalog's do not, a scalar times a matrix that is no product, a sum of such
terms, and a scaled repeated row; their lowering must still allocate nothing per call."""

import sympy as sp

from layergen.spec import N, MatrixMap, broadcast_rows

K = sp.Symbol("K", integer=True, positive=True)
c = sp.Symbol("c", real=True)  # any real factor: the spec's hyperparameter without a declared domain
X = sp.MatrixSymbol("X", N, K)
W = sp.MatrixSymbol("W", K, K)
b = sp.MatrixSymbol("b", 1, K)
A = sp.MatrixSymbol("A", N, K)

SPEC = MatrixMap(
    name="scaled_residual",
    kind="map",
    doc=__doc__,
    inputs=[X],
    params=[W, b],
    hyper={c: 0.5},
    forward={A: X * W + c * X + c * broadcast_rows(b, N)},
)
