"""Permutation of the features, y = P·x with P a fixed permutation matrix (000 §10.3).

The mixing between couplings: P is orthogonal, so log|det J| = log|det P| = 0 and the inverse
x = Pᵀ·y are derived from the declared structure; P is a constant (no gradient) that the
caller chooses, e.g. a random permutation drawn once from the run's seed.
"""

import sympy as sp

from layergen.spec import N, MatrixMap

D = sp.Symbol("D", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, D)
P = sp.MatrixSymbol("P", D, D)
Y = sp.MatrixSymbol("Y", N, D)

SPEC = MatrixMap(
    name="permutation",
    kind="bijection",
    doc=__doc__,
    inputs=[X],
    constants=[P],
    structure={P: "permutation"},
    forward={Y: X * P.T},
)
