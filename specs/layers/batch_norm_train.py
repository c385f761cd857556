"""Batch normalisation in training mode (003 §8): statistics over the batch axis.

F = A (X − M)/sqrt(S + ε) + B with M = mean over the batch, S = the batch variance. The VJP
through M and S is derived and compared with 003 §8's boxed result by a test. The names
are the notes': input X, output F, statistics M and S, parameters A and B.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, Mean

X, F, M, S, A, B, eps, Xhat = sp.symbols("X F M S A B epsilon Xhat", real=True)

SPEC = Elementwise(
    name="batch_norm_train",
    kind="map",
    doc=__doc__,
    inputs={X: (N, D)},
    params={A: (D,), B: (D,)},
    hyper={eps: 1e-5},
    hyper_ranges={eps: sp.Interval.open(0, sp.oo)},  # ε > 0: √(σ² + ε) stays above 0 for a constant feature
    reductions={M: Mean(X, axis=0), S: Mean((X - M) ** 2, axis=0)},
    forward={F: A * (X - M) / sp.sqrt(S + eps) + B},
    notation={Xhat: (X - M) / sp.sqrt(S + eps)},  # the notes' normalised input, for the LaTeX export
)
