"""Gaussian negative log-likelihood with a predicted mean μ and log-variance s (001 §3.12).

−log N(y; μ, σ²) = ½ log(2πσ²) + (y − μ)²/(2σ²) with σ² = eˢ, so per element
ℓ = ½ (s + (y − μ)² e^{−s} + log 2π); the network predicts both μ and s.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

mu, s, target, ell = sp.symbols("mu s y ell", real=True)

SPEC = Elementwise(
    name="gaussian_nll",
    kind="loss",
    doc=__doc__,
    inputs={mu: (N, D), s: (N, D)},
    targets={target: (N, D)},
    forward={ell: (s + (target - mu) ** 2 * sp.exp(-s) + sp.log(2 * sp.pi)) / 2},
)
