"""Batch normalisation in training mode (003 §8): statistics over the batch axis.

F = A (X − M)/sqrt(S + ε) + B with M = mean over the batch, S = the batch variance. The VJP
through M and S is derived and compared with 003 §8's boxed result by a test.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, Mean

x, y, mu, var, a, b, eps = sp.symbols("x y mu var A B epsilon", real=True)

SPEC = Elementwise(
    name="batch_norm_train",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    params={a: (D,), b: (D,)},
    hyper={eps: 1e-5},
    reductions={mu: Mean(x, axis=0), var: Mean((x - mu) ** 2, axis=0)},
    forward={y: a * (x - mu) / sp.sqrt(var + eps) + b},
)
