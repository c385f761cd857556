"""Negative log-density of a standard normal base distribution (000 eq. 73, first term).

−log N(z; 0, I) = Σ_d ½ (z_d² + log 2π), averaged over the batch: the base-distribution
part of a normalizing flow's negative log-likelihood, evaluated at the latent z = f(x).
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

z, ell = sp.symbols("z ell", real=True)

SPEC = Elementwise(
    name="standard_normal_nll",
    kind="loss",
    doc=__doc__,
    inputs={z: (N, D)},
    forward={ell: (z**2 + sp.log(2 * sp.pi)) / 2},
)
