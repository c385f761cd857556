"""Logistic sigmoid σ(x) = 1/(1 + e^{-x}) (000 eq. 1; 003 §9.1)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="sigmoid",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: 1 / (1 + sp.exp(-x))},
)
