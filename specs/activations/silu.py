"""Sigmoid linear unit SiLU(x) = x σ(x) (003 §9.1)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="silu",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: x / (1 + sp.exp(-x))},
)
