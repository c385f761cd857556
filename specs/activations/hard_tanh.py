"""Hard tanh: x on [−1, 1], clipped to ±1 outside. Sub-gradient 0 at ±1 (kink convention)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="hard_tanh",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: sp.Piecewise((x, (x >= -1) & (x <= 1)), (-1, x < -1), (1, True))},
)
