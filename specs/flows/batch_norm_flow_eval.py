"""Batch-norm flow in evaluation mode (000 eq. 75–77) with running averages.

y = (x − m)/√(v + ε) · e^{α} + β, where m and v are the running averages of the batch mean
and variance kept by training (non-trainable parameters). Its Jacobian is diagonal, so
log|det J| = Σ_i (α_i − ½ log(v_i + ε)) (000 eq. 77), and SymPy solves the inverse
x = (y − β) √(v + ε) e^{−α} + m (000 eq. 76): sampling runs through this spec.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, Param

x, y, m, alpha, beta = sp.symbols("x y m alpha beta", real=True)
v = sp.Symbol("v", nonnegative=True)  # a variance: √(v + ε) > 0, so no |·| in log|det J|
eps = sp.Symbol("epsilon", positive=True)

SPEC = Elementwise(
    name="batch_norm_flow_eval",
    kind="bijection",
    doc=__doc__,
    inputs={x: (N, D)},
    params={alpha: (D,), beta: (D,), m: Param((D,), trainable=False), v: Param((D,), trainable=False)},
    hyper={eps: 1e-5},
    forward={y: (x - m) / sp.sqrt(v + eps) * sp.exp(alpha) + beta},
)
