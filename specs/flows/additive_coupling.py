"""Additive coupling transformer y = x + t (NICE, 000 §10.4; the volume-preserving special case of
the affine coupling, 000 eq. 80 with s = 0).

t is a per-sample conditioning input from the conditioner network of the untouched half; the
derived log|det J| is 0 and the inverse x = y − t is derived, not declared. NICE follows its
couplings with a diagonal scaling, which is the flow runtime's learnable diagonal base.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, t = sp.symbols("x y t", real=True)

SPEC = Elementwise(
    name="additive_coupling",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    conditioning={t: (N, D)},
    forward={y: x + t},
)
