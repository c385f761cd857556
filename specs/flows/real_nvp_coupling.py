"""Real NVP affine-coupling transformer with a bounded log-scale (000 eq. 80–83; 001 §28).

y = x · e^{s} + t with s = B · tanh(ŝ / B): the conditioner's raw output ŝ is squashed
smoothly into (−B, B), so one coupling scales by at most e^{±B} and early training cannot
blow up. The bound B is a hyperparameter of the spec (default 3), so its derivative
∂s/∂ŝ = 1 − tanh²(ŝ/B) is derived and exact like everything else. log|det J| = Σ s
(000 eq. 82), the inverse x = (y − t) e^{−s} (000 eq. 81).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, s_raw, t, bound = sp.symbols("x y s t B", real=True)

SPEC = Elementwise(
    name="real_nvp_coupling",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    conditioning={s_raw: (N, D), t: (N, D)},
    hyper={bound: 3.0},
    hyper_ranges={bound: sp.Interval.open(0, sp.oo)},  # a bound on |s|: at 0, s/B divides by 0
    forward={y: x * sp.exp(bound * sp.tanh(s_raw / bound)) + t},
)
