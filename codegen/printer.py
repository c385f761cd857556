"""SymPy → Numba-safe Python: typed constants, np.* functions, ternaries for branches.

Every number is wrapped as ``_dt(...)`` (``_dt`` is the kernel's dtype class), because a
bare literal would make Numba compute a float32 kernel in float64 (a silent upcast).
Branches print as ``a if cond else b``, which evaluates only the selected branch, so a
backward kernel never multiplies a NaN from an unselected branch (the ``where`` trap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.rewriting import expm1_opt, log1p_opt, optimize
from sympy.printing.pycode import PythonCodePrinter

from layergen.spec.functions import log_sigmoid, sigmoid, softplus

_FUNCTIONS = {
    "exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "sinh": "np.sinh", "cosh": "np.cosh",
    "sin": "np.sin", "cos": "np.cos", "tan": "np.tan", "atan": "np.arctan", "asinh": "np.arcsinh",
    "erf": "math.erf", "erfc": "math.erfc", "Abs": "np.abs", "sign": "np.sign",
    "log1p": "np.log1p", "expm1": "np.expm1", "atanh": "np.arctanh", "sqrt": "np.sqrt",
}


class NumbaPrinter(PythonCodePrinter):
    """Prints element expressions; ``symbols`` maps each SymPy symbol to its code."""

    printmethod = "_layergen_numba"

    def __init__(self, symbols: Mapping[sp.Symbol, str], dtype_name: str = "_dt", late: Sequence[str] = ()) -> None:
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self.symbol_code = {s.name: c for s, c in symbols.items()}
        self.dt = dtype_name
        self.late = list(late)

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        """Sums are evaluated left to right; terms with ``late`` symbols go last, in order.

        So x − lse with lse = m + log s prints as ``x - _m - _l``: (x − m) is exact-ish and
        small, and the rounding of m + log s in the working precision never enters.
        """
        if not self.late:
            return super()._print_Add(expr, order=order)

        def rank(term: sp.Expr) -> int:
            names = {s.name for s in term.free_symbols}
            return max([self.late.index(n) + 1 for n in names if n in self.late], default=0)

        terms = sorted(self._as_ordered_terms(expr, order=order), key=rank)
        return super()._print_Add(sp.Add(*terms, evaluate=False), order="none")

    def _const(self, text: str) -> str:
        return f"{self.dt}({text})"

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        try:
            return self.symbol_code[expr.name]
        except KeyError:
            raise KeyError(f"no code for symbol {expr.name!r} in this kernel") from None

    def _print_Integer(self, expr: sp.Integer) -> str:
        return self._const(str(int(expr)))

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"({self._const(str(expr.p))} / {self._const(str(expr.q))})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._const("0.5")

    def _print_Float(self, expr: sp.Float) -> str:
        return self._const(repr(float(expr)))

    def _print_Zero(self, expr: sp.Expr) -> str:
        return self._const("0")

    def _print_One(self, expr: sp.Expr) -> str:
        return self._const("1")

    def _print_NegativeOne(self, expr: sp.Expr) -> str:
        return self._const("-1")

    def _print_Pi(self, expr: sp.Expr) -> str:
        return self._const(repr(float(sp.pi)))

    def _print_Exp1(self, expr: sp.Expr) -> str:
        return self._const(repr(float(sp.E)))

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return self._const("np.inf")

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return self._const("-np.inf")

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.as_base_exp()
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if exp.is_Integer and 0 < abs(int(exp)) <= 4:
            product = "*".join([b] * abs(int(exp)))
            if abs(int(exp)) > 1:
                product = f"({product})"  # a/(b*b), never a/b*b
            return product if exp > 0 else f"({self._const('1')} / {product})"
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"({self._const('1')} / np.sqrt({self._print(base)}))"
        return f"{b}**{self.parenthesize(exp, sp.printing.precedence.PRECEDENCE['Pow'])}"

    def _print_Function(self, expr: sp.Function) -> str:
        name = type(expr).__name__
        if name in _FUNCTIONS:
            return f"{_FUNCTIONS[name]}({', '.join(self._print(a) for a in expr.args)})"
        raise NotImplementedError(f"layergen cannot print the function {name!r} for Numba yet")

    _print_exp = _print_log = _print_tanh = _print_erf = _print_Abs = _print_sign = _print_Function
    _print_sinh = _print_cosh = _print_sin = _print_cos = _print_tan = _print_atan = _print_Function
    _print_erfc = _print_asinh = _print_atanh = _print_Function

    def _print_log1p(self, expr: log1p) -> str:
        return f"np.log1p({self._print(expr.args[0])})"

    def _print_expm1(self, expr: expm1) -> str:
        return f"np.expm1({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr: sigmoid) -> str:
        return f"_sigmoid({self._print(expr.args[0])}, {self.dt})"

    def _print_softplus(self, expr: softplus) -> str:
        return f"_softplus({self._print(expr.args[0])}, {self.dt})"

    def _print_log_sigmoid(self, expr: log_sigmoid) -> str:
        return f"(-_softplus(-({self._print(expr.args[0])}), {self.dt}))"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        arg, h0 = expr.args[0], (expr.args[1] if len(expr.args) > 1 else sp.S.Zero)
        if h0 == 0:
            return f"({self._const('1')} if {self._print(arg)} > {self._const('0')} else {self._const('0')})"
        return (f"({self._const('1')} if {self._print(arg)} > {self._const('0')} else "
                f"({self._print(h0)} if {self._print(arg)} == {self._const('0')} else {self._const('0')}))")

    def _print_Max(self, expr: sp.Max) -> str:
        return self._fold("max", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._fold("min", expr.args)

    def _fold(self, fn: str, args: tuple[sp.Expr, ...]) -> str:
        code = self._print(args[0])
        for a in args[1:]:
            code = f"{fn}({code}, {self._print(a)})"
        return code

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces = list(expr.args)
        if pieces[-1].cond != sp.true:
            pieces.append((sp.nan, sp.true))
        code = self._print(pieces[-1].expr)
        for value, cond in reversed(pieces[:-1]):
            code = f"({self._print(value)} if {self._print(cond)} else {code})"
        return code

    def _print_NaN(self, expr: sp.Expr) -> str:
        return self._const("np.nan")

    def _print_BooleanTrue(self, expr: sp.Expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: sp.Expr) -> str:
        return "False"


def prepare(expr: sp.Expr) -> sp.Expr:
    """Code-level rewrites: log(1+u) → log1p(u), e^u − 1 → expm1(u)."""
    return optimize(sp.sympify(expr), [log1p_opt, expm1_opt])
