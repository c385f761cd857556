"""Lowering of a linear bijection Y = X·M (``derive.linear``) to three kernels.

``forward`` (Y and log|det J| per row), ``forward_vjp`` and ``inverse`` (X = Y·M⁻¹ and
−log|det J|). Each kernel first writes the *effective* structured factors into scratch
buffers (the triangle of a parameter, 1 on a unit diagonal, the anti-diagonal of a reversal),
so entries outside a triangle never matter; parameter gradients are projected back onto the
triangle. Products are ordered by the matrix-chain rule with N ≫ D, so the D×D factors
multiply first and the batch meets one product (BLAS); a triangular inverse is a column-by-
column substitution into a D×D scratch. Nothing is allocated per call.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from layergen.codegen.ast import Assign, Kernel, KernelArg, Loop, Raw, Stmt
from layergen.codegen.lower_matrix import MatrixEmitter, _sizes
from layergen.codegen.printer import NumbaPrinter, prepare
from layergen.derive.derivation import MatrixDerivation
from layergen.derive.linear import DIAGONAL_ENTRY
from layergen.spec.declare import N

#: where a structured factor's own entries count; elsewhere it holds ``FIXED``
FREE = {"lower": "_i >= _j", "upper": "_i <= _j", "unit_lower": "_i > _j", "unit_upper": "_i < _j"}
FIXED = {"lower": "_dt(0)", "upper": "_dt(0)", "unit_lower": "_dt(1) if _i == _j else _dt(0)",
         "unit_upper": "_dt(1) if _i == _j else _dt(0)", "reversal": "_dt(1) if _i + _j == {n} - 1 else _dt(0)"}
#: typical sizes for ordering products: a batch is much larger than the feature count
GUESS_BATCH, GUESS_OTHER = 4096, 16


class LinearEmitter(MatrixEmitter):
    """Matrix emission with effective factors, ordered products and triangular inverses."""

    def __init__(self, der: MatrixDerivation, sizes: dict[sp.Symbol, str]) -> None:
        super().__init__(der, sizes)
        self.effective: dict[str, str] = {}

    def fill_effective(self) -> None:
        for name, kind in self.der.structure.items():
            if kind == "permutation":  # the caller's matrix is used as it is
                continue
            sym = self.der.symbols[name]
            into = self.new_scratch(sym)
            n = self.size(sym.shape[0])
            fixed = FIXED[kind].format(n=n)
            value = fixed if kind == "reversal" else f"{name}[_i, _j] if {FREE[kind]} else {fixed}"
            self.element_loop(sym, into, value)
            self.effective[name] = into

    def _emit(self, expr: sp.Basic) -> str:
        if isinstance(expr, sp.MatrixSymbol) and expr.name in self.effective:
            return self.effective[expr.name]
        if isinstance(expr, sp.Inverse):
            return self.triangular_inverse(expr)
        return super()._emit(expr)

    def product_into(self, target: str, mats: list[sp.MatrixExpr]) -> None:
        """target = mats[0]·mats[1]⋯ (at least two: validation requires X times factors) in the
        cheapest association (matrix-chain order)."""
        split = _chain_split(tuple(_guess(m.shape[0]) for m in mats) + (_guess(mats[-1].shape[1]),))

        def part(lo: int, hi: int) -> str:
            if hi - lo == 1:
                return self.emit(mats[lo])
            sub = sp.MatMul(*mats[lo:hi], evaluate=False)
            if sub in self.cache:
                return self.cache[sub]
            into = self.new_scratch(sub)
            mid = split[(lo, hi)]
            self.stmts.append(Raw(f"matmul_into({part(lo, mid)}, {part(mid, hi)}, {into})"))
            self.ops += 1
            self.cache[sub] = into
            return into

        mid = split[(0, len(mats))]
        self.stmts.append(Raw(f"matmul_into({part(0, mid)}, {part(mid, len(mats))}, {target})"))
        self.ops += 1

    def triangular_inverse(self, expr: sp.Inverse) -> str:
        """F⁻¹ of a triangular F by substitution, column by column (F⁻¹ is triangular too)."""
        if isinstance(expr.arg, sp.Transpose):  # (Fᵀ)⁻¹ = (F⁻¹)ᵀ
            return f"{self.emit(sp.Inverse(expr.arg.arg))}.T"
        name = expr.arg.name
        t = self.emit(expr.arg)
        z = self.new_scratch(expr)
        n = self.size(expr.shape[0])
        lower = self.der.structure[name] in ("lower", "unit_lower")
        zero = Loop("_i", n, (Assign(f"{z}[_i, _j]", "_dt(0)"),))
        diag = Assign(f"{z}[_j, _j]", f"_dt(1) / {t}[_j, _j]")
        if lower:  # rows below the diagonal, top to bottom
            inner = Loop("_k", "_i", (Assign("_s", f"{t}[_i, _k] * {z}[_k, _j]", "+="),), start="_j")
            rows: Stmt = Loop("_i", n, (Assign("_s", "_dt(0)"), inner, Assign(f"{z}[_i, _j]", f"-_s / {t}[_i, _i]")),
                              start="_j + 1")
        else:  # rows above the diagonal, bottom to top
            inner = Loop("_k", "_j + 1", (Assign("_s", f"{t}[_i, _k] * {z}[_k, _j]", "+="),), start="_i + 1")
            rows = Loop("_r", "_j", (Assign("_i", "_j - 1 - _r"), Assign("_s", "_dt(0)"), inner,
                                     Assign(f"{z}[_i, _j]", f"-_s / {t}[_i, _i]")))
        self.stmts.append(Loop("_j", n, (zero, diag, rows), comment=f"{z} = {name}⁻¹ ({'lower' if lower else 'upper'})"))
        self.ops += 2
        return z

    def diagonal_term(self, name: str) -> str:
        """f(F_ii) = log|F_ii| printed for the element F_ii."""
        return self.element(self.der.logdet_element, name)

    def element(self, expr: sp.Expr, name: str) -> str:
        body = prepare(expr)
        self.ops += int(sp.count_ops(body))
        return NumbaPrinter({DIAGONAL_ENTRY: f"{self.emit(self.der.symbols[name])}[_i, _i]"}).doprint(body)

    def log_abs_det(self, n_rows: str, n_feat: str, sign: str = "") -> None:
        """logdet[n] = ±Σ over the triangular factors of Σ_i log|F_ii| (the same for every row)."""
        self.stmts.append(Assign("_ld", "_dt(0)"))
        for name in self.der.logdet_diagonals:
            self.stmts.append(Loop("_i", n_feat, (Assign("_ld", self.diagonal_term(name), "+="),)))
        self.stmts.append(Loop("_n", n_rows, (Assign("logdet[_n]", f"{sign}_ld"),)))


@cache
def _chain_split(dims: tuple[int, ...]) -> dict[tuple[int, int], int]:
    """The classic matrix-chain dynamic programme: where to split each sub-chain of matrices
    whose sizes are dims[0]×dims[1], dims[1]×dims[2], ..., for the fewest multiplications."""
    n = len(dims) - 1
    cost = {(i, i + 1): 0 for i in range(n)}
    split: dict[tuple[int, int], int] = {}
    for length in range(2, n + 1):
        for lo in range(n - length + 1):
            hi = lo + length
            best = min(range(lo + 1, hi), key=lambda m: cost[(lo, m)] + cost[(m, hi)] + dims[lo] * dims[m] * dims[hi])
            cost[(lo, hi)] = cost[(lo, best)] + cost[(best, hi)] + dims[lo] * dims[best] * dims[hi]
            split[(lo, hi)] = best
    return split


def _guess(size: sp.Expr) -> int:
    return GUESS_BATCH if size == N else GUESS_OTHER


def lower_linear(der: MatrixDerivation) -> list[Kernel]:
    table, size_code = _sizes(der)
    (x_name,) = [a.name for a in der.args_with_role("input")]
    ((y_name, y_expr),) = der.outputs.items()
    x_sym = der.symbols[x_name]
    shape = tuple(str(s) for s in x_sym.shape)
    rows, feats = (f"_{s}" for s in shape)
    fixed = [KernelArg(a.name, a.shape, a.role) for a in der.args if a.role in ("param", "constant")]
    logdet = KernelArg("logdet", (shape[0],), "output")
    kernels = []

    fwd = LinearEmitter(der, table)
    fwd.fill_effective()
    fwd.product_into(y_name, list(y_expr.args))
    fwd.log_abs_det(rows, feats)
    kernels.append(Kernel("forward", "Data → latent: Y = X·M and logdet[n] = log|det M| = Σ_i log|U_ii| (001 §28.3).",
                          [KernelArg(x_name, shape, "input"), *fixed, KernelArg(y_name, shape, "output"), logdet, *fwd.scratch],
                          tuple(fwd.stmts), fwd.ops, x_name, sizes=size_code))

    inv = LinearEmitter(der, table)
    inv.fill_effective()
    inv.product_into(x_name, list(der.inverse[x_name].args))
    inv.log_abs_det(rows, feats, sign="-")
    inv_sizes = {k: v.replace(f"{x_name}.", f"{y_name}.") for k, v in size_code.items()}
    kernels.append(Kernel("inverse", "Latent → data: X = Y·M⁻¹ (triangular solves) and logdet[n] = −log|det M|.",
                          [KernelArg(y_name, shape, "input"), *fixed, KernelArg(x_name, shape, "output"), logdet, *inv.scratch],
                          tuple(inv.stmts), inv.ops, y_name, sizes=inv_sizes))

    bwd = LinearEmitter(der, table)
    bwd.fill_effective()
    for name, expr in der.vjps.items():
        bwd.product_into(f"grad_{name}", list(expr.args))
        kind = der.structure.get(name)
        if kind in FREE:  # entries outside the triangle are not parameters: no gradient
            sym = der.symbols[name]
            bwd.element_loop(sym, f"grad_{name}", f"grad_{name}[_i, _j] if {FREE[kind]} else _dt(0)")
        if name in der.logdet_diagonals:
            bwd.stmts.append(Assign("_g", "_dt(0)"))
            bwd.stmts.append(Loop("_n", rows, (Assign("_g", "grad_logdet[_n]", "+="),)))
            partial = bwd.element(der.logdet_element_partial, name)
            bwd.stmts.append(Loop("_i", feats, (Assign(f"grad_{name}[_i, _i]", f"_g * ({partial})", "+="),),
                                  comment="ḡ · ∂ log|det| / ∂F_ii"))
    grads_in = [KernelArg(f"grad_{y_name}", shape, "grad_output"), KernelArg("grad_logdet", (shape[0],), "grad_output")]
    grads_out = [KernelArg(f"grad_{a.name}", a.shape, "grad") for a in der.args if a.name in der.vjps]
    kernels.append(Kernel("forward_vjp", "VJPs of Y and of log|det J| (weighted by grad_logdet), each parameter's "
                          "restricted to its triangle.",
                          [KernelArg(x_name, shape, "input"), *fixed, *grads_in, *grads_out, *bwd.scratch],
                          tuple(bwd.stmts), bwd.ops, x_name, sizes=size_code))
    return kernels
