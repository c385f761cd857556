"""Lowering of an ``ElementwiseDerivation`` to kernels (see ``derive.elementwise`` for the math).

Loop structure: without reductions, ``for _n: for _d:`` over the elements (``for _i`` for
flat arrays). With reductions over axis 1 the outer loop runs over samples ``_n`` and each
reduction is an inner pass over features ``_d``; over axis 0 the roles swap (outer ``_d``,
inner ``_n``). Reductions and their adjoints are scalars of the group: no allocation.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import numpy as np
import sympy as sp

from layergen.codegen.ast import Assign, Kernel, KernelArg, Loop, NewtonSolve, Raw, Stmt
from layergen.codegen.lowering import assignments, hoisted_statements
from layergen.derive.derivation import ElementwiseDerivation, ReductionStep
from layergen.derive.elementwise import STATE_FLUSH, grad_symbol
from layergen.spec.declare import OPTIMIZER_PARAMETER, D, N


#: the cached e^{u_d − m} and 1/Σ e^{u − m} of a loss gradient's softmax (``reuse_softmax``)
SOFTMAX_TERM, SOFTMAX_SCALE = sp.Symbol("_softmax_term", positive=True), sp.Symbol("_softmax_scale", positive=True)


class ElementwiseLowering:
    def __init__(self, der: ElementwiseDerivation) -> None:
        self.der = der
        first = der.args_with_role("input")[0]
        self.rank = len(first.shape)
        self.index = "_n, _d" if self.rank == 2 else "_i"
        self.axis = der.reductions[0].axis if der.reductions else None
        self.sizes = {"_N": f"{first.name}.shape[0]"} | ({"_D": f"{first.name}.shape[1]"} if self.rank == 2 else {})
        self.ops = 0
        self.hoisted: dict[sp.Expr, sp.Symbol] = {}
        self.invariant = {N, D} | {der.symbols[a.name] for a in der.args
                                   if a.role == "hyper" or (a.role == "param" and not a.shape)}
        #: where the log-sum-exp pass leaves e^{u − m} for the element loop (see ``softmax_cache_for``)
        self.softmax_cache: str | None = None

    # -- symbol → code ----------------------------------------------------------------
    def codes(self, **overrides: str) -> dict[sp.Symbol, str]:
        der, table = self.der, {}
        for a in der.args:
            sym = der.symbols[a.name]
            if a.role == "hyper":
                table[sym] = f"_h_{a.name}"
            elif a.role == "param":
                table[sym] = f"{a.name}[_d]" if a.shape else f"{a.name}[()]"
            else:
                table[sym] = f"{a.name}[{self.index}]"
        for o in der.outputs:
            table[grad_symbol(o)] = f"grad_{o}[{self.index}]"
        for step in der.reductions:
            table[step.symbol] = f"_r_{step.symbol.name}"
            table[grad_symbol(step.symbol.name)] = f"_g_{step.symbol.name}"
        table[grad_symbol("logdet")] = "grad_logdet[_n]"
        table[N], table[D] = "_dt(_N)", "_dt(_D)"
        for name, code in overrides.items():
            table[der.symbols.get(name, sp.Symbol(name, real=True))] = code
        return table

    def split_logsumexp(self) -> tuple[dict[sp.Symbol, sp.Expr], list[sp.Symbol]]:
        """lse → m + l (the group's maximum and log Σ e^{u − m}), never rounded into one float."""
        split: dict[sp.Symbol, sp.Expr] = {}
        late: list[sp.Symbol] = []
        for step in self.der.reductions:
            if step.op == "logsumexp":
                m, l = sp.Symbol(f"_m_{step.symbol.name}", real=True), sp.Symbol(f"_l_{step.symbol.name}", real=True)
                split[step.symbol] = m + l
                late += [m, l]
        return split, late

    def lower(self, targets: list[tuple[str, sp.Expr, str]], **overrides: str) -> list[Stmt]:
        split, late = self.split_logsumexp()
        codes = self.codes(**overrides)
        codes.update({s: s.name for s in late})
        targets = [(t, sp.sympify(e).xreplace(split), op) for t, e, op in targets]
        if self.softmax_cache is not None:
            targets = [(t, self.reuse_softmax(e), op) for t, e, op in targets]
            codes.update({SOFTMAX_TERM: self.softmax_cache, SOFTMAX_SCALE: f"_i_{self.der.reductions[0].symbol.name}"})
        stmts, ops = assignments(targets, codes, late=late, invariant=self.invariant, hoisted=self.hoisted)
        self.ops += ops
        return list(stmts)

    # -- loop shapes ------------------------------------------------------------------
    def elements(self, body: list[Stmt]) -> list[Stmt]:
        if self.rank == 1:
            return [Loop("_i", "_N", tuple(body))]
        return [Loop("_n", "_N", (Loop("_d", "_D", tuple(body)),))]

    def inner(self, body: list[Stmt]) -> Loop:
        return Loop("_d", "_D", tuple(body)) if self.axis == 1 else Loop("_n", "_N", tuple(body))

    def groups(self, body: list[Stmt], comment: str) -> list[Stmt]:
        index, stop = ("_n", "_N") if self.axis == 1 else ("_d", "_D")
        return [Loop(index, stop, tuple(body), comment)]

    def softmax_cache_for(self, array: str) -> None:
        """Let the kernel's one log-sum-exp pass store each e^{u_d − m} into ``array[_n, _d]`` (an output
        the element loop writes at the same index, after reading it), and the element loop read it back:
        its e^{u_d − m − l} is that value over Σ e^{u − m}, so the softmax of a loss gradient costs one
        exp per element instead of two (exp is a libm call that LLVM does not vectorise)."""
        self.softmax_cache = f"{array}[{self.index}]"

    def reuse_softmax(self, expr: sp.Expr) -> sp.Expr:
        """e^{u_d − m − l} → (cached e^{u_d − m}) · (1/Σ e^{u − m}), wherever the exponent is exactly that."""
        (step,) = self.der.reductions
        name = step.symbol.name
        m, l = sp.Symbol(f"_m_{name}", real=True), sp.Symbol(f"_l_{name}", real=True)
        exponent = step.operand - m - l
        return expr.replace(lambda e: isinstance(e, sp.exp) and sp.expand(e.args[0] - exponent) == 0,
                            lambda e: SOFTMAX_TERM * SOFTMAX_SCALE)

    def reduction(self, step: ReductionStep) -> list[Stmt]:
        r = f"_r_{step.symbol.name}"
        if step.op == "logsumexp":
            m, s = f"_m_{step.symbol.name}", f"_s_{step.symbol.name}"
            cache = self.softmax_cache
            self.softmax_cache = None  # the passes below compute u itself, not from the cache
            # -1e400 is a literal −inf, so the float32 kernel loads no float64 constant
            stmts = [Assign(m, "_dt(-1e400)"),
                     self.inner(self.lower([("_u", step.operand, "=")]) + [Assign(m, f"max({m}, _u)")]),
                     Assign(s, "_dt(0)")]
            if cache is None:
                stmts.append(self.inner(self.lower([("_u", step.operand, "=")]) + [Assign(s, f"np.exp(_u - {m})", "+=")]))
            else:
                stmts += [self.inner(self.lower([("_u", step.operand, "=")]) + [
                    Assign("_e", f"np.exp(_u - {m})"), Assign(s, "_e", "+="), Assign(cache, "_e")]),
                    Assign(f"_i_{step.symbol.name}", f"_dt(1) / {s}")]
            self.softmax_cache = cache
            return stmts + [Assign(f"_l_{step.symbol.name}", f"np.log({s})")]
        stmts: list[Stmt] = [Assign(r, "_dt(0)"), self.inner(self.lower([(r, step.operand, "+=")]))]
        if step.op == "mean":
            stmts.append(Assign(r, f"{r} / _dt({'_D' if step.axis == 1 else '_N'})"))
        return stmts

    def forward_reductions(self) -> list[Stmt]:
        return [s for step in self.der.reductions for s in self.reduction(step)]

    def reduction_adjoints(self, upstream: dict[sp.Symbol, sp.Expr] | None = None) -> list[Stmt]:
        stmts: list[Stmt] = []
        for step in reversed(self.der.reductions):
            g = f"_g_{step.symbol.name}"
            expr = self.der.reduction_adjoints[step.symbol.name]
            if upstream:
                expr = expr.subs(upstream)
            stmts += [Assign(g, "_dt(0)"), self.inner(self.lower([(g, expr, "+=")]))]
        return stmts

    def with_groups(self, element_body: list[Stmt], before: list[Stmt], comment: str) -> list[Stmt]:
        if self.axis is None:
            return before + self.elements(element_body)
        return self.groups(before + [self.inner(element_body)], comment)

    # -- argument lists ---------------------------------------------------------------
    def data_args(self, *roles: str) -> list[KernelArg]:
        return [KernelArg(a.name, a.shape, a.role) for a in self.der.args if a.role in roles]

    def hypers(self) -> list[str]:
        return [a.name for a in self.der.args_with_role("hyper")]

    def kernel(self, name: str, doc: str, args: list[KernelArg], body: list[Stmt], returns: str | None = None) -> Kernel:
        invariant = hoisted_statements(self.hoisted, self.codes())
        kernel = Kernel(name=name, doc=doc, args=args + [KernelArg(h, (), "hyper") for h in self.hypers()],
                        body=tuple(invariant + body), op_count=self.ops + sum(int(sp.count_ops(e)) for e in self.hoisted),
                        dtype_from=args[0].name, returns=returns, sizes=self.sizes, hypers=self.hypers())
        self.ops = 0
        self.hoisted = {}
        return kernel

    def zero_param_grads(self, params: list[KernelArg]) -> list[Stmt]:
        return [Raw(f"grad_{p.name}[{':' if p.shape else '()'}] = _dt(0)") for p in params]

    def grad_targets(self, expressions: dict[str, sp.Expr]) -> list[tuple[str, sp.Expr, str]]:
        out = []
        for a in self.der.differentiable:
            if a.role == "param":
                out.append((f"grad_{a.name}[{'_d' if a.shape else '()'}]", expressions[a.name], "+="))
            else:
                out.append((f"grad_{a.name}[{self.index}]", expressions[a.name], "="))
        return out

    def grad_args(self) -> list[KernelArg]:
        return [KernelArg(f"grad_{a.name}", a.shape, "grad") for a in self.der.differentiable]


def lower_elementwise(der: ElementwiseDerivation) -> list[Kernel]:
    low = ElementwiseLowering(der)
    kind = der.kind
    if kind == "optimizer_step":
        return [_step(low), _step_inplace(low)]
    if kind == "loss":
        return [_loss(low, with_grad=False), _loss(low, with_grad=True)]
    if kind == "bijection" and der.reductions:  # batch statistics: the inverse is the evaluation-mode spec's
        return [_bijection_forward(low), _bijection_vjp(low)]
    if kind == "bijection":
        return [_bijection_forward(low), _bijection_inverse(low), _bijection_vjp(low)]
    return [_map_forward(low), _map_vjp(low)]


def _outputs(low: ElementwiseLowering) -> list[KernelArg]:
    shape = low.der.args_with_role("input")[0].shape
    return [KernelArg(o, shape, "output") for o in low.der.outputs]


def _map_forward(low: ElementwiseLowering) -> Kernel:
    der = low.der
    body = low.lower([(f"{o}[{low.index}]", e, "=") for o, e in der.outputs.items()])
    stmts = low.with_groups(body, low.forward_reductions(), "one group per reduction")
    args = low.data_args("input", "conditioning", "target", "constant", "param") + _outputs(low)
    return low.kernel("forward", f"Evaluate {', '.join(der.outputs)} = {der.name}(...) into the output arrays.", args, stmts)


def _map_vjp(low: ElementwiseLowering) -> Kernel:
    der = low.der
    params = [a for a in der.differentiable if a.role == "param"]
    body = low.lower(low.grad_targets(der.vjps))
    before = low.forward_reductions() + low.reduction_adjoints()
    stmts = low.zero_param_grads(params) + low.with_groups(body, before, "reductions, then their adjoints")
    grads_in = [KernelArg(f"grad_{o}", a.shape, "grad_output") for o, a in zip(der.outputs, _outputs(low))]
    args = low.data_args("input", "conditioning", "target", "constant", "param") + grads_in + low.grad_args()
    return low.kernel("vjp", "Vector-Jacobian products: grad_<v> = Σ_o grad_o ∂o/∂v for every input and trainable parameter.",
                      args, stmts)


def _loss(low: ElementwiseLowering, with_grad: bool) -> Kernel:
    der = low.der
    (ell,) = der.outputs.values()
    upstream = {grad_symbol(o): (1 / N if der.reduction == "mean" else sp.S.One) for o in der.outputs}
    targets = [("_L", ell, "+=")]
    if with_grad:
        targets += [(t, e.subs(upstream), op) for t, e, op in low.grad_targets(der.vjps)]
    predictions = [a for a in der.differentiable if a.role != "param"]
    if (with_grad and low.rank == 2 and low.axis == 1 and len(predictions) == 1
            and [step.op for step in der.reductions] == ["logsumexp"]):
        low.softmax_cache_for(f"grad_{predictions[0].name}")
    body = low.lower(targets)
    before = low.forward_reductions() + (low.reduction_adjoints(upstream) if with_grad else [])
    low.softmax_cache = None
    params = [a for a in der.differentiable if a.role == "param"]
    stmts: list[Stmt] = [Assign("_L", "_dt(0)")] + (low.zero_param_grads(params) if with_grad else [])
    stmts += low.with_groups(body, before, "one sample per group")
    args = low.data_args("input", "target", "constant", "param") + (low.grad_args() if with_grad else [])
    total = "_L / _dt(_N)" if der.reduction == "mean" else "_L"
    formula = "(1/N) Σ ℓ, the batch mean (003 §2)" if der.reduction == "mean" else "Σ ℓ"
    if with_grad:
        return low.kernel("loss_grad", f"L = {formula} and, into grad_<prediction>, ∂L/∂prediction; returns L.",
                          args, stmts, returns=total)
    return low.kernel("loss", f"L = {formula} of the per-element loss.", args, stmts, returns=total)


#: why the out-of-place update names its in-place sibling (measured: Adam on 26 122 float32 parameters)
STEP_DOC = ("One optimizer update, element by element, into separate outputs.\n\n"
            "Outputs may alias inputs, but LLVM's alias check then fails and the loop runs unvectorised\n"
            "(Adam on 26k float32 parameters: 63 µs, against 9 µs for step_inplace and 11 µs into separate\n"
            "outputs); to update in place, call step_inplace.")


def _update(low: ElementwiseLowering, destination: Callable[[str], str]) -> list[Stmt]:
    """The update's loop: θ stored as computed, each state below the normal range stored as 0 (``STATE_FLUSH``).

    Why: a parameter whose gradient stays exactly 0 (a dead ReLU unit) has its moments decay geometrically
    into the subnormal range, and the smallest subnormal is a fixed point of m ← β₁m, so they stay there.
    Intel cores take a microcode assist on every operation with a subnormal operand: after 7000 steps of the
    two-moons flow (float64) 15 000 of its 53 024 first moments were subnormal and the step took 2.4 ms
    instead of 1.6 ms. A state that small contributes an update far below θ's last bit (with Adam's defaults
    at most 2·10⁻³⁰³ in float64 and 10⁻³³ in float32), so θ does not change either way unless it is itself
    about that close to 0. A NaN state is kept (the comparison is false for it)."""
    der = low.der
    state = {destination(o) for o in der.outputs if o[: -len("_new")] != OPTIMIZER_PARAMETER}
    body: list[Stmt] = []
    for stmt in low.lower([(destination(o), e, "=") for o, e in der.outputs.items()]):
        if isinstance(stmt, Assign) and stmt.target in state:
            body += [Assign("_state", stmt.value), Assign(stmt.target, "_dt(0) if np.abs(_state) < _tiny else _state")]
        else:
            body.append(stmt)
    # the smallest normal number of the kernel's dtype, as a literal of each (np.finfo would do as well)
    smallest_normal = (f"_dt({float(np.finfo(np.float32).tiny)!r}) if {OPTIMIZER_PARAMETER}.itemsize == 4 "
                       f"else _dt({float(np.finfo(np.float64).tiny)!r})")
    tiny = [Assign("_tiny", smallest_normal)] if state else []
    return tiny + low.elements(body)


def _state_doc(low: ElementwiseLowering) -> str:
    """The docstring's paragraph on ``STATE_FLUSH``, for an update whose derivation records it (one with state)."""
    if STATE_FLUSH not in low.der.conventions:
        return ""
    return "\n\n" + textwrap.fill(f"The {STATE_FLUSH}.", width=100)


def _step(low: ElementwiseLowering) -> Kernel:
    args = low.data_args("input", "param") + _outputs(low)
    return low.kernel("step", STEP_DOC + _state_doc(low), args, _update(low, lambda o: f"{o}[_i]"))


def _step_inplace(low: ElementwiseLowering) -> Kernel:
    """The same update written straight into its inputs (role ``inout``): with no separate
    output pointers that might alias, LLVM vectorises the loop (Adam: 46 → 4 µs for 26k)."""
    der = low.der
    updated = {o[: -len("_new")] for o in der.outputs}
    args = [KernelArg(a.name, a.shape, "inout" if a.name in updated else a.role)
            for a in der.args if a.role in ("input", "param")]
    return low.kernel("step_inplace", "One optimizer update in place: each input <x> becomes <x>_new." + _state_doc(low),
                      args, _update(low, lambda o: f"{o[: -len('_new')]}[_i]"))


def _bijection_forward(low: ElementwiseLowering) -> Kernel:
    der = low.der
    (x,) = [a.name for a in der.args_with_role("input")]
    (y, h), = der.outputs.items()
    if der.reductions:  # outer loop over features (one group of batch statistics each), logdet accumulated
        body = low.lower([(f"{y}[_n, _d]", h, "="), ("logdet[_n]", der.logdet, "+=")])
        stmts = [Raw("logdet[:] = _dt(0)")] + low.with_groups(body, low.forward_reductions(), "batch statistics per feature")
    else:
        body = low.lower([(f"{y}[_n, _d]", h, "="), ("_ld", der.logdet, "+=")])
        stmts = [Loop("_n", "_N", (Assign("_ld", "_dt(0)"), Loop("_d", "_D", tuple(body)), Assign("logdet[_n]", "_ld")))]
    args = low.data_args("input", "conditioning", "param") + _outputs(low) + [KernelArg("logdet", ("N",), "output")]
    return low.kernel("forward", f"Data → latent: {y} = h({x}) and logdet[n] = Σ_d log|∂{y}/∂{x}| (000 eq. 72).",
                      args, stmts)


def _bijection_inverse(low: ElementwiseLowering) -> Kernel:
    der = low.der
    (xa,) = der.args_with_role("input")
    (y,) = der.outputs
    if der.inverse is not None:
        solve: list[Stmt] = low.lower([("_x", der.inverse[xa.name], "=")], **{y: f"{y}[_n, _d]"})
    else:
        ni = der.numeric_inverse
        evaluate = low.lower([("_h", ni.h, "="), ("_dh", ni.dh, "=")], **{xa.name: "_x"})
        bracket = () if ni.bracket is None else tuple(low.lower([("_lo", ni.bracket[0], "="), ("_hi", ni.bracket[1], "=")]))
        solve = [NewtonSolve("_x", f"{y}[_n, _d]", tuple(evaluate), ni.increasing, bracket, der.name)]
    finish = low.lower([(f"{xa.name}[_n, _d]", der.symbols[xa.name], "="), ("_ld", -der.logdet, "+=")],
                       **{xa.name: "_x"})
    body = solve + finish
    stmts = [Loop("_n", "_N", (Assign("_ld", "_dt(0)"), Loop("_d", "_D", tuple(body)), Assign("logdet[_n]", "_ld")))]
    args = ([KernelArg(y, xa.shape, "input")] + low.data_args("conditioning", "param")
            + [KernelArg(xa.name, xa.shape, "output"), KernelArg("logdet", ("N",), "output")])
    kernel = low.kernel("inverse", f"Latent → data: {xa.name} = h⁻¹({y}) ({der.inverse_source}) and logdet[n] = "
                        f"log|det ∂{xa.name}/∂{y}| = −Σ_d log|h'({xa.name})|.", args, stmts)
    kernel.sizes = {"_N": f"{y}.shape[0]", "_D": f"{y}.shape[1]"}
    return kernel


def _bijection_vjp(low: ElementwiseLowering) -> Kernel:
    der = low.der
    params = [a for a in der.differentiable if a.role == "param"]
    body = low.lower(low.grad_targets(der.vjps))
    (y,) = der.outputs
    xa = der.args_with_role("input")[0]
    before = low.forward_reductions() + low.reduction_adjoints()
    stmts = low.zero_param_grads(params) + low.with_groups(body, before, "batch statistics, then their adjoints")
    args = (low.data_args("input", "conditioning", "param") + [KernelArg(f"grad_{y}", xa.shape, "grad_output"),
            KernelArg("grad_logdet", ("N",), "grad_output")] + low.grad_args())
    return low.kernel("forward_vjp", "VJP of the fused forward (y, logdet): grad_v = grad_y ∂y/∂v + grad_logdet ∂logdet/∂v.",
                      args, stmts)
