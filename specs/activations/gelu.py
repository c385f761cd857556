"""Gaussian error linear unit GELU(x) = x Φ(x), Φ the standard normal CDF (003 §9.1), exact (with erf, not the tanh approximation)."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="gelu",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: x * (1 + sp.erf(x / sp.sqrt(2))) / 2},
)
