"""Mean absolute error (001 §3.13): L = (1/n) Σ |Φ − y|.

Its derivative sign(Φ − y)/n takes the sub-gradient 0 where Φ = y (sign(0) = 0).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

Phi, target, ell = sp.symbols("Phi y ell", real=True)

SPEC = Elementwise(
    name="mae",
    kind="loss",
    doc=__doc__,
    inputs={Phi: (N, D)},
    targets={target: (N, D)},
    forward={ell: sp.Abs(Phi - target)},
)
