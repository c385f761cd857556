"""Batch normalisation in evaluation (003 §8): F = A (X − M)/√(S + ε) + B with the running
averages M and S as non-trainable parameters (the training step keeps them up to date)."""

import sympy as sp

from layergen.spec import D, N, Elementwise, Param

X, F, M, S, A, B, eps = sp.symbols("X F M S A B epsilon", real=True)

SPEC = Elementwise(
    name="batch_norm_eval",
    kind="map",
    doc=__doc__,
    inputs={X: (N, D)},
    params={A: (D,), B: (D,), M: Param((D,), trainable=False), S: Param((D,), trainable=False)},
    hyper={eps: 1e-5},
    hyper_ranges={eps: sp.Interval.open(0, sp.oo)},  # ε > 0: √(σ² + ε) stays above 0 for a constant feature
    forward={F: A * (X - M) / sp.sqrt(S + eps) + B},
)
