"""Adam with bias correction (000 eq. 23; 003 §5.2), at step t = 1, 2, ...

m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ),
θ ← θ − α m̂ ⊘ (√v̂ + ε)   (ε outside the root as in 000 eq. 23, and as PyTorch does).
"""

import sympy as sp

from layergen.spec import Elementwise

P = sp.Symbol("P", integer=True, positive=True)
theta, g, m, v = sp.symbols("theta g m v", real=True)
theta_new, m_new, v_new = sp.symbols("theta_new m_new v_new", real=True)
lr, beta1, beta2, eps, t = sp.symbols("lr beta1 beta2 epsilon t", real=True)
mhat, vhat = sp.symbols("mhat vhat", real=True)
first = beta1 * m + (1 - beta1) * g
second = beta2 * v + (1 - beta2) * g**2

SPEC = Elementwise(
    name="adam",
    kind="optimizer_step",
    doc=__doc__,
    inputs={theta: (P,), g: (P,), m: (P,), v: (P,)},
    hyper={lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 1.0},
    # decay rates below 1: at 1 the moments never move and the bias correction 1 − βᵗ divides by 0;
    # ε > 0 keeps the step finite where v̂ = 0; t counts steps from 1 (at t = 0, 1 − βᵗ = 0)
    hyper_ranges={lr: sp.Interval(0, sp.oo), beta1: sp.Interval.Ropen(0, 1), beta2: sp.Interval.Ropen(0, 1),
                  eps: sp.Interval.open(0, sp.oo), t: sp.Interval(1, sp.oo)},
    forward={
        m_new: first,
        v_new: second,
        theta_new: theta - lr * (first / (1 - beta1**t)) / (sp.sqrt(second / (1 - beta2**t)) + eps),
    },
    notation={mhat: first / (1 - beta1**t), vhat: second / (1 - beta2**t)},  # 000 eq. 23's bias-corrected moments
)
