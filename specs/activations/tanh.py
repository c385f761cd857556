"""Hyperbolic tangent f(x) = tanh x (000 eq. 2; 003 §9.1)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="tanh",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: sp.tanh(x)},
)
