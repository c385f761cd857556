"""Kernel transformations between lowering and rendering: the same arithmetic in less Numba IR.

Why: Numba types and lowers every expression of the source on its own, so compile time grows with the
number of array reads and calls written out, not with the arithmetic. A lowered kernel reads an input
element such as ``a_0_1[_n, _d]`` wherever the derivation uses it (about 30 times per element in the
sum-of-squares transformer, three times that in its Newton inverse, which evaluates h three times), and
writes each dtype constant as a call, ``_dt(2)`` or ``(_dt(2) / _dt(3))``. Each read is a getitem and each
call a function typed and lowered again. Reading each element once into a local (``_e_a_0_1``) at the top
of the loop body, and each constant once at the top of the kernel (``_c0``), took the sum-of-squares
kernels' compile from 4.5–5.8 s to 2.6–3.2 s in fresh processes (forward and inverse, both dtypes).

Both rewrites keep the arithmetic and its order: a read-only element has one value within one iteration,
and a constant folds to the same number. Only what is used twice or more is hoisted, so small kernels stay as
they were. ``layergen derive --kernels`` prints the kernels after this stage.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from layergen.codegen.ast import Assign, Kernel, Loop, NewtonSolve, Raw, Stmt

#: the indices of one element (of a batch, a flat array, a row or a feature): the loop variables each needs
ELEMENT_INDICES = {"_n, _d": {"_n", "_d"}, "_i": {"_i"}, "_n": {"_n"}, "_d": {"_d"}}

#: a dtype constant: a rational (_dt(2) / _dt(3)) with its parentheses, or a literal _dt(0.5)
_CONSTANT = re.compile(r"\(_dt\(\d+\) / _dt\(\d+\)\)|(?<![\w.])_dt\(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\)")


def compact(kernel: Kernel) -> Kernel:
    """``kernel`` with repeated element reads and dtype constants hoisted (module docstring)."""
    return hoist_constants(hoist_element_reads(kernel))


def _codes(stmt: Stmt) -> list[str]:
    """The source fragments of one statement that this stage may rewrite (not nested loops, not raw lines)."""
    if isinstance(stmt, Assign):
        return [stmt.target, stmt.value]
    if isinstance(stmt, NewtonSolve):
        return [stmt.value, *(code for s in (*stmt.evaluate, *stmt.bracket) for code in _codes(s))]
    return []


def _rendered(stmt: Stmt) -> list[str]:
    """``_codes`` as often as the module renders them: a Newton solve's h(_x) three times (at the bracket's
    two ends and in the iteration; ``templates/macros.j2``)."""
    if isinstance(stmt, NewtonSolve):
        evaluate = [code for s in stmt.evaluate for code in _codes(s)]
        return [stmt.value, *(code for s in stmt.bracket for code in _codes(s)), *evaluate * 3]
    return _codes(stmt)


def _rewrite(stmt: Stmt, substitute) -> Stmt:  # type: ignore[no-untyped-def]
    """``stmt`` with ``substitute`` applied to its fragments (``_codes``); loops and raw lines unchanged."""
    if isinstance(stmt, Assign):
        return replace(stmt, target=substitute(stmt.target), value=substitute(stmt.value))
    if isinstance(stmt, NewtonSolve):
        return replace(stmt, value=substitute(stmt.value),
                       evaluate=tuple(_rewrite(s, substitute) for s in stmt.evaluate),
                       bracket=tuple(_rewrite(s, substitute) for s in stmt.bracket))
    return stmt


def _written(body: tuple[Stmt, ...]) -> set[str]:
    """Names of the arrays a kernel writes (assignment targets ``name[...]``), and every name a raw line
    mentions, since a raw line may write anything."""
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, Loop):
            names |= _written(stmt.body)
        elif isinstance(stmt, Raw):
            names |= set(re.findall(r"[A-Za-z_]\w*", stmt.line))
        elif isinstance(stmt, Assign):
            names.add(stmt.target.split("[", 1)[0].strip())
        elif isinstance(stmt, NewtonSolve):
            names |= _written((*stmt.evaluate, *stmt.bracket))
    return names


def hoist_element_reads(kernel: Kernel) -> Kernel:
    """Each read-only array argument's element, read twice or more in an innermost element loop's body,
    read once into ``_e_<name>`` at the top of that body."""
    read_only = {a.name for a in kernel.args} - _written(kernel.body)
    if not read_only:
        return kernel

    def visit(body: tuple[Stmt, ...], enclosing: frozenset[str]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for stmt in body:
            if isinstance(stmt, Loop):
                bound = enclosing | {stmt.index}
                inner = visit(stmt.body, bound)
                out.append(replace(stmt, body=_hoisted(inner, bound)))
            else:
                out.append(stmt)
        return tuple(out)

    def _hoisted(body: tuple[Stmt, ...], bound: frozenset[str]) -> tuple[Stmt, ...]:
        text = "\n".join(code for stmt in body for code in _rendered(stmt))
        uses: Counter[str] = Counter()
        for index, needed in ELEMENT_INDICES.items():
            if needed <= bound:
                for name in read_only:
                    uses[f"{name}[{index}]"] += len(re.findall(rf"(?<![\w.]){re.escape(name)}\[{re.escape(index)}\]", text))
        reads = sorted(read for read, count in uses.items() if count >= 2)
        if not reads:
            return body
        local = {read: _local(read) for read in reads}
        pattern = re.compile("|".join(rf"(?<![\w.]){re.escape(read)}" for read in reads))

        def substitute(code: str) -> str:
            return pattern.sub(lambda m: local[m.group(0)], code)

        loads = tuple(Assign(local[read], read) for read in reads)
        return loads + tuple(_rewrite(stmt, substitute) for stmt in body)

    return replace(kernel, body=visit(kernel.body, frozenset()))


def _local(read: str) -> str:
    """The local holding an element read: ``x[_n, _d]`` → ``_e_x``, ``x[_i]`` → ``_e_x``, a row's or a
    feature's ``s[_n]`` → ``_e_s_n``, ``g[_d]`` → ``_e_g_d`` (an array has one shape, so one of these)."""
    name, index = read[:-1].split("[", 1)
    return f"_e_{name}" + {"_n": "_n", "_d": "_d"}.get(index, "")


def hoist_constants(kernel: Kernel) -> Kernel:
    """Each dtype constant used twice or more assigned once, to ``_c<i>``, before the kernel's body."""
    def fragments(body: tuple[Stmt, ...]) -> list[str]:
        return [code for stmt in body for code in (fragments(stmt.body) if isinstance(stmt, Loop) else _rendered(stmt))]

    counts = Counter(m.group(0) for code in fragments(kernel.body) for m in _CONSTANT.finditer(code))
    repeated = [constant for constant, count in counts.items() if count >= 2]
    if not repeated:
        return kernel
    repeated.sort(key=lambda constant: (-counts[constant], constant))  # deterministic, the most used first
    names = {constant: f"_c{i}" for i, constant in enumerate(repeated)}

    def substitute(code: str) -> str:
        return _CONSTANT.sub(lambda m: names.get(m.group(0), m.group(0)), code)

    def visit(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        return tuple(replace(s, body=visit(s.body)) if isinstance(s, Loop) else _rewrite(s, substitute) for s in body)

    definitions = tuple(Assign(name, constant) for constant, name in names.items())
    return replace(kernel, body=definitions + visit(kernel.body))
