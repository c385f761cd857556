"""Affine-coupling transformer y = x · e^s + t (Real NVP, 000 eq. 80; 001 §28).

s and t are per-sample conditioning inputs, produced by the conditioner network from the
untouched half x_{1:ℓ}; the derived log|det J| = Σ s (000 eq. 82) and its gradients flow
back into s and t. The inverse x = (y − t) e^{−s} is derived (000 eq. 81).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, s, t = sp.symbols("x y s t", real=True)

SPEC = Elementwise(
    name="affine_coupling",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    conditioning={s: (N, D), t: (N, D)},
    forward={y: x * sp.exp(s) + t},
)
