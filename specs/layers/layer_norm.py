"""Layer normalisation (003 §8 with the statistics over each sample's features)."""

import sympy as sp

from layergen.spec import D, N, Elementwise, Mean

x, y, mu, var, gamma, beta, eps, xhat = sp.symbols("x y mu var gamma beta epsilon xhat", real=True)

SPEC = Elementwise(
    name="layer_norm",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    params={gamma: (D,), beta: (D,)},
    hyper={eps: 1e-5},
    hyper_ranges={eps: sp.Interval.open(0, sp.oo)},  # ε > 0: √(σ² + ε) stays above 0 for a constant feature
    reductions={mu: Mean(x, axis=1), var: Mean((x - mu) ** 2, axis=1)},
    forward={y: gamma * (x - mu) / sp.sqrt(var + eps) + beta},
    notation={xhat: (x - mu) / sp.sqrt(var + eps)},  # the notes' normalised input, for the LaTeX export
)
