"""Affine transformer with a rational soft clip of the log-scale (000 eq. 80–83; zuko's choice).

y = x · e^{s} + t with s = ŝ / (1 + |ŝ| / B): like ``real_nvp_coupling``'s B·tanh(ŝ/B) it keeps
the log-scale inside (−B, B), but it approaches the bound algebraically rather than exponentially,
so a large ŝ still gets a gradient, ∂s/∂ŝ = 1/(1 + |ŝ|/B)² (derived; it is continuous at ŝ = 0,
where |ŝ| has its kink). This is the parameterisation of zuko's ``MonotonicAffineTransform``, whose
minimum slope e^{−B} is 10⁻³, B = ln 1000 ≈ 6.908; with it a layergen MAF and a zuko MAF on the same
weights compute the same density. log|det J| = Σ s (000 eq. 82), the inverse
x = (y − t) e^{−s} (000 eq. 81).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, s_raw, t = sp.symbols("x y s t", real=True)
bound = sp.Symbol("B", positive=True)

SPEC = Elementwise(
    name="softclip_affine_coupling",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    conditioning={s_raw: (N, D), t: (N, D)},
    hyper={bound: 6.907755278982137},
    forward={y: x * sp.exp(s_raw / (1 + sp.Abs(s_raw) / bound)) + t},
)
