"""A dense layer with a fixed scale c > 0, A = c·X·W: a matrix spec with a hyperparameter, which the
verification's oracle substitutes at its default and at a moved value."""

import sympy as sp

from layergen.spec import N, MatrixMap

K, M = sp.symbols("K M", integer=True, positive=True)
c = sp.Symbol("c", positive=True)
X = sp.MatrixSymbol("X", N, K)
W = sp.MatrixSymbol("W", K, M)
A = sp.MatrixSymbol("A", N, M)

SPEC = MatrixMap(
    name="scaled_dense",
    kind="map",
    doc=__doc__,
    inputs=[X],
    params=[W],
    hyper={c: 2.0},
    forward={A: c * X * W},
)
