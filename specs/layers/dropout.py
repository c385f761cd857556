"""Inverted dropout in training (000 §6.3; 003 §6.4, §9.1): y = x ⊙ b / (1 − p).

b is the 0/1 mask the runtime samples for each step (Bernoulli with keep probability 1 − p),
a constant of the map: the derived VJP is ∂L/∂x = ∂L/∂y ⊙ b/(1 − p) (003 §9.1's boxed
dropout VJP with the inverted scaling). In evaluation dropout is the identity.
"""

import sympy as sp

from layergen.spec import D, N, Elementwise

x, y, mask, p = sp.symbols("x y b p", real=True)

SPEC = Elementwise(
    name="dropout",
    kind="map",
    doc=__doc__,
    inputs={x: (N, D)},
    constants={mask: (N, D)},
    hyper={p: 0.5},
    hyper_ranges={p: sp.Interval.Ropen(0, 1)},  # a drop probability; at 1 the scaling 1/(1 − p) divides by 0
    forward={y: x * mask / (1 - p)},
)
