"""Leaky ReLU (000 eq. 4): x for x ≥ 0, else αx with α ≥ 0. Sub-gradient at 0: α (kink convention)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)
alpha = sp.Symbol("alpha", nonnegative=True)
SPEC = Elementwise(
    name="leaky_relu",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    hyper={alpha: 0.01},
    forward={y: sp.Piecewise((x, x >= 0), (alpha * x, True))},
)
