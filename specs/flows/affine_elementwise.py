"""Component-wise affine flow y = e^α ⊙ x + β (000 §10.3).

Diagonal Jacobian diag(e^{α_1}, …, e^{α_d}), so log|det J| = Σ_i α_i; inverse
x = e^{−α} ⊙ (y − β). Both are derived, not declared.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, alpha, beta = sp.symbols("x y alpha beta", real=True)

SPEC = Elementwise(
    name="affine_elementwise",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    params={alpha: (D,), beta: (D,)},
    forward={y: sp.exp(alpha) * x + beta},
)
