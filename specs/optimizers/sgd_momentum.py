"""SGD with momentum (003 §5.1): V ← γV − ηg, θ ← θ + V, element by element over flat arrays."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, v, theta_new, v_new, lr, gamma = sp.symbols("theta g v theta_new v_new lr gamma", real=True)

SPEC = Elementwise(
    name="sgd_momentum",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,), v: (P,)},
    hyper={lr: 0.01, gamma: 0.9},
    hyper_ranges={lr: sp.Interval(0, sp.oo), gamma: sp.Interval.Ropen(0, 1)},  # at 1 or above the velocity never decays
    forward={v_new: gamma * v - lr * g, theta_new: theta + gamma * v - lr * g},
)
