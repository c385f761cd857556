"""A 2-D autoregressive toy bijection: y₀ = x₀, y₁ = x₁ e^{a x₀} + b x₀² (000 eq. 78 with d = 2).

Lower-triangular Jacobian, so log|det J| = log|∂y₁/∂x₁| = a x₀ (000 eq. 72); the inverse is
found component by component, x₁ = (y₁ − b y₀²) e^{−a y₀} (000 eq. 79).
"""

import sympy as sp

from layergen.spec import Expanded

x0, x1, a, b = sp.symbols("x0 x1 a b", real=True)

SPEC = Expanded(
    name="shear2d",
    kind="bijection",
    doc=__doc__,
    inputs={"x": (x0, x1)},
    params={a: (), b: ()},
    forward={"y": (x0, x1 * sp.exp(a * x0) + b * x0**2)},
)
