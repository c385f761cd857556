"""Parametric ReLU with one trainable slope shared by all features (a scalar parameter, starting at 0.25)."""

import sympy as sp

from layergen.spec import D, N, Elementwise, Param

x, y, a = sp.symbols("x y a", real=True)

SPEC = Elementwise(
    name="prelu",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    params={a: Param((), init=0.25)},
    forward={y: sp.Piecewise((x, x >= 0), (a * x, True))},
)
