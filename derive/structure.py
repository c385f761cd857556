"""Jacobian structure and the log-determinant it allows (000 eq. 72, triangular-map theorem).

diagonal / lower- or upper-triangular ⇒ log|det J| = Σ_i log|J_ii|;
block-triangular (blocks = the spec's named inputs and outputs) ⇒ Σ_b log|det J_bb|;
dense ⇒ log|det J| from the symbolic determinant (small dimensions only).
"""

from __future__ import annotations

import sympy as sp


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
