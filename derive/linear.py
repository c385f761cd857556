"""Derivation of linear bijections Y = X·M, M = F₁⋯F_k a product of structured square factors.

Row by row y = x·M, so the Jacobian of one sample is Mᵀ and (001 §28.3)

    log|det J| = log|det M| = Σ_k log|det F_k|,

where SymPy factors det(F₁⋯F_k) = Π det(F_k) and ``refine`` drops the factors its assumptions
settle: |det P| = 1 for a permutation (orthogonal), det L = 1 for a unit triangle. For a
triangular factor the remaining rule is det U = Π_i U_ii, so log|det J| = Σ_i log|U_ii| for the
LU-decomposed mixing. The inverse is X = Y·M⁻¹ with M⁻¹ = F_k⁻¹⋯F₁⁻¹ (SymPy), P⁻¹ = Pᵀ
(``refine``) and (Fᵀ)⁻¹ = (F⁻¹)ᵀ; a triangular F⁻¹ is left for the lowering to solve.

The VJPs are those of the matrix calculus (``derive.matrix``) with respect to the *effective*
factors, then projected onto each factor's free entries (its triangle); the log-determinant
adds ḡ·f'(U_ii) on the diagonal with f = log|·| and f' = ∂f/∂u from SymPy, ḡ = Σ_n ∂L/∂logdet_n.
"""

from __future__ import annotations

import sympy as sp
from sympy import Q

from layergen.derive.derivation import MatrixDerivation
from layergen.derive.rules import apply_kink_convention, tidy
from layergen.errors import SpecError
from layergen.spec.declare import MatrixMap

#: the diagonal entry u of a triangular factor, the variable of f(u) = log|u|
DIAGONAL_ENTRY = sp.Symbol("u", real=True)
#: the summation index of log|det J| = Σ_i log|U_ii|
INDEX = sp.Symbol("i", integer=True, nonnegative=True)


def assumptions(spec: MatrixMap) -> sp.Basic:
    """What each declared structure tells SymPy's ``refine``."""
    facts = {"permutation": Q.orthogonal, "reversal": Q.orthogonal, "lower": Q.lower_triangular,
             "upper": Q.upper_triangular, "unit_lower": lambda m: Q.unit_triangular(m) & Q.lower_triangular(m),
             "unit_upper": lambda m: Q.unit_triangular(m) & Q.upper_triangular(m)}
    return sp.And(*[facts[kind](m) for m, kind in spec.structure.items()])


def _untranspose(expr: sp.Basic, cls: type) -> sp.Basic:
    """det(Fᵀ) = det F; (Fᵀ)⁻¹ = (F⁻¹)ᵀ."""
    def fix(node: sp.Basic) -> sp.Basic:
        inner = node.args[0]
        if cls is sp.Determinant:
            return sp.Determinant(inner.arg)
        return sp.Transpose(sp.Inverse(inner.arg))
    return expr.replace(lambda e: isinstance(e, cls) and isinstance(e.args[0], sp.Transpose), fix)


def log_abs_det(spec: MatrixMap, factor: sp.MatrixExpr) -> tuple[sp.Expr, list[str]]:
    """log|det M| as Σ over the triangular factors' diagonals, and those factors' names."""
    det = _untranspose(sp.Determinant(factor).doit(), sp.Determinant)
    det = sp.refine(det, assumptions(spec))
    terms: list[sp.Expr] = []
    names: list[str] = []
    for node in sorted(det.atoms(sp.Determinant), key=str):
        base = node.arg
        if spec.structure.get(base) not in ("lower", "upper"):
            raise SpecError(spec.source, "structure", f"cannot reduce det({base}) with the declared structure "
                            f"{spec.structure.get(base)!r}")
        # a triangular determinant is the product of the diagonal: log|Π_i F_ii| = Σ_i log|F_ii|
        terms.append(sp.Sum(sp.log(sp.Abs(base[INDEX, INDEX])), (INDEX, 0, base.shape[0] - 1)))
        names.append(base.name)
    rest = det.subs({node: 1 for node in det.atoms(sp.Determinant)})
    if rest not in (1, -1):
        raise SpecError(spec.source, "structure", f"the determinant left the factor {rest}, which is not ±1")
    return sp.Add(*terms), names


def inverse_factor(spec: MatrixMap, factor: sp.MatrixExpr) -> sp.MatrixExpr:
    """M⁻¹ with the structure rules applied; triangular inverses stay ``Inverse`` nodes."""
    inv = _untranspose(sp.Inverse(factor).doit(), sp.Inverse)
    inv = inv.replace(lambda e: isinstance(e, sp.Inverse) and spec.structure.get(e.arg) in ("permutation", "reversal"),
                      lambda e: sp.refine(e, Q.orthogonal(e.arg)))
    return inv


def derive_linear_bijection(spec: MatrixMap, der: MatrixDerivation) -> None:
    """Fill log|det J|, its diagonal derivative and the inverse of Y = X·M into ``der``."""
    ((y, expr),) = spec.forward.items()
    factor = sp.MatMul(*expr.args[1:]) if len(expr.args) > 2 else expr.args[1]
    der.structure = {m.name: kind for m, kind in spec.structure.items()}
    der.factor = factor
    der.logdet, der.logdet_diagonals = log_abs_det(spec, factor)
    f = sp.log(sp.Abs(DIAGONAL_ENTRY))
    der.logdet_element = f
    der.logdet_element_partial = tidy(apply_kink_convention(sp.diff(f, DIAGONAL_ENTRY)))
    der.jacobian_structure = "linear: per sample J = Mᵀ, the same for every row"
    (x,) = spec.inputs
    der.inverse = {x.name: y * inverse_factor(spec, factor)}
    der.inverse_source = "solved"
