"""Softmax cross-entropy on logits (003 §2.3, boxed).

L = −(1/n) Σ_{αβ} t_{αβ} log π_{αβ}, π = softmax(Φ) over each sample's features. With
lse = log Σ_β e^{Φ_β}, log π = Φ − lse, so per element ℓ = −t (Φ − lse): no overflow, no
log of 0. For one-hot (or any normalised) t the derived gradient is ∂L/∂Φ = (π − t)/n.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, LogSumExp, Sum

Phi, t, lse, ell, pi = sp.symbols("Phi t lse ell pi", real=True)

SPEC = Elementwise(
    name="softmax_cross_entropy",
    kind="loss",
    doc=__doc__,
    inputs={Phi: (N, D)},
    targets={t: (N, D)},
    reductions={lse: LogSumExp(Phi, axis=1)},
    forward={ell: -t * (Phi - lse)},
    notation={pi: sp.exp(Phi - lse)},
    facts={Sum(t, axis=1): 1},
)
