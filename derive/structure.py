"""Jacobian structure and the log-determinant it allows (000 eq. 72, triangular-map theorem).

diagonal / lower- or upper-triangular ⇒ log|det J| = Σ_i log|J_ii|;
block-triangular (blocks = the spec's named inputs and outputs) ⇒ Σ_b log|det J_bb|;
dense ⇒ log|det J| from the symbolic determinant (small dimensions only).

Also whether a map keeps the samples of a batch apart (``samples_independent``): what a network's
layers must do, and batch norm's statistics do not; and whether a reduction's dependence on an earlier
one sums to zero (``summed_partial_vanishes``), as the variance's on the mean does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from layergen.spec.declare import D, N

if TYPE_CHECKING:
    from layergen.derive.derivation import DerivationBase, ElementwiseDerivation, ReductionStep

#: the reductions whose value ``summed_partial_vanishes`` can write out: the summand's total, and its mean
_WRITTEN_OUT = {"sum": lambda total, count: total, "mean": lambda total, count: total / count}


def _zero(e: sp.Expr) -> bool:
    return sp.simplify(e) == 0 if e != 0 else True


def classify(jac: sp.Matrix, blocks: list[int]) -> str:
    n = jac.rows
    if jac.rows != jac.cols:
        return "rectangular"
    if all(_zero(jac[i, j]) for i in range(n) for j in range(n) if i != j):
        return "diagonal"
    if all(_zero(jac[i, j]) for i in range(n) for j in range(i + 1, n)):
        return "lower-triangular"
    if all(_zero(jac[i, j]) for i in range(n) for j in range(i)):
        return "upper-triangular"
    if len(blocks) > 1:
        edges = [sum(blocks[:k]) for k in range(len(blocks) + 1)]
        if all(_zero(jac[i, j]) for b in range(len(blocks)) for i in range(edges[b], edges[b + 1])
               for j in range(edges[b + 1], n)):
            return "block-triangular"
    return "dense"


def log_abs_det(jac: sp.Matrix, structure: str, blocks: list[int]) -> sp.Expr:
    if structure in ("diagonal", "lower-triangular", "upper-triangular"):
        return sp.Add(*[sp.log(sp.Abs(jac[i, i])) for i in range(jac.rows)])
    if structure == "block-triangular":
        edges = [sum(blocks[:k]) for k in range(len(blocks) + 1)]
        return sp.Add(*[sp.log(sp.Abs(sp.simplify(jac[a:b, a:b].det()))) for a, b in zip(edges, edges[1:])])
    return sp.log(sp.Abs(sp.simplify(jac.det())))


def samples_independent(der: DerivationBase) -> bool:
    """Whether each output row depends on the same row of the inputs only: no reduction over the batch
    (axis 0), and no matrix product that mixes rows. A network predicts in blocks of rows and splits a
    training batch over the cores; only such a map gives every row the same value either way."""
    if der.level == "elementwise":
        return not any(step.axis == 0 for step in der.reductions)
    if der.level != "matrix":
        return True  # explicit components of one sample
    if der.factor is not None:
        return True  # a linear bijection Y = X·M: each row of Y is its row of X times M
    sizes = {size: 2 for expr in der.outputs.values() for m in expr.atoms(sp.MatrixSymbol) for dim in m.shape
             for size in sp.sympify(dim).free_symbols}
    batched = {der.symbols[a.name] for a in der.args if a.shape and a.shape[0] == "N"}
    for expr in der.outputs.values():
        if expr.shape[0] != N:  # an output that is not one row per sample
            return False
        explicit = expr.subs(sizes).as_explicit()
        for (row, _), element in zip(((i, j) for i in range(explicit.rows) for j in range(explicit.cols)), explicit):
            for read in element.atoms(sp.matrices.expressions.matexpr.MatrixElement):
                if read.parent.subs(sizes) in {m.subs(sizes) for m in batched} and read.i != row:
                    return False
    return True


def summed_partial_vanishes(der: ElementwiseDerivation, step: ReductionStep, earlier: ReductionStep,
                            sizes: tuple[int, ...] = (2, 3, 4)) -> bool:
    """Whether Σ_k ∂(summand_k of ``step``)/∂``earlier`` is 0 once ``earlier`` is written out as its own
    reduction over the same k: the term of ∂step/∂x through ``earlier`` then vanishes for every x. The
    batch variance's S = (1/n) Σ_k (X_k − M)² has Σ_k (2/n)(M − X_k) = 2M − 2M = 0 (003 §8's derivation
    drops it). Checked exactly, with a symbol per element, at each of ``sizes`` for the count; False
    whenever that cannot be decided (a reduction other than a sum or mean, an earlier one that reads a
    third, a reduction over another axis)."""
    partial = step.partials.get(earlier.symbol.name)
    if partial is None or earlier.axis != step.axis or earlier.op not in _WRITTEN_OUT:
        return False
    reductions = {r.symbol for r in der.reductions}
    if earlier.operand.free_symbols & reductions:
        return False
    count = N if step.axis == 0 else D
    # the symbols that differ from element to element along the reduced axis: the arrays with that axis
    varying = [der.symbols[a.name] for a in der.args if str(count) in [str(dim) for dim in a.shape]]
    if (partial.free_symbols & reductions) - {earlier.symbol}:
        return False
    for size in sizes:
        copies = [{v: sp.Dummy(f"{v.name}_{k}", real=True) for v in varying} for k in range(size)]
        value = _WRITTEN_OUT[earlier.op](sum(earlier.operand.xreplace(c) for c in copies), size)
        summed = sum(partial.xreplace({**c, count: sp.Integer(size), earlier.symbol: value}) for c in copies)
        if sp.simplify(summed) != 0:
            return False
    return True
