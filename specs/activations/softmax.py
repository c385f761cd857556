"""Softmax over the features of each sample, π_{nd} = e^{x_{nd}} / Σ_k e^{x_{nk}} (003 §2.3).

Written as e^{x − lse} with lse = log Σ_k e^{x_k}, so it never overflows; its VJP
π ⊙ (g − Σ_k g_k π_k) is derived through the reduction.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, LogSumExp

x, lse, y, pi = sp.symbols("x lse y pi", real=True)

SPEC = Elementwise(
    name="softmax",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    reductions={lse: LogSumExp(x, axis=1)},
    forward={y: sp.exp(x - lse)},
    notation={pi: sp.exp(x - lse)},
)
