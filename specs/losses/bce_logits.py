"""Binary cross-entropy on logits (003 §2.2, boxed).

L = −(1/n) Σ [t log π + (1 − t) log(1 − π)] with π = σ(Φ). Written exactly so; the stability
rewrites turn it into log-sigmoids (no log of 0, no overflow), and the derived gradient is
∂L/∂Φ = (π − t)/n.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, sigmoid

Phi, t, ell, pi = sp.symbols("Phi t ell pi", real=True)
probability = 1 / (1 + sp.exp(-Phi))

SPEC = Elementwise(
    name="bce_logits",
    kind="loss",
    doc=__doc__,
    inputs={Phi: (N, D)},
    targets={t: (N, D)},
    forward={ell: -(t * sp.log(probability) + (1 - t) * sp.log(1 - probability))},
    notation={pi: sigmoid(Phi)},
)
