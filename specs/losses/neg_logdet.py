"""The change-of-variables term of a flow's negative log-likelihood (000 eq. 73–74).

−(1/N) Σ_n log|det Df(x_n)|: one bijection's per-sample log-determinant ℓ_n, with the sign
of the loss; the flow's NLL adds this term for every bijection to the base distribution's.
"""

import sympy as sp

from layergen.spec import N, Elementwise

ld, ell = sp.symbols("ld ell", real=True)

SPEC = Elementwise(
    name="neg_logdet",
    kind="loss",
    doc=__doc__,
    inputs={ld: (N,)},
    forward={ell: -ld},
)
