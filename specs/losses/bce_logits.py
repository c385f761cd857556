"""Binary cross-entropy on logits (003 §2.2, boxed).

L = −(1/n) Σ [t log π + (1 − t) log(1 − π)] with π = σ(Φ). Written exactly so; the stability
rewrites turn it into log-sigmoids (no log of 0, no overflow), and the derived gradient is
∂L/∂Φ = (π − t)/n.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

phi, t, ell = sp.symbols("phi t ell", real=True)
pi = 1 / (1 + sp.exp(-phi))

SPEC = Elementwise(
    name="bce_logits",
    kind="loss",
    doc=__doc__,
    inputs={phi: (N, D)},
    targets={t: (N, D)},
    forward={ell: -(t * sp.log(pi) + (1 - t) * sp.log(1 - pi))},
)
