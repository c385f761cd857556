"""Gradient descent, θ ← θ − α ∇J (000 eq. 12; 003 §5)."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, theta_new, lr = sp.symbols("theta g theta_new lr", real=True)

SPEC = Elementwise(
    name="sgd",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,)},
    hyper={lr: 0.01},
    hyper_ranges={lr: sp.Interval(0, sp.oo)},  # a step size: a negative one climbs the loss
    forward={theta_new: theta - lr * g},
)
