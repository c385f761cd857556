"""Lowering of an ``ExpandedDerivation``: one loop over samples, components unrolled."""

from __future__ import annotations

import sympy as sp

from layergen.codegen.ast import Kernel, KernelArg, Loop, Raw, Stmt
from layergen.codegen.lowering import assignments
from layergen.derive.derivation import ExpandedDerivation
from layergen.derive.expanded import component_grad


def _codes(der: ExpandedDerivation) -> dict[sp.Symbol, str]:
    table: dict[sp.Symbol, str] = {}
    for name, comps in der.inputs.items():
        table.update({c: f"{name}[_n, {i}]" for i, c in enumerate(comps)})
    for name, syms in der.output_symbols.items():
        table.update({s: f"{name}[_n, {k}]" for k, s in enumerate(syms)})
        table.update({component_grad(name, k): f"grad_{name}[_n, {k}]" for k in range(len(syms))})
    for a in der.args:
        if a.role == "param":
            table[sp.Symbol(a.name, real=True)] = f"{a.name}[()]"
        elif a.role == "hyper":
            table[sp.Symbol(a.name, real=True)] = f"_h_{a.name}"
    table[sp.Symbol("grad_logdet", real=True)] = "grad_logdet[_n]"
    return table


def _by_name(der: ExpandedDerivation, table: dict[sp.Symbol, str]) -> dict[sp.Symbol, str]:
    """Match symbols by name too: spec symbols may carry other assumptions than ours."""
    by_name = {s.name: c for s, c in table.items()}
    every = set()
    for exprs in [*der.outputs.values(), *(der.inverse or {}).values()]:
        for e in exprs:
            every |= e.free_symbols
    for e in [*der.vjps.values(), *( [der.logdet] if der.logdet is not None else [])]:
        every |= e.free_symbols
    return {**table, **{s: by_name[s.name] for s in every if s.name in by_name}}


def lower_expanded(der: ExpandedDerivation) -> list[Kernel]:
    table = _by_name(der, _codes(der))
    hypers = [a.name for a in der.args_with_role("hyper")]
    hyper_args = [KernelArg(h, (), "hyper") for h in hypers]
    inputs = [KernelArg(n, ("N", str(len(c))), "input") for n, c in der.inputs.items()]
    params = [KernelArg(a.name, (), "param") for a in der.args_with_role("param")]
    outputs = [KernelArg(n, ("N", str(len(c))), "output") for n, c in der.outputs.items()]
    first = inputs[0].name
    bijection = der.kind == "bijection"
    kernels: list[Kernel] = []

    def kernel(name: str, doc: str, args: list[KernelArg], body: list[Stmt], ops: int, dtype_from: str) -> Kernel:
        return Kernel(name, doc, args + hyper_args, tuple(body), ops, dtype_from,
                      sizes={"_N": f"{dtype_from}.shape[0]"}, hypers=hypers)

    targets = [(f"{n}[_n, {k}]", e, "=") for n, comps in der.outputs.items() for k, e in enumerate(comps)]
    if bijection:
        targets.append(("logdet[_n]", der.logdet, "="))
    stmts, ops = assignments(targets, table)
    extra = [KernelArg("logdet", ("N",), "output")] if bijection else []
    kernels.append(kernel("forward", "Data → latent, sample by sample" + (", with logdet[n] = log|det J|." if bijection else "."),
                          inputs + params + outputs + extra, [Loop("_n", "_N", tuple(stmts))], ops, first))
    if bijection:
        inv_table = dict(table)
        targets = [(f"{n}[_n, {i}]", e, "=") for n, comps in der.inverse.items() for i, e in enumerate(comps)]
        stmts, ops = assignments(targets, inv_table)
        # log|det| of the inverse is −log|det J| at the recovered x: evaluate after storing x.
        ld, ld_ops = assignments([("logdet[_n]", -der.logdet, "=")], table)
        out_args = [KernelArg(n, ("N", str(len(c))), "output") for n, c in der.inverse.items()]
        y_args = [KernelArg(n, ("N", str(len(c))), "input") for n, c in der.outputs.items()]
        kernels.append(kernel("inverse", f"Latent → data ({der.inverse_source} inverse), logdet[n] = −log|det J(x)|.",
                              y_args + params + out_args + [KernelArg("logdet", ("N",), "output")],
                              [Loop("_n", "_N", tuple(stmts + ld))], ops + ld_ops, y_args[0].name))
    grad_targets = []
    for name, comps in der.inputs.items():
        grad_targets += [(f"grad_{name}[_n, {i}]", der.vjps[c.name], "=") for i, c in enumerate(comps)]
    trainable = [a for a in der.args_with_role("param") if a.trainable]
    grad_targets += [(f"grad_{a.name}[()]", der.vjps[a.name], "+=") for a in trainable]
    stmts, ops = assignments(grad_targets, table)
    zero: list[Stmt] = [Raw(f"grad_{a.name}[()] = _dt(0)") for a in trainable]
    grads_in = [KernelArg(f"grad_{o.name}", o.shape, "grad_output") for o in outputs]
    if bijection:
        grads_in.append(KernelArg("grad_logdet", ("N",), "grad_output"))
    grads_out = [KernelArg(f"grad_{a.name}", a.shape, "grad") for a in inputs]
    grads_out += [KernelArg(f"grad_{a.name}", (), "grad") for a in trainable]
    kernels.append(kernel("forward_vjp" if bijection else "vjp", "VJP: grad_v = Σ_k grad_y_k ∂y_k/∂v"
                          + (" + grad_logdet ∂log|det J|/∂v." if bijection else "."),
                          inputs + params + grads_in + grads_out, zero + [Loop("_n", "_N", tuple(stmts))], ops, first))
    return kernels
