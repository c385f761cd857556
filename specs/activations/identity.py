"""Identity activation f(x) = x, for regression output layers (000 §2)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="identity",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: x},
)
