"""Derivation for ``MatrixMap`` specs with SymPy's matrix calculus.

For outputs Y_o = F_o(X, θ) and upstream gradients G_o = ∂L/∂Y_o, the VJP with respect to
an argument A is the matrix derivative of the scalar L̃ = Σ_o Tr(G_oᵀ F_o) with respect to
A, which SymPy returns in BLAS shape. For the dense layer A = X·W + 1·b (003 §9.1) it
gives ∂L/∂X = G·Wᵀ, ∂L/∂W = Xᵀ·G and ∂L/∂b = 1ᵀ·G, the boxed results of 003 §9.1.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from layergen.derive.derivation import ArrayArg, MatrixDerivation
from layergen.derive.rules import apply_kink_convention, stabilize
from layergen.spec.declare import MatrixMap
from layergen.spec.domains import domain_of


def _shape(m: sp.MatrixSymbol) -> tuple[str, ...]:
    return tuple(str(s) for s in m.shape)


def grad_matrix(out: sp.MatrixSymbol) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(f"grad_{out.name}", *out.shape)


def derive_matrix(spec: MatrixMap, content_hash: str) -> MatrixDerivation:
    args = [ArrayArg(m.name, "input", _shape(m)) for m in spec.inputs]
    args += [ArrayArg(m.name, "param", _shape(m), trainable=True) for m in spec.params]
    # a reversal is fixed by its size: the kernels build it, so it is no argument
    args += [ArrayArg(m.name, "constant", _shape(m)) for m in spec.constants if spec.structure.get(m) != "reversal"]
    args += [ArrayArg(s.name, "hyper", (), default=float(v), domain=domain_of(s, spec.hyper_ranges.get(s))) for s, v in spec.hyper.items()]
    der = MatrixDerivation(name=spec.name, group=spec.group, kind=spec.kind, content_hash=content_hash,
                           doc=spec.doc, args=args)
    der.symbols = {m.name: m for m in [*spec.inputs, *spec.params, *spec.constants, *spec.forward]}
    der.outputs = {o.name: e for o, e in spec.forward.items()}
    objective = sp.Add(*[sp.Trace(grad_matrix(o).T * e) for o, e in spec.forward.items()])
    for m in [*spec.inputs, *spec.params]:
        vjp = objective.diff(m)
        der.vjps[m.name] = _scalar_rules(vjp, der.rewrites)
    if spec.kind == "bijection":
        from layergen.derive.linear import derive_linear_bijection

        derive_linear_bijection(spec, der)
    return der


def _scalar_rules(expr: sp.Basic, rewrites: list[str]) -> sp.Basic:
    """Stability rewrites and the kink convention inside elementwise functions of a matrix expression."""
    def fix(node: ElementwiseApplyFunction) -> ElementwiseApplyFunction:
        (var,) = node.function.variables
        body = stabilize(apply_kink_convention(node.function.expr), rewrites)
        return ElementwiseApplyFunction(sp.Lambda(var, body), node.expr)

    return expr.replace(lambda e: isinstance(e, ElementwiseApplyFunction), fix)
