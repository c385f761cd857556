"""Jacobian structure and the log-determinant it allows (000 eq. 72, triangular-map theorem).

diagonal / lower- or upper-triangular ⇒ log|det J| = Σ_i log|J_ii|;
block-triangular (blocks = the spec's named inputs and outputs) ⇒ Σ_b log|det J_bb|;
dense ⇒ log|det J| from the symbolic determinant (small dimensions only).

Also whether a map keeps the samples of a batch apart (``samples_independent``): what a network's
layers must do, and batch norm's statistics do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from layergen.spec.declare import N

if TYPE_CHECKING:
    from layergen.derive.derivation import DerivationBase


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
