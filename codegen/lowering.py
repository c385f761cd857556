"""Shared lowering helpers: deterministic, bounded CSE into typed assignments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp

from layergen.codegen.ast import Assign
from layergen.codegen.printer import NumbaPrinter, prepare

#: Expressions larger than this skip CSE (it is quadratic in the worst case), keeping it bounded.
CSE_OP_LIMIT = 5000


def hoist_invariants(exprs: list[sp.Expr], invariant: set[sp.Symbol], table: dict[sp.Expr, sp.Symbol]) -> list[sp.Expr]:
    """Replace every maximal subexpression that depends only on ``invariant`` symbols
    (hyperparameters, scalar parameters, sizes) by a symbol ``_k<i>`` recorded in ``table``:
    loop-invariant code motion, so e.g. Adam's bias corrections 1 − β₁ᵗ are computed once per
    call instead of once per element (LLVM does not hoist the pow, and it blocks vectorising)."""
    def visit(e: sp.Basic) -> sp.Basic:
        if e.is_Atom or isinstance(e, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)):
            return e
        if e.free_symbols and e.free_symbols <= invariant and sp.count_ops(e) > 0:
            if e not in table:
                table[e] = sp.Symbol(f"_k{len(table)}", real=True)
            return table[e]
        return e.func(*[visit(a) for a in e.args])

    return [visit(sp.sympify(e)) for e in exprs]


def assignments(targets: Sequence[tuple[str, sp.Expr, str]], symbols: Mapping[sp.Symbol, str],
                temp_prefix: str = "_t", late: Sequence[sp.Symbol] = (), invariant: set[sp.Symbol] | None = None,
                hoisted: dict[sp.Expr, sp.Symbol] | None = None) -> tuple[list[Assign], int]:
    """Lower ``(target, expr, op)`` triples with CSE; return statements and operation count.

    Values are first computed into locals ``_v<k>`` and stored afterwards, so outputs may
    alias inputs (an in-place optimizer step reads every input before writing).
    ``late`` symbols are added last in every sum and never folded into a temporary by CSE
    (see ``NumbaPrinter``): the two parts of a log-sum-exp stay separate.
    """
    exprs = [prepare(e) for _, e, _ in targets]
    if invariant and hoisted is not None:
        exprs = hoist_invariants(exprs, invariant, hoisted)
    total = sum(sp.count_ops(e) for e in exprs)
    if total <= CSE_OP_LIMIT:
        replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(temp_prefix), order="canonical",
                                       ignore=tuple(late))
    else:
        replacements, reduced = [], exprs
    local = dict(symbols)
    local.update({sym: sym.name for sym, _ in replacements})
    if hoisted:
        local.update({sym: sym.name for sym in hoisted.values()})
    printer = NumbaPrinter(local, late=[sym.name for sym in late])
    stmts = [Assign(sym.name, printer.doprint(value)) for sym, value in replacements]
    ops = sum(sp.count_ops(value) for _, value in replacements) + sum(sp.count_ops(e) for e in reduced)
    stores: list[Assign] = []
    for k, ((target, _, op), expr) in enumerate(zip(targets, reduced)):
        if len(targets) > 1:
            stmts.append(Assign(f"_v{k}", printer.doprint(expr)))
            stores.append(Assign(target, f"_v{k}", op))
        else:
            stores.append(Assign(target, printer.doprint(expr), op))
    return stmts + stores, ops


def hoisted_statements(hoisted: Mapping[sp.Expr, sp.Symbol], symbols: Mapping[sp.Symbol, str]) -> list[Assign]:
    """The loop-invariant values, in the order they were found, printed once per call."""
    printer = NumbaPrinter(symbols)
    return [Assign(sym.name, printer.doprint(expr)) for expr, sym in hoisted.items()]
