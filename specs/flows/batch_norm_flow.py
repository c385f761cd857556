"""Batch-norm flow in training mode (000 eq. 75, 77; MAF paper's form).

y = (x − μ̃)/√(σ̃² + ε) · e^{α} + β, with μ̃ and σ̃² the mean and (biased) variance of each
feature over the minibatch. As a map of one sample with the statistics held fixed it is
component-wise, so J = diag(e^{α_i}/√(σ̃_i² + ε)) and log|det J| = Σ_i (α_i − ½ log(σ̃_i² + ε))
(000 eq. 77); both are derived. The VJP runs through the statistics as well (they are
functions of the batch, 003 §8). The inverse (000 eq. 76) needs statistics that do not depend
on the point being inverted, so it belongs to the evaluation-mode spec
``batch_norm_flow_eval``, which uses running averages.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, Mean

x, y, mu, alpha, beta = sp.symbols("x y mu alpha beta", real=True)
var = sp.Symbol("var", nonnegative=True)  # a variance: √(var + ε) > 0, so no |·| in log|det J|
eps = sp.Symbol("epsilon", positive=True)
xhat = sp.Symbol("xhat", real=True)

SPEC = Elementwise(
    name="batch_norm_flow",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    params={alpha: (D,), beta: (D,)},
    hyper={eps: 1e-5},
    reductions={mu: Mean(x, axis=0), var: Mean((x - mu) ** 2, axis=0)},
    forward={y: (x - mu) / sp.sqrt(var + eps) * sp.exp(alpha) + beta},
    notation={xhat: (x - mu) / sp.sqrt(var + eps)},  # the normalised input (003 §8's X̂), for the LaTeX export
)
