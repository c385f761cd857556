"""Derivation for ``Elementwise`` specs: VJPs through reductions, log|det J|, inverse.

Notation (003 §4): outputs ψ_o(e, r) of per-element symbols e and reductions r; reduction
m is r_m = op_k φ_m(e_k, r_<m), with Φ_m its per-element contribution, so
∂r_m/∂e_k = Φ'_m: 1 (sum), 1/n (mean), e^{φ_m − r_m} (logsumexp; the softmax), times ∂φ_m/∂e.
Given upstream gradients g_o = ∂L/∂ψ_o (symbols ``grad_<o>``), the chain rule in reverse
topological order gives

    r̄_m = Σ_group [ Σ_o g_o ∂ψ_o/∂r_m + Σ_{m'>m} r̄_{m'} ∂Φ_{m'}/∂r_m ]           (adjoint of r_m)
    ē   = Σ_o g_o ∂ψ_o/∂e + Σ_m r̄_m ∂Φ_m/∂e  [+ ḡ_ld ∂ log|h'|/∂e for bijections]

which is the VJP of 003 §9.1 (``∂L/∂X = ∂L/∂F ⊙ f'(X)``) when there are no reductions, and
003 §8's batch-norm result when there are. A parameter of shape (D,) sums ē over the batch.
A bijection y = h(x; θ, γ) has a diagonal Jacobian, so log|det J| = Σ_d log|h'(x_d)|
(triangular-map theorem, 000 eq. 72). A loss is L = (1/N) Σ_{n,d} ℓ (003 §2), so g_ℓ = 1/N.
"""

from __future__ import annotations

import sympy as sp

from layergen.derive.derivation import ArrayArg, ElementwiseDerivation, NumericInverse, ReductionStep
from layergen.derive.inverse import check_declared, monotone_direction, solve_scalar
from layergen.derive.rules import apply_kink_convention, stabilize, tidy
from layergen.errors import SpecError
from layergen.spec.declare import OPTIMIZER_PARAMETER, D, N, Elementwise, param_init, param_shape, param_trainable
from layergen.spec.domains import domain_of

KINK_NOTE = "at a switch point a derivative takes the value of the branch beyond it (Heaviside(0) = 0)"

#: how the generated update stores its state (``codegen.lower_elementwise._update`` says why)
STATE_FLUSH = ("optimizer state whose new value lies below the smallest normal number (1.2e-38 in float32, "
               "2.2e-308 in float64) is stored as 0; the update of θ uses the value before that")


def _shape(shape: tuple[sp.Expr, ...]) -> tuple[str, ...]:
    return tuple(str(s) for s in shape)


def _args(spec: Elementwise) -> list[ArrayArg]:
    args = [ArrayArg(s.name, "input", _shape(sh)) for s, sh in spec.inputs.items()]
    args += [ArrayArg(s.name, "conditioning", _shape(sh)) for s, sh in spec.conditioning.items()]
    args += [ArrayArg(s.name, "target", _shape(sh)) for s, sh in spec.targets.items()]
    args += [ArrayArg(s.name, "constant", _shape(sh)) for s, sh in spec.constants.items()]
    args += [ArrayArg(s.name, "param", _shape(param_shape(d)), trainable=param_trainable(d),
                      init=param_init(d)) for s, d in spec.params.items()]
    args += [ArrayArg(s.name, "hyper", (), default=float(v), domain=domain_of(s, spec.hyper_ranges.get(s))) for s, v in spec.hyper.items()]
    return args


def grad_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(f"grad_{name}", real=True)


def _d(expr: sp.Expr, wrt: sp.Symbol, rewrites: list[str] | None = None) -> sp.Expr:
    """∂expr/∂wrt with the kink convention, simplified, then stabilized again."""
    return stabilize(tidy(apply_kink_convention(sp.diff(expr, wrt))), rewrites)


def _reduction_factor(op: str, axis: int, operand: sp.Expr, result: sp.Symbol) -> sp.Expr:
    if op == "sum":
        return sp.S.One
    if op == "mean":
        return 1 / (D if axis == 1 else N)
    return sp.exp(operand - result)  # logsumexp


def derive_elementwise(spec: Elementwise, content_hash: str) -> ElementwiseDerivation:
    rewrites: list[str] = []
    args = _args(spec)
    symbols = {s.name: s for s in [*spec.inputs, *spec.conditioning, *spec.targets, *spec.constants, *spec.params, *spec.hyper,
                                    *spec.reductions, *spec.forward]}
    der = ElementwiseDerivation(name=spec.name, group=spec.group, kind=spec.kind, content_hash=content_hash,
                                doc=spec.doc, args=args, rewrites=rewrites, symbols=symbols)
    der.outputs = {o.name: stabilize(sp.sympify(e), rewrites) for o, e in spec.forward.items()}
    if spec.kind == "optimizer_step":  # an update rule: evaluated, never differentiated
        if any(o.name != f"{OPTIMIZER_PARAMETER}_new" for o in spec.forward):
            der.conventions.append(STATE_FLUSH)
        return der
    der.conventions.append(KINK_NOTE)
    wrt = [symbols[a.name] for a in der.differentiable]
    red_syms = list(spec.reductions)
    for sym, red in spec.reductions.items():
        operand = stabilize(red.operand, rewrites)
        factor = _reduction_factor(red.op, red.axis, operand, sym)
        partials = {v.name: tidy(factor * _d(operand, v, rewrites)) for v in [*wrt, *red_syms] if operand.has(v)}
        der.reductions.append(ReductionStep(sym, red.op, red.axis, operand, partials))
    der.partials = {o: {v.name: _d(e, v, rewrites) for v in [*wrt, *red_syms] if e.has(v)} for o, e in der.outputs.items()}

    der.reduction = spec.reduction
    if spec.kind == "loss":
        (out,) = der.outputs
        upstream = {out: 1 / N if spec.reduction == "mean" else sp.S.One}  # L = (1/N) Σ ℓ, or Σ ℓ
    else:
        upstream = {o: grad_symbol(o) for o in der.outputs}

    if spec.kind == "bijection":
        _derive_bijection(spec, der, wrt + red_syms)

    def adjoint(name: str) -> sp.Expr:
        total = sp.Add(*[upstream[o] * p[name] for o, p in der.partials.items() if name in p])
        if name in der.logdet_partials:  # log|det J| is one more output, with upstream grad_logdet
            total += grad_symbol("logdet") * der.logdet_partials[name]
        for step in der.reductions:
            if name in step.partials:
                total += grad_symbol(step.symbol.name) * step.partials[name]
        return total

    for step in der.reductions:
        der.reduction_adjoints[step.symbol.name] = tidy(adjoint(step.symbol.name))
    for v in wrt:
        der.vjps[v.name] = stabilize(tidy(adjoint(v.name)), rewrites)
    if spec.kind == "loss":
        der.loss_gradients = {a.name: der.vjps[a.name] for a in der.args_with_role("input")}
    return der


def _derive_bijection(spec: Elementwise, der: ElementwiseDerivation, wrt: list[sp.Symbol]) -> None:
    (x,) = spec.inputs
    (y,) = spec.forward
    h = der.outputs[y.name]
    dh = _d(h, x, der.rewrites)
    der.jacobian_structure = "diagonal"
    der.logdet = tidy(sp.log(sp.Abs(dh)))
    der.logdet_partials = {v.name: _d(der.logdet, v, der.rewrites) for v in wrt if der.logdet.has(v)}
    others = [*spec.params, *spec.conditioning, *spec.hyper]
    if spec.reductions:
        der.conventions.append("batch statistics: log|det J| = Σ_d log|∂y/∂x| with the statistics held fixed (000 eq. 77), "
                               "while the VJP also runs through them; the inverse is the evaluation-mode spec's, at the "
                               "running averages")
        return

    def fail(message: str) -> SpecError:
        return SpecError(spec.source, "inverse", message)

    if spec.inverse is not None:
        inverse = sp.sympify(spec.inverse[x])
        check_declared(h, inverse, x, y, others, fail)
        der.inverse, der.inverse_source = {x.name: stabilize(inverse, der.rewrites)}, "declared"
        return
    solved = solve_scalar(h, x, y, others)
    if solved is not None:
        der.inverse, der.inverse_source = {x.name: stabilize(tidy(solved), der.rewrites)}, "solved"
        return
    increasing = monotone_direction(dh, [x, *others])
    if increasing is None:
        raise SpecError(spec.source, "forward", f"h'({x}) changes sign at random points, so {y} = h({x}) is not "
                        "a bijection; a scalar transformer must be strictly monotone")
    bracket = None if spec.bracket is None else tuple(sp.sympify(b) for b in spec.bracket[x])
    der.numeric_inverse = NumericInverse(h=h, dh=dh, increasing=increasing, bracket=bracket)
    der.inverse_source = "numeric"
    where = (f"sought in the spec's bracket {x} ∈ [{bracket[0]}, {bracket[1]}]; a value outside h([lo, hi]) is an error"
             if bracket else "in a bracket [−2^k, 2^k] widened until it holds the root")
    der.conventions.append(f"inverse: bracketed Newton/bisection on h(x) = y with the derived h'(x), {where}")

