"""L2 weight penalty (000 eq. 11): λ/(2m) Σ w², summed over the parameters (m: the batch size)."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
w, ell, lam, m = sp.symbols("w ell lambda_ m", real=True)

SPEC = Elementwise(
    name="l2_penalty",
    kind="loss",
    doc=__doc__,
    inputs={w: (P,)},
    hyper={lam: 1e-4, m: 1.0},
    hyper_ranges={lam: sp.Interval(0, sp.oo), m: sp.Interval.open(0, sp.oo)},  # λ ≥ 0 as in L1; m a batch's size
    reduction="sum",
    forward={ell: lam / (2 * m) * w**2},
)
