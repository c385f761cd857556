"""Derivation for ``Expanded`` specs: full Jacobian, its structure, log|det J|, VJPs, inverse.

With input components x_j and outputs y_k = f_k(x, θ), the Jacobian J_kj = ∂f_k/∂x_j is formed
symbolically; the VJP is ∂L/∂x_j = Σ_k g_k J_kj (+ ḡ_ld ∂ log|det J|/∂x_j for bijections),
∂L/∂θ = Σ_k g_k ∂f_k/∂θ. The inverse is solved with SymPy (the whole system, or component
by component for triangular maps, 000 eq. 79) and verified, or checked when declared.
"""

from __future__ import annotations

import random

import sympy as sp

from layergen.derive.derivation import ArrayArg, ExpandedDerivation
from layergen.derive.inverse import SOLVE_SECONDS, random_point, time_limit
from layergen.derive.rules import apply_kink_convention, stabilize, tidy
from layergen.derive.structure import classify, log_abs_det
from layergen.errors import SpecError
from layergen.spec.declare import Expanded, param_init, param_trainable
from layergen.spec.domains import domain_of
from layergen.spec.functions import to_elementary


def component_grad(name: str, k: int) -> sp.Symbol:
    return sp.Symbol(f"grad_{name}_{k}", real=True)


def output_symbols(name: str, count: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"{name}{k}", real=True) for k in range(count)]


def derive_expanded(spec: Expanded, content_hash: str) -> ExpandedDerivation:
    args = [ArrayArg(name, "input", ("N", str(len(c)))) for name, c in spec.inputs.items()]
    args += [ArrayArg(s.name, "param", (), trainable=param_trainable(d),
                      init=param_init(d)) for s, d in spec.params.items()]
    args += [ArrayArg(s.name, "hyper", (), default=float(v), domain=domain_of(s, spec.hyper_ranges.get(s))) for s, v in spec.hyper.items()]
    der = ExpandedDerivation(name=spec.name, group=spec.group, kind=spec.kind, content_hash=content_hash,
                             doc=spec.doc, args=args)
    der.conventions.append("at a switch point a derivative takes the value of the branch beyond it (Heaviside(0) = 0)")
    der.inputs = {k: list(v) for k, v in spec.inputs.items()}
    der.outputs = {k: [stabilize(sp.sympify(e), der.rewrites) for e in v] for k, v in spec.forward.items()}
    der.output_symbols = {k: output_symbols(k, len(v)) for k, v in spec.forward.items()}
    xs = [c for comps in der.inputs.values() for c in comps]
    ys = [e for comps in der.outputs.values() for e in comps]

    def d(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
        return stabilize(tidy(apply_kink_convention(sp.diff(expr, wrt))), der.rewrites)

    der.jacobian = sp.Matrix([[d(y, x) for x in xs] for y in ys])
    grads = [component_grad(name, k) for name, comps in der.outputs.items() for k in range(len(comps))]
    wrt = xs + [s for s, decl in spec.params.items() if param_trainable(decl)]
    if spec.kind == "bijection":
        blocks = [len(c) for c in der.inputs.values()]
        der.jacobian_structure = classify(der.jacobian, blocks)
        der.logdet = tidy(log_abs_det(der.jacobian, der.jacobian_structure, blocks))
        der.logdet_partials = {v.name: d(der.logdet, v) for v in wrt if der.logdet.has(v)}
        _inverse(spec, der, xs)
    else:
        der.jacobian_structure = classify(der.jacobian, [len(c) for c in der.inputs.values()])
    ld_weight = sp.Symbol("grad_logdet", real=True)
    for v in wrt:
        total = sp.Add(*[g * d(y, v) for g, y in zip(grads, ys)])
        if v.name in der.logdet_partials:
            total += ld_weight * der.logdet_partials[v.name]
        der.vjps[v.name] = stabilize(tidy(total), der.rewrites)
    return der


def _inverse(spec: Expanded, der: ExpandedDerivation, xs: list[sp.Symbol]) -> None:
    ys_sym = [s for syms in der.output_symbols.values() for s in syms]
    fwd = [to_elementary(e) for comps in der.outputs.values() for e in comps]
    others = list(spec.params) + list(spec.hyper)
    if spec.inverse is not None:
        inv = [sp.sympify(e) for name in spec.inputs for e in spec.inverse[name]]
        if not _inverts(fwd, inv, xs, ys_sym, others):
            raise SpecError(spec.source, "inverse", "does not invert the forward map: inverse(forward(x)) ≠ x "
                            "at random points (checked to 25 digits)")
        source = "declared"
    else:
        inv = _solve(fwd, xs, ys_sym, others)
        if inv is None:
            raise SpecError(spec.source, "inverse", "SymPy found no closed-form inverse of this expanded map; "
                            "declare one with inverse={...} (it will be checked)")
        source = "solved"
    flat = iter(stabilize(tidy(e), der.rewrites) for e in inv)
    der.inverse = {name: [next(flat) for _ in comps] for name, comps in spec.inputs.items()}
    der.inverse_source = source


def _inverts(fwd: list[sp.Expr], inv: list[sp.Expr], xs: list[sp.Symbol], ys: list[sp.Symbol],
             others: list[sp.Symbol]) -> bool:
    rng = random.Random(0)
    for _ in range(5):
        point = random_point(xs + others, rng)
        y_vals = {y: sp.N(f.subs(point), 40) for y, f in zip(ys, fwd)}
        env = {**y_vals, **{o: point[o] for o in others}}
        for x, e in zip(xs, inv):
            back = sp.N(to_elementary(e).subs(env), 40)
            if not back.is_real or abs(back - point[x]) > sp.Float("1e-25") * (1 + abs(point[x])):
                return False
    return True


def _solve(fwd: list[sp.Expr], xs: list[sp.Symbol], ys: list[sp.Symbol], others: list[sp.Symbol]) -> list[sp.Expr] | None:
    try:
        with time_limit(SOLVE_SECONDS):
            solutions = sp.solve([sp.Eq(y, f) for y, f in zip(ys, fwd)], xs, dict=True)
    except (NotImplementedError, TimeoutError, ValueError, TypeError):
        return None
    for sol in solutions:
        if all(x in sol for x in xs):
            candidate = [sol[x] for x in xs]
            if _inverts(fwd, candidate, xs, ys, others):
                return candidate
    return None
