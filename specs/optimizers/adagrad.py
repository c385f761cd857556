"""AdaGrad (001 Algorithm 3): r ← r + g ⊙ g,  θ ← θ − ε g ⊘ (δ + √r)."""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, r, theta_new, r_new, lr, delta = sp.symbols("theta g r theta_new r_new lr delta", real=True)

SPEC = Elementwise(
    name="adagrad",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,), r: (P,)},
    hyper={lr: 0.01, delta: 1e-7},
    hyper_ranges={lr: sp.Interval(0, sp.oo), delta: sp.Interval.open(0, sp.oo)},  # δ > 0: a finite step where r = 0
    forward={r_new: r + g**2, theta_new: theta - lr * g / (delta + sp.sqrt(r + g**2))},
)
