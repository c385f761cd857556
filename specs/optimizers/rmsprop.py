"""RMSprop (000 eq. 20-22): s ← β s + (1 − β) ∇J ⊙ ∇J,  θ ← θ − α ∇J ⊘ (√s + ε)."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, s, theta_new, s_new, lr, beta, eps = sp.symbols("theta g s theta_new s_new lr beta epsilon", real=True)
second = beta * s + (1 - beta) * g**2

SPEC = Elementwise(
    name="rmsprop",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,), s: (P,)},
    hyper={lr: 0.001, beta: 0.8, eps: 1e-8},
    # β a decay rate: at 1 the average never moves; ε > 0 keeps the step finite where s = 0
    hyper_ranges={lr: sp.Interval(0, sp.oo), beta: sp.Interval.Ropen(0, 1), eps: sp.Interval.open(0, sp.oo)},
    forward={s_new: second, theta_new: theta - lr * g / (sp.sqrt(second) + eps)},
)
