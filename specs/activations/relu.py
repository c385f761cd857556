"""Rectified linear unit (000 eq. 3): x for x ≥ 0, else 0. Sub-gradient ReLU'(0) = 0 (kink convention)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="relu",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: sp.Piecewise((x, x >= 0), (0, True))},
)
