"""Shared lowering helpers: deterministic, bounded CSE into typed assignments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp

from layergen.codegen.ast import Assign
from layergen.codegen.printer import NumbaPrinter, prepare

#: Expressions larger than this skip CSE (it is quadratic in the worst case), keeping it bounded.
CSE_OP_LIMIT = 5000


def assignments(targets: Sequence[tuple[str, sp.Expr, str]], symbols: Mapping[sp.Symbol, str],
                temp_prefix: str = "_t", late: Sequence[sp.Symbol] = ()) -> tuple[list[Assign], int]:
    """Lower ``(target, expr, op)`` triples with CSE; return statements and operation count.

    Values are first computed into locals ``_v<k>`` and stored afterwards, so outputs may
    alias inputs (an in-place optimizer step reads every input before writing).
    ``late`` symbols are added last in every sum and never folded into a temporary by CSE
    (see ``NumbaPrinter``): the two parts of a log-sum-exp stay separate.
    """
    exprs = [prepare(e) for _, e, _ in targets]
    total = sum(sp.count_ops(e) for e in exprs)
    if total <= CSE_OP_LIMIT:
        replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(temp_prefix), order="canonical",
                                       ignore=tuple(late))
    else:
        replacements, reduced = [], exprs
    local = dict(symbols)
    local.update({sym: sym.name for sym, _ in replacements})
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
