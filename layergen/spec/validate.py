"""Validation of specs, before any derivation: every error names the file and field.

Checked here: a valid kind for the level, a forward map, identifiers that are safe to
place in generated source, unique names, declared symbols only, consistent shapes.
The inverse is checked in ``derive`` (it needs evaluation), with the same error type.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable
from pathlib import Path

import sympy as sp

from layergen.errors import SpecError
from layergen.spec.declare import (
    D, KINDS, N, OPTIMIZER_GRADIENT, OPTIMIZER_PARAMETER, REDUCTION_OPS, STRUCTURES, Elementwise, Expanded, MatrixMap,
    Param, Reduction, SpecBase, param_shape,
)
from layergen.spec.domains import describe, domain_of, in_domain

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Names the generated modules use themselves; a spec symbol may not shadow them.
RESERVED = frozenset({"np", "njit", "math", "logdet", "out", "self", "dtype", "KERNELS", "SPEC"})
LEVEL_KINDS = {
    "elementwise": KINDS,
    "matrix": ("map", "bijection"),
    "expanded": ("map", "bijection"),
}


def check_identifier(name: object, source: Path | None, field: str) -> str:
    """A name that reaches generated source must be a plain Python identifier."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name) \
            or name in RESERVED or name.startswith("grad_"):
        raise SpecError(source, field, f"{name!r} is not a valid name: use letters, digits and '_', "
                        "starting with a letter; not a Python keyword, not one of "
                        f"{sorted(RESERVED)}, not starting with 'grad_'")
    return name


def _free(expr: object) -> set[sp.Symbol]:
    return {s for s in sp.sympify(expr).free_symbols if isinstance(s, sp.Symbol)} - {N, D}


def _require_declared(exprs: Iterable[object], declared: set[sp.Symbol], source: Path | None, field: str) -> None:
    for expr in exprs:
        missing = _free(expr) - declared
        if missing:
            names = ", ".join(sorted(str(s) for s in missing))
            raise SpecError(source, field, f"uses undeclared symbol(s) {names}; declare them in inputs, params, "
                            "conditioning, targets, hyper or reductions")


def _unique(names: list[str], source: Path | None) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SpecError(source, "symbols", f"{name!r} is declared twice; every input, parameter, output and "
                            "hyperparameter needs its own name")
        seen.add(name)


def validate(spec: SpecBase, source: Path | None) -> None:
    check_identifier(spec.name, source, "name")
    if source is not None and source.stem != spec.name:
        raise SpecError(source, "name", f"{spec.name!r} must equal the file name {source.stem!r} (one spec per file)")
    allowed = LEVEL_KINDS[spec.level]
    if spec.kind not in allowed:
        raise SpecError(source, "kind", f"{spec.kind!r} is not valid for {type(spec).__name__}; valid: {', '.join(allowed)}")
    if not spec.forward:
        raise SpecError(source, "forward", "missing forward map: give at least one output and its expression")
    if isinstance(spec, Elementwise):
        _validate_elementwise(spec, source)
    elif isinstance(spec, MatrixMap):
        _validate_matrix(spec, source)
    elif isinstance(spec, Expanded):
        _validate_expanded(spec, source)
    if isinstance(spec, (Elementwise, MatrixMap, Expanded)):
        _validate_hyper(spec, source)
    if isinstance(spec, (Elementwise, Expanded)):
        _validate_param_inits(spec, source)


def _validate_param_inits(spec: Elementwise | Expanded, source: Path | None) -> None:
    """A parameter's declared starting value (``Param(..., init=v)``) is a finite number."""
    for sym, decl in spec.params.items():
        init = decl.init if isinstance(decl, Param) else None
        if init is not None and (isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init)):
            raise SpecError(source, "params", f"{sym}'s init must be a finite number (the value a network starts "
                            f"it at), got {init!r}")


def _validate_hyper(spec: Elementwise | MatrixMap | Expanded, source: Path | None) -> None:
    """Each hyperparameter has a numeric default inside its domain (``spec.domains``): the one its symbol's
    assumptions declare (the derivation may rely on them), narrowed by its ``hyper_ranges`` interval."""
    for sym in spec.hyper_ranges:
        if sym not in spec.hyper:
            raise SpecError(source, "hyper_ranges", f"{sym} is not a hyperparameter; its keys are symbols of hyper "
                            f"({', '.join(map(str, spec.hyper)) or 'none'})")
        if not isinstance(spec.hyper_ranges[sym], sp.Interval):
            raise SpecError(source, "hyper_ranges", f"{sym}'s range must be a SymPy Interval, such as "
                            f"sp.Interval.Ropen(0, 1), got {spec.hyper_ranges[sym]!r}")
    for sym, value in spec.hyper.items():
        if not isinstance(sym, sp.Symbol):
            raise SpecError(source, "hyper", f"keys must be SymPy Symbols, got {sym!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(source, "hyper", f"{sym} needs a numeric default, got {value!r}")
        try:
            domain = domain_of(sym, spec.hyper_ranges.get(sym))
        except ValueError as exc:
            raise SpecError(source, "hyper_ranges", str(exc)) from None
        if not in_domain(float(value), domain):
            raise SpecError(source, "hyper", f"{sym}'s default {value!r} is outside the domain its symbol "
                            f"{'and range declare' if sym in spec.hyper_ranges else 'declares'}: {describe(domain)}")


def _validate_elementwise(spec: Elementwise, source: Path | None) -> None:
    groups = {"inputs": spec.inputs, "conditioning": spec.conditioning, "targets": spec.targets,
              "constants": spec.constants, "params": spec.params, "hyper": spec.hyper, "reductions": spec.reductions, "forward": spec.forward}
    for field, mapping in groups.items():
        for sym in mapping:
            if not isinstance(sym, sp.Symbol):
                raise SpecError(source, field, f"keys must be SymPy Symbols, got {sym!r}")
            check_identifier(sym.name, source, field)
    _unique([s.name for m in groups.values() for s in m], source)
    if not spec.inputs:
        raise SpecError(source, "inputs", "declare at least one input, e.g. inputs={x: (N, D)}")
    arrays = {**spec.inputs, **spec.conditioning, **spec.targets, **spec.constants}
    if spec.reduction not in ("mean", "sum") or (spec.reduction == "sum" and spec.kind != "loss"):
        raise SpecError(source, "reduction", f"{spec.reduction!r} is not valid: a loss reduces with 'mean' (over the batch) or 'sum'")
    shapes = {tuple(shape) for shape in arrays.values()}
    if len(shapes) != 1:
        detail = ", ".join(f"{s}: {tuple(v)}" for s, v in arrays.items())
        raise SpecError(source, "inputs", f"shape mismatch: every per-element array needs the same shape, got {detail}")
    (shape,) = shapes
    if len(shape) not in (1, 2):
        raise SpecError(source, "inputs", f"shape {shape} must be (N, D) for a batch or (P,) for a flat array")
    for sym, decl in spec.params.items():
        pshape = tuple(param_shape(decl))
        if pshape not in ((), (shape[-1],)):
            raise SpecError(source, "params", f"shape mismatch: {sym} has shape {pshape}; a parameter is a scalar () "
                            f"or one value per feature {(shape[-1],)}")
    elements = set(arrays) | set(spec.params) | set(spec.hyper)
    declared_so_far = set(elements)
    axes = set()
    for sym, red in spec.reductions.items():
        if not isinstance(red, Reduction) or red.op not in REDUCTION_OPS or red.axis not in (0, 1):
            raise SpecError(source, "reductions", f"{sym} must be Sum/Mean/LogSumExp(expr, axis=0 or 1)")
        if len(shape) != 2:
            raise SpecError(source, "reductions", "reductions need 2-D arrays of shape (N, D)")
        _require_declared([red.operand], declared_so_far, source, "reductions")
        declared_so_far.add(sym)
        axes.add(red.axis)
    if len(axes) > 1:
        raise SpecError(source, "reductions", "all reductions of one spec must run over the same axis")
    _require_declared(spec.forward.values(), declared_so_far, source, "forward")
    for sym, value in spec.notation.items():
        if not isinstance(sym, sp.Symbol):
            raise SpecError(source, "notation", f"keys must be SymPy Symbols, got {sym!r}")
        check_identifier(sym.name, source, "notation")
        if sym in declared_so_far or sym in spec.forward:
            raise SpecError(source, "notation", f"{sym} already names an input, parameter, reduction or output")
        _require_declared([value], declared_so_far, source, "notation")
    for red in spec.facts:
        if not isinstance(red, Reduction) or red.op != "sum":
            raise SpecError(source, "facts", "keys must be Sum(expr, axis) identities, e.g. {Sum(t, axis=1): 1}")
        _require_declared([red.operand, spec.facts[red]], declared_so_far, source, "facts")
    if spec.kind == "optimizer_step":
        names = {s.name for s in spec.inputs}
        if not {OPTIMIZER_PARAMETER, OPTIMIZER_GRADIENT} <= names:
            raise SpecError(source, "inputs", f"an optimizer step updates the parameters {OPTIMIZER_PARAMETER!r} from "
                            f"their gradient {OPTIMIZER_GRADIENT!r} (the runtime binds both by name): declare both as "
                            f"inputs; got {', '.join(sorted(names))}")
        for out in spec.forward:
            if not (out.name.endswith("_new") and out.name[: -len("_new")] in names):
                raise SpecError(source, "forward", f"optimizer output {out.name!r} must be named <input>_new after the "
                                f"input it updates (one of {', '.join(sorted(n + '_new' for n in names))})")
        if OPTIMIZER_PARAMETER not in {out.name[: -len("_new")] for out in spec.forward}:
            raise SpecError(source, "forward", f"an optimizer step must update the parameters: give "
                            f"'{OPTIMIZER_PARAMETER}_new'")
    if spec.kind in ("bijection", "loss") and len(spec.forward) != 1:
        raise SpecError(source, "forward", f"a {spec.kind} has exactly one output, got {len(spec.forward)}")
    if spec.kind == "bijection":
        if len(spec.inputs) != 1 or spec.targets:
            raise SpecError(source, "inputs", "a bijection transforms exactly one input (conditioning inputs go in 'conditioning')")
        if any(r.axis != 0 for r in spec.reductions.values()):
            raise SpecError(source, "reductions", "an elementwise bijection may reduce only over the batch (axis=0, "
                            "batch statistics as in the batch-norm flow); a reduction over the features couples them: "
                            "write it as an Expanded spec so its dense Jacobian is formed")
        if spec.reductions and spec.inverse is not None:
            raise SpecError(source, "inverse", "a bijection with batch statistics has no inverse of its own (the "
                            "statistics belong to x); declare the inverse on its evaluation-mode spec, whose statistics "
                            "are non-trainable parameters")
    if spec.inverse is not None:
        if spec.kind != "bijection":
            raise SpecError(source, "inverse", "only a bijection may declare an inverse")
        if set(spec.inverse) != set(spec.inputs):
            raise SpecError(source, "inverse", f"must give each input {sorted(map(str, spec.inputs))} as a function of the output")
        _require_declared(spec.inverse.values(), set(spec.forward) | set(spec.params) | set(spec.conditioning) | set(spec.hyper),
                          source, "inverse")
    if spec.bracket is not None:
        _validate_bracket(spec, source)


def _validate_bracket(spec: Elementwise, source: Path | None) -> None:
    """A bracket {x: (lo, hi)}: a bijection's input, bounds in numbers and hyper symbols, lo < hi."""
    if spec.kind != "bijection":
        raise SpecError(source, "bracket", "only a bijection's numeric inverse has a bracket")
    if set(spec.bracket) != set(spec.inputs):
        raise SpecError(source, "bracket", f"must give the input {sorted(map(str, spec.inputs))} an interval (lo, hi)")
    for bounds in spec.bracket.values():
        if not isinstance(bounds, tuple) or len(bounds) != 2:
            raise SpecError(source, "bracket", f"an interval is a pair (lo, hi), got {bounds!r}")
        _require_declared([sp.sympify(b) for b in bounds], set(spec.hyper), source, "bracket")
        lo, hi = (sp.sympify(b).subs({s: v for s, v in spec.hyper.items()}) for b in bounds)
        if not (lo.is_number and hi.is_number and lo < hi):
            raise SpecError(source, "bracket", f"needs lo < hi at the hyperparameter defaults, got ({lo}, {hi})")


def _validate_matrix(spec: MatrixMap, source: Path | None) -> None:
    for field, items in (("inputs", spec.inputs), ("params", spec.params), ("constants", spec.constants),
                         ("forward", list(spec.forward))):
        for m in items:
            if not isinstance(m, sp.MatrixSymbol):
                raise SpecError(source, field, f"must hold MatrixSymbols, got {m!r}")
            check_identifier(m.name, source, field)
    for sym in spec.hyper:
        check_identifier(sym.name, source, "hyper")
    _unique([m.name for m in [*spec.inputs, *spec.params, *spec.constants, *spec.forward]] + [s.name for s in spec.hyper], source)
    declared = set(spec.inputs) | set(spec.params) | set(spec.constants)
    for out, expr in spec.forward.items():
        if not isinstance(expr, sp.MatrixExpr):
            raise SpecError(source, "forward", f"{out} must be a matrix expression, got {type(expr).__name__}")
        if tuple(expr.shape) != tuple(out.shape):
            raise SpecError(source, "forward", f"shape mismatch: {out} is declared {tuple(out.shape)} but its expression has shape {tuple(expr.shape)}")
        missing = {m for m in expr.atoms(sp.MatrixSymbol)} - declared
        if missing:
            raise SpecError(source, "forward", f"uses undeclared matrix symbol(s) {', '.join(sorted(map(str, missing)))}")
        scalars = _free(expr) - set(spec.hyper) - {s for m in declared for s in m.shape if isinstance(s, sp.Symbol)}
        scalars -= {s for s in expr.free_symbols if isinstance(s, sp.Symbol) and s.is_integer}
        if scalars:
            raise SpecError(source, "forward", f"uses undeclared symbol(s) {', '.join(sorted(map(str, scalars)))}; declare them in hyper")
    _validate_structure(spec, source)
    if spec.kind == "bijection":
        _validate_linear_bijection(spec, source)


def _validate_structure(spec: MatrixMap, source: Path | None) -> None:
    """Structures: square declared params (triangular) or constants (permutation, reversal)."""
    if spec.structure and spec.kind != "bijection":
        raise SpecError(source, "structure", "only the factors of a linear bijection declare a structure")
    for m, kind in spec.structure.items():
        if m not in set(spec.params) | set(spec.constants):
            raise SpecError(source, "structure", f"{m!r} is not a declared parameter or constant")
        if kind not in STRUCTURES:
            raise SpecError(source, "structure", f"{m}: unknown structure {kind!r}; valid: {', '.join(STRUCTURES)}")
        if m.shape[0] != m.shape[1]:
            raise SpecError(source, "structure", f"{m} has shape {tuple(m.shape)}; a structured factor is square")
        fixed = kind in ("permutation", "reversal")
        if fixed != (m in set(spec.constants)):
            raise SpecError(source, "structure", f"{m}: a {kind} factor is a "
                            f"{'constant (no gradient)' if fixed else 'trainable parameter'}; move it to "
                            f"{'constants' if fixed else 'params'}")


def _validate_linear_bijection(spec: MatrixMap, source: Path | None) -> None:
    """Y = X·F₁⋯F_k with each Fᵢ a structured factor or its transpose, Y shaped like X."""
    if len(spec.inputs) != 1 or len(spec.forward) != 1:
        raise SpecError(source, "forward", "a linear bijection maps exactly one input X to one output Y = X·F₁⋯F_k")
    (x,), ((y, expr),) = spec.inputs, spec.forward.items()
    if tuple(y.shape) != tuple(x.shape):
        raise SpecError(source, "forward", f"a bijection keeps the shape (N, D) of its input; got {tuple(x.shape)} → {tuple(y.shape)}")
    args = expr.args if isinstance(expr, sp.MatMul) else ()
    if not args or args[0] != x or len(args) < 2:
        raise SpecError(source, "forward", f"must be the input times square factors, {x}·F₁⋯F_k, got {expr}")
    for factor in args[1:]:
        base = factor.arg if isinstance(factor, sp.Transpose) else factor
        if base not in spec.structure:
            raise SpecError(source, "structure", f"the factor {factor} needs a declared structure "
                            f"({', '.join(STRUCTURES)}) so its determinant and inverse can be derived for any size")


def _validate_expanded(spec: Expanded, source: Path | None) -> None:
    for name in [*spec.inputs, *spec.forward]:
        check_identifier(name, source, "inputs/forward")
    for field, mapping in (("params", spec.params), ("hyper", spec.hyper)):
        for sym in mapping:
            check_identifier(getattr(sym, "name", sym), source, field)
            if field == "params" and tuple(param_shape(mapping[sym])) != ():
                raise SpecError(source, "params", f"shape mismatch: {sym} must be a scalar () in an Expanded spec")
    components = [s for comps in spec.inputs.values() for s in comps]
    for sym in components:
        check_identifier(sym.name, source, "inputs")
    _unique([*spec.inputs, *spec.forward] + [s.name for s in components] + [s.name for s in [*spec.params, *spec.hyper]], source)
    declared = set(components) | set(spec.params) | set(spec.hyper)
    _require_declared([e for comps in spec.forward.values() for e in comps], declared, source, "forward")
    n_in = len(components)
    n_out = sum(len(v) for v in spec.forward.values())
    if spec.kind == "bijection":
        if n_in != n_out:
            raise SpecError(source, "forward", f"shape mismatch: a bijection maps {n_in} components to {n_out}")
        if spec.inverse is not None:
            if set(spec.inverse) != set(spec.inputs) or any(
                    len(spec.inverse[k]) != len(spec.inputs[k]) for k in spec.inputs):
                raise SpecError(source, "inverse", "must give every input component as a function of the outputs")
    elif spec.inverse is not None:
        raise SpecError(source, "inverse", "only a bijection may declare an inverse")
