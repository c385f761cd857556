"""Mean squared error with the 1/(2n) convention of 003 §2.1.

L = (1/(2n)) Σ (y − Φ)², written per element as ℓ = (Φ − y)²/2 with the batch mean
L = (1/N) Σ ℓ; the derived gradient is ∂L/∂Φ = (Φ − y)/n (003 §2.1, boxed).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

Phi, target, ell = sp.symbols("Phi y ell", real=True)

SPEC = Elementwise(
    name="mse",
    kind="loss",
    doc=__doc__,
    inputs={Phi: (N, D)},
    targets={target: (N, D)},
    forward={ell: (Phi - target) ** 2 / 2},
)
