"""Log-density of a diagonal Gaussian, per sample: one component of a mixture base (000 eq. 73).

log N(z; μ, diag e^{2s}) = Σ_i (−½ ((z_i − μ_i) e^{−s_i})² − s_i − ½ log 2π), with s = log σ so the
scale stays positive without a constraint. The per-sample value is a reduction over the features;
the map writes it into every element of its row (the caller reads one column), and its VJP
takes the row's summed upstream gradient through the reduction.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, Sum

z, mu, s, q, y = sp.symbols("z mu s q y", real=True)

SPEC = Elementwise(
    name="diagonal_gaussian_logpdf",
    kind="map",
    doc=__doc__,
    inputs={z: (N, D)},
    params={mu: (D,), s: (D,)},
    reductions={q: Sum(-((z - mu) * sp.exp(-s)) ** 2 / 2 - s - sp.log(2 * sp.pi) / 2, axis=1)},
    forward={y: q},
)
