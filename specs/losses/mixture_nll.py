"""Negative log-likelihood of a mixture, from its components' log-densities (000 eq. 73, 95).

A mixture base p(z) = Σ_k π_k p_k(z) with weights π = softmax(w) has, per sample,
−log p(z) = −log Σ_k e^{w_k + a_k} + log Σ_k e^{w_k}, where a_k = log p_k(z) is the k-th component's
log-density (one column per component). Both log-sum-exps are the notes' stable form (000 eq. 95),
so no component's density may underflow to a log of 0. The loss is the batch mean of that per-sample
value, written per element as its 1/K share (K = the row's length, the number of components).
The derived ∂L/∂a_k = −r_k/N, r the posterior responsibilities, and ∂L/∂w = (π − r̄) follow.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise, LogSumExp

a, w, ell = sp.symbols("a w ell", real=True)
lse_w, lse = sp.symbols("lse_w lse", real=True)

SPEC = Elementwise(
    name="mixture_nll",
    kind="loss",
    doc=__doc__,
    inputs={a: (N, D)},
    params={w: (D,)},
    reductions={lse_w: LogSumExp(w, axis=1), lse: LogSumExp(a + w, axis=1)},
    forward={ell: (lse_w - lse) / D},
)
