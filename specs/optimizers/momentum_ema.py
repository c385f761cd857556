"""Gradient descent with momentum as an exponential moving average (000 eq. 17-19).

m ← β m + (1 − β) ∇J,  θ ← θ − α m. (The velocity form of 003 §5.1 is `sgd_momentum`.)
"""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, m, theta_new, m_new, lr, beta = sp.symbols("theta g m theta_new m_new lr beta", real=True)

SPEC = Elementwise(
    name="momentum_ema",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,), m: (P,)},
    hyper={lr: 0.01, beta: 0.8},
    hyper_ranges={lr: sp.Interval(0, sp.oo), beta: sp.Interval.Ropen(0, 1)},  # a decay rate: at 1 the average never moves
    forward={m_new: beta * m + (1 - beta) * g, theta_new: theta - lr * (beta * m + (1 - beta) * g)},
)
