"""L1 weight penalty λ Σ |w| (003 §6.1 with p = 1); sub-gradient 0 at w = 0."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
w, ell, lam = sp.symbols("w ell lambda_", real=True)

SPEC = Elementwise(
    name="l1_penalty",
    kind="loss",
    doc=__doc__,
    inputs={w: (P,)},
    hyper={lam: 1e-4},
    hyper_ranges={lam: sp.Interval(0, sp.oo)},  # a penalty's weight: a negative one rewards large weights
    reduction="sum",
    forward={ell: lam * sp.Abs(w)},
)
