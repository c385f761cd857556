"""Rotation of the plane by a learnable angle θ: y = R(θ) x, an orthogonal map.

An expanded 2-D map: its Jacobian R(θ) is dense, and log|det J| = log|cos²θ + sin²θ| = 0 is
derived from the symbolic determinant; the inverse R(−θ) is solved by SymPy.
"""

import sympy as sp

from layergen.spec import Expanded

x0, x1, theta = sp.symbols("x0 x1 theta", real=True)

SPEC = Expanded(
    name="rotation2d",
    kind="bijection",
    doc=__doc__,
    inputs={"x": (x0, x1)},
    params={theta: ()},
    forward={"y": (sp.cos(theta) * x0 - sp.sin(theta) * x1, sp.sin(theta) * x0 + sp.cos(theta) * x1)},
)
