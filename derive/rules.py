"""Numerical-stability rewrites and the sub-gradient convention at kinks.

Stability rules run on the forward map *before* differentiation, so derivatives inherit
stable forms, and again on every derivative (DESIGN.md, derive/): ``1/(1+e^{-u}) → σ(u)``,
``log(1+e^{u}) → softplus(u)``, ``log σ(u) → log_sigmoid(u)``, ``log(1-σ(u)) → log_sigmoid(-u)``,
``1 − σ(u) → σ(−u)`` (σ' = σ(u)σ(−u) keeps its relative precision for large |u|), ``log e^{u} → u``.
``log1p``/``expm1`` are chosen later, by the code printer, so derivations stay readable.

Kink convention (documented in the README): at a switch point a derivative takes the
value of the branch *beyond* it. Mechanically, ``Heaviside(0) = 0``, and every non-strict
condition of a derived ``Piecewise`` becomes strict. So ReLU'(0) = 0, LeakyReLU'(0) = α,
and HardTanh'(±1) = 0, the sub-gradients PyTorch uses too.
"""

from __future__ import annotations

import sympy as sp

from layergen.spec.functions import log_sigmoid, sigmoid, softplus

_u = sp.Wild("u")

#: (name, pattern, replacement), applied in order until nothing changes.
STABILITY_RULES: tuple[tuple[str, sp.Expr, sp.Expr], ...] = (
    ("logistic → sigmoid", 1 / (1 + sp.exp(-_u)), sigmoid(_u)),
    ("log(1 + e^u) → softplus(u)", sp.log(1 + sp.exp(_u)), softplus(_u)),
    ("log σ(u) → log_sigmoid(u)", sp.log(sigmoid(_u)), log_sigmoid(_u)),
    ("log(1 − σ(u)) → log_sigmoid(−u)", sp.log(1 - sigmoid(_u)), log_sigmoid(-_u)),
    ("1 − σ(u) → σ(−u)", 1 - sigmoid(_u), sigmoid(-_u)),
)


def stabilize(expr: sp.Expr, applied: list[str] | None = None) -> sp.Expr:
    """Apply the stability rules to a fixed point; record the names of the rules used."""
    if not expr.has(sp.exp, sigmoid):
        # every rule's pattern holds an exponential or a sigmoid: without one nothing can match, and
        # matching `1 − σ(u)` against a long sum (a polynomial's derivative) costs seconds
        return expr
    for _ in range(8):
        before = expr
        for name, pattern, replacement in STABILITY_RULES:
            new = expr.replace(pattern, replacement)
            if new != expr:
                if applied is not None and name not in applied:
                    applied.append(name)
                expr = new
        expr = _log_of_exp(expr, applied)
        if expr == before:
            return expr
    return expr


def _log_of_exp(expr: sp.Expr, applied: list[str] | None) -> sp.Expr:
    def is_log_exp(e: sp.Basic) -> bool:
        return isinstance(e, sp.log) and isinstance(e.args[0], sp.exp) and e.args[0].args[0].is_real is True

    if expr.has(sp.log) and any(is_log_exp(e) for e in sp.preorder_traversal(expr)):
        if applied is not None and "log e^u → u" not in applied:
            applied.append("log e^u → u")
        return expr.replace(is_log_exp, lambda e: e.args[0].args[0])
    return expr


def _strict(cond: sp.Basic) -> sp.Basic:
    if isinstance(cond, sp.GreaterThan):
        return sp.StrictGreaterThan(*cond.args)
    if isinstance(cond, sp.LessThan):
        return sp.StrictLessThan(*cond.args)
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        return cond.func(*[_strict(a) for a in cond.args])
    return cond


def apply_kink_convention(expr: sp.Expr) -> sp.Expr:
    """Make a *derived* expression follow the kink convention (see module docstring)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: sp.Heaviside(e.args[0], 0))
    expr = expr.replace(
        lambda e: isinstance(e, sp.Piecewise),
        lambda e: sp.Piecewise(*[(val, _strict(cond)) for val, cond in e.args], evaluate=False),
    )
    # d|u|/du = sign(u): already 0 at u = 0. DiracDelta only arises from differentiating a
    # derivative at a kink; it is zero away from the kink and we take it to be zero there.
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def tidy(expr: sp.Expr) -> sp.Expr:
    """A bounded simplification: keep ``simplify``'s result only when it is not larger and has no more
    distinct exponentials than the input.

    Why the second condition: simplify likes to pull a common factor out of a sum, which splits one
    bounded exponential into a product of two that are not. The Gaussian NLL's ∂ℓ/∂s = ½ − ½ (y − μ)² e^{−s}
    came back as ½ e^{−s} (e^{s} − (μ − y)²), the same size, but e^{s} overflows for s > 88.7 in float32
    while e^{−s} underflows to 0, and inf · 0 is a NaN gradient where the input's form gives ½. Rewriting an
    exponential's argument (one exponential for another) is still allowed."""
    expr = sp.sympify(expr)
    if expr.is_Atom or sp.count_ops(expr) > 200:
        return expr
    hidden, conditions = _hide_conditions(expr)
    try:
        simple = sp.simplify(hidden, ratio=1.0, rational=False, inverse=False).xreplace(conditions)
    except Exception:  # noqa: BLE001 - simplify can fail on exotic Piecewise; keep the input
        return expr
    if len(simple.atoms(sp.exp)) > len(expr.atoms(sp.exp)):
        return expr
    return simple if sp.count_ops(simple) <= sp.count_ops(expr) else expr


def _hide_conditions(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Dummy, sp.Basic]]:
    """``expr`` with each condition of a ``Piecewise`` (other than ``True``) replaced by a boolean
    placeholder, and the map back.

    Why: ``simplify`` also simplifies the conditions, by relational reasoning that is slow on a
    condition like ``Eq(h'(x), 0)`` with h' a quartic (the sum-of-squares transformer's log-determinant
    gradients: about 4 of the 20 s its derivation took). The conditions here come from the spec or from
    ``apply_kink_convention`` and are already in their final form; the branch values still get simplified."""
    if not expr.has(sp.Piecewise):
        return expr, {}
    placeholders: dict[sp.Basic, sp.Dummy] = {}

    def hide(condition: sp.Basic) -> sp.Basic:
        if condition is sp.true:
            return condition
        return placeholders.setdefault(condition, sp.Dummy(f"condition{len(placeholders)}"))

    hidden = expr.replace(lambda e: isinstance(e, sp.Piecewise),
                          lambda e: sp.Piecewise(*[(value, hide(cond)) for value, cond in e.args], evaluate=False))
    return hidden, {d: c for c, d in placeholders.items()}
