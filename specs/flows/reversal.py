"""Reversal of the feature order, y_d = x_{D−1−d}: the permutation R with ones on the anti-diagonal.

MAF and Real NVP stacks reverse the order between blocks (000 §10.3) so every feature is
transformed. R is fixed by D (no argument); log|det J| = 0 and the inverse x = Rᵀ·y = R·y are
derived from the declared structure.
"""

import sympy as sp

from layergen.spec import N, MatrixMap

D = sp.Symbol("D", integer=True, positive=True)
X = sp.MatrixSymbol("X", N, D)
R = sp.MatrixSymbol("R", D, D)
Y = sp.MatrixSymbol("Y", N, D)

SPEC = MatrixMap(
    name="reversal",
    kind="bijection",
    doc=__doc__,
    constants=[R],
    inputs=[X],
    structure={R: "reversal"},
    forward={Y: X * R.T},
)
