"""Softplus f(x) = log(1 + eˣ), evaluated stably as max(x, 0) + log1p(e^{−|x|})."""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y = sp.symbols("x y", real=True)

SPEC = Elementwise(
    name="softplus",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    forward={y: sp.log(1 + sp.exp(x))},
)
