"""SymPy functions whose derivatives are themselves numerically stable.

The stability rewrites of ``layergen.derive.stability`` turn the textbook forms a spec
writes (``log(1 + exp(u))``, ``1/(1 + exp(-u))``) into these functions, so that the
derived kernels never evaluate ``exp`` of a large argument:

* ``sigmoid(u) = 1/(1 + e^{-u})`` (000 eq. 1), ``sigmoid' = sigmoid (1 - sigmoid)`` (003 §2.2);
* ``softplus(u) = log(1 + e^{u})``, ``softplus' = sigmoid``;
* ``log_sigmoid(u) = -softplus(-u)``, ``log_sigmoid' = sigmoid(-u)``.

Each knows its elementary definition (``elementary``), which the verification oracle
evaluates at 50 digits with mpmath, independently of the stable form the kernels use.
"""

from __future__ import annotations

import sympy as sp


class StableFunction(sp.Function):
    """A one-argument function with an elementary definition and a stable derivative."""

    nargs = 1

    def elementary(self) -> sp.Expr:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary()

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.elementary().evalf(sp.core.evalf.prec_to_dps(prec))

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class sigmoid(StableFunction):
    """Logistic function σ(u) = 1/(1 + e^{-u}) (000 eq. 1)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def elementary(self) -> sp.Expr:
        return 1 / (1 + sp.exp(-self.args[0]))

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class softplus(StableFunction):
    """softplus(u) = log(1 + e^{u}); evaluated as max(u, 0) + log1p(e^{-|u|})."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def elementary(self) -> sp.Expr:
        return sp.log(1 + sp.exp(self.args[0]))

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class log_sigmoid(StableFunction):
    """log σ(u) = -softplus(-u)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(-self.args[0])

    def elementary(self) -> sp.Expr:
        return -sp.log(1 + sp.exp(-self.args[0]))

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return r"\log\sigma\left(%s\right)" % printer._print(self.args[0])


STABLE_FUNCTIONS: tuple[type[StableFunction], ...] = (sigmoid, softplus, log_sigmoid)


def to_elementary(expr: sp.Expr) -> sp.Expr:
    """Replace every stable function by its elementary definition (for oracles)."""
    return expr.replace(lambda e: isinstance(e, StableFunction), lambda e: e.elementary())
