"""LaTeX sections of a linear bijection Y = X·M over structured factors (``derive.linear``)."""

from __future__ import annotations

import sympy as sp

from layergen.derive.derivation import MatrixDerivation
from layergen.derive.linear import DIAGONAL_ENTRY
from layergen.latex.notation import A1, MU, name_tex, subscript, tex

#: how the notes would describe each declared structure
STRUCTURE_TEXT = {"lower": "lower triangular", "upper": "upper triangular",
                  "unit_lower": "lower triangular with unit diagonal", "unit_upper": "upper triangular with unit diagonal",
                  "permutation": "a permutation (orthogonal, $|\\det| = 1$)", "reversal": "the reversal (ones on the anti-diagonal)"}
FREE_TEXT = {"lower": "on and below", "upper": "on and above", "unit_lower": "strictly below", "unit_upper": "strictly above"}


def linear_sections(der: MatrixDerivation, loss: str) -> list:
    from layergen.latex.document import Equation, Section, partial

    (x_name,) = [a.name for a in der.args_with_role("input")]
    (y_name,) = der.outputs
    factors = ", ".join(f"${name_tex(n)}$ is {STRUCTURE_TEXT[k]}" for n, k in der.structure.items())
    structure = Section("Structure and log-determinant",
                        f"Declared structures: {factors}. Each row maps as $y = x M$ with $M = {tex(der.factor)}$, "
                        "so the Jacobian of every sample is $J = M^T$ and $\\log|\\det J| = \\sum_k \\log|\\det F_k|$ over "
                        "the factors $F_k$ of $M$ (001 §28.3); a permutation contributes 0, a unit triangle 0 and a "
                        "triangle the sum of the logarithms of its diagonal.")
    structure.equations.append(Equation(r"\log|\det J|", tex(der.logdet), boxed=True))
    for name in der.logdet_diagonals:
        entry = sp.IndexedBase(name_tex(name))[MU, MU]
        structure.equations.append(Equation(partial(r"\log|\det J|", tex(entry)),
                                            tex(der.logdet_element_partial.subs(DIAGONAL_ENTRY, entry)),
                                            note="SymPy's derivative of $\\log|u|$"))
    sections = [structure]
    grads = Section("Gradients of the structured factors",
                    "Only a factor's free entries are parameters: the gradient above is kept "
                    + ", ".join(f"{FREE_TEXT[k]} the diagonal of ${name_tex(n)}$" for n, k in der.structure.items() if k in FREE_TEXT)
                    + " and is 0 elsewhere. The log-determinant adds, on the diagonal,")
    for name in der.logdet_diagonals:
        entry = sp.IndexedBase(name_tex(name))[MU, MU]
        weight = partial(loss, r"\log|\det J" + subscript(A1) + "|")
        grads.equations.append(Equation(partial(loss, tex(entry)), r"\ldots + \sum" + subscript(A1) + " " + weight + " "
                                        + tex(der.logdet_element_partial.subs(DIAGONAL_ENTRY, entry)), boxed=True))
    sections.append(grads)
    inverse = Section("Inverse (latent to data)", "From SymPy's inverse of the product with the structures' rules: "
                      "$P^{-1} = P^T$ for a permutation, a triangular inverse by substitution.")
    inverse.equations.append(Equation(name_tex(x_name), tex(der.inverse[x_name]), boxed=True))
    inverse.equations.append(Equation(r"\log|\det J^{-1}|", r"-\log|\det J|", note=f"the same for every row of ${name_tex(y_name)}$"))
    sections.append(inverse)
    return sections
