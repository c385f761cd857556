"""Lowering of a ``MatrixDerivation``: matrix products to BLAS gemm, the rest to loops.

Outputs are written in place where the expression is BLAS-shaped (``assign``): a product
goes into the output with ``matmul_into(a, b, out)`` (``layergen.runtime.gemm``: one gemm call), a bias row or a sum over rows is a loop, and
a masked product (P ⊙ M) is the product into the output, then an in-place multiply. An
intermediate matrix that must exist goes into a **scratch argument** (role ``scratch``, its
shape in ``KERNELS``) that the caller allocates once, so kernels allocate nothing per call:
``MatMul`` → ``matmul_into(a, b, scratch)`` (BLAS gemm), ``HadamardProduct`` and
``ElementwiseApplyFunction`` → element loops into the scratch (printed with the scalar
printer, so branches stay ternaries, never ``np.where``). Only ``OneMatrix`` outside the
bias and column-sum patterns and ``MatAdd`` of non-products still fall back to temporaries.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from layergen.codegen.ast import Assign, Kernel, KernelArg, Loop, Raw, Stmt
from layergen.codegen.printer import NumbaPrinter, prepare
from layergen.derive.derivation import MatrixDerivation


class MatrixEmitter:
    def __init__(self, der: MatrixDerivation, sizes: dict[sp.Symbol, str]) -> None:
        self.der = der
        self.sizes = sizes
        self.stmts: list[Stmt] = []
        self.count = 0
        self.ops = 0
        self.cache: dict[sp.Basic, str] = {}
        self.scratch: list[KernelArg] = []

    def size(self, s: sp.Expr) -> str:
        return NumbaPrinter({k: v for k, v in self.sizes.items()}).doprint(s).replace("_dt(", "int(")

    def temp(self, code: str) -> str:
        name = f"_m{self.count}"
        self.count += 1
        self.stmts.append(Assign(name, code))
        return name

    def new_scratch(self, expr: sp.MatrixExpr) -> str:
        """A caller-allocated buffer of ``expr``'s shape, named ``scratch_<n>``."""
        name = f"scratch_{len(self.scratch)}"
        self.scratch.append(KernelArg(name, tuple(str(s) for s in expr.shape), "scratch", f"holds {expr}"))
        return name

    def element_loop(self, expr: sp.MatrixExpr, target: str, value: str, op: str = "=") -> None:
        rows, cols = (self.size(s) for s in expr.shape)
        self.stmts.append(Loop("_i", rows, (Loop("_j", cols, (Assign(f"{target}[_i, _j]", value, op),)),)))

    def emit(self, expr: sp.Basic) -> str:
        if expr in self.cache:
            return self.cache[expr]
        code = self._emit(expr)
        self.cache[expr] = code
        return code

    def _emit(self, expr: sp.Basic) -> str:
        if isinstance(expr, sp.MatrixSymbol):
            return expr.name
        if isinstance(expr, sp.Transpose):
            return f"{self.emit(expr.arg)}.T"
        if isinstance(expr, sp.OneMatrix):
            rows, cols = expr.shape
            return self.temp(f"np.ones(({self.size(rows)}, {self.size(cols)}), dtype=_dtype)")
        if isinstance(expr, sp.MatMul):
            scalars = [a for a in expr.args if not a.is_Matrix]
            mats = [a for a in expr.args if a.is_Matrix]
            if isinstance(mats[0], sp.OneMatrix) and mats[0].shape[1] == 1 and len(mats) > 1:
                # 1·B with B one row: NumPy broadcasting repeats the row, no ones-matrix needed
                rest = sp.MatMul(*mats[1:]) if len(mats) > 2 else mats[1]
                mats = [rest]
            code = self.emit(mats[0])
            for k, m in enumerate(mats[1:], start=2):
                into = self.new_scratch(sp.MatMul(*mats[:k], evaluate=False))
                self.stmts.append(Raw(f"matmul_into({code}, {self.emit(m)}, {into})"))
                code = into
                self.ops += 1
            if scalars:
                code = self.temp(f"{self.scalar(sp.Mul(*scalars))} * {code}")
            return code
        if isinstance(expr, sp.MatAdd):
            return self.temp(" + ".join(self.emit(a) for a in expr.args))
        if isinstance(expr, sp.HadamardProduct):
            factors = [self.emit(a) for a in expr.args]
            into = self.new_scratch(expr)
            self.element_loop(expr, into, " * ".join(f"{f}[_i, _j]" for f in factors))
            self.ops += len(factors) - 1
            return into
        if isinstance(expr, ElementwiseApplyFunction):
            return self.elementwise(expr)
        raise NotImplementedError(f"{self.der.name}: cannot lower the matrix expression {type(expr).__name__}: {expr}")

    def scalar(self, expr: sp.Expr) -> str:
        hypers = {sp.Symbol(a.name): f"_h_{a.name}" for a in self.der.args_with_role("hyper")}
        return NumbaPrinter({**hypers, **self.sizes}).doprint(prepare(expr))

    def elementwise(self, expr: ElementwiseApplyFunction) -> str:
        inner = self.emit(expr.expr)
        name = self.new_scratch(expr)
        (var,) = expr.function.variables
        body = prepare(expr.function.expr)
        self.ops += int(sp.count_ops(body))
        self.element_loop(expr, name, NumbaPrinter({var: f"{inner}[_i, _j]"}).doprint(body))
        return name


def _row_broadcast(term: sp.Basic) -> sp.Basic | None:
    """B when ``term`` is 1·B with B a single row (a bias), else None."""
    if isinstance(term, sp.MatMul):
        mats = [a for a in term.args if a.is_Matrix]
        if len(mats) == 2 and isinstance(mats[0], sp.OneMatrix) and mats[0].shape[1] == 1 and len(mats) == len(term.args):
            return mats[1]
    return None


def _column_sum(term: sp.Basic) -> sp.Basic | None:
    """G when ``term`` is 1ᵀ·G (a sum over rows), else None."""
    if isinstance(term, sp.MatMul) and len(term.args) == 2 and isinstance(term.args[0], sp.OneMatrix) \
            and term.args[0].shape[0] == 1:
        return term.args[1]
    return None


def _plain_product(term: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
    if isinstance(term, sp.MatMul) and len(term.args) == 2 and all(a.is_Matrix for a in term.args) \
            and not any(isinstance(a, sp.OneMatrix) for a in term.args):
        return term.args[0], term.args[1]
    return None


def _masked_product(term: sp.Basic) -> tuple[tuple[sp.Basic, sp.Basic], list[sp.Basic]] | None:
    """(P, [M, ...]) when ``term`` is P ⊙ M ⊙ ... with P a plain product of two matrices."""
    if not isinstance(term, sp.HadamardProduct):
        return None
    products = [a for a in term.args if _plain_product(a) is not None]
    if len(products) != 1:
        return None
    return _plain_product(products[0]), [a for a in term.args if a is not products[0]]


def assign(emitter: MatrixEmitter, target: str, expr: sp.MatrixExpr) -> None:
    """target = expr without temporaries for the BLAS-shaped cases: a product goes straight
    into ``target`` (``matmul_into``), bias rows and row sums are loops; anything else falls
    back to temporaries."""
    rows, cols = (emitter.size(s) for s in expr.shape)
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    written = False
    for term in sorted(terms, key=lambda t: _plain_product(t) is None and _masked_product(t) is None):
        product, row, column = _plain_product(term), _row_broadcast(term), _column_sum(term)
        masked = _masked_product(term)
        if product is not None and not written:
            emitter.stmts.append(Raw(f"matmul_into({emitter.emit(product[0])}, {emitter.emit(product[1])}, {target})"))
            emitter.ops += 1
        elif masked is not None and not written:
            (left, right), factors = masked
            emitter.stmts.append(Raw(f"matmul_into({emitter.emit(left)}, {emitter.emit(right)}, {target})"))
            emitter.element_loop(term, target, " * ".join(f"{emitter.emit(f)}[_i, _j]" for f in factors), "*=")
            emitter.ops += 1 + len(factors)
        elif row is not None:
            code = emitter.emit(row)
            op = "+=" if written else "="
            emitter.stmts.append(Loop("_i", rows, (Loop("_j", cols, (Assign(f"{target}[_i, _j]", f"{code}[0, _j]", op),)),)))
        elif column is not None and not written:
            code = emitter.emit(column)
            emitter.stmts.append(Loop("_j", cols, (Assign(f"{target}[0, _j]", "_dt(0)"),)))
            emitter.stmts.append(Loop("_i", emitter.size(column.shape[0]),
                                      (Loop("_j", cols, (Assign(f"{target}[0, _j]", f"{code}[_i, _j]", "+="),)),)))
        else:
            code = emitter.emit(term)
            emitter.stmts.append(Assign(f"{target}[:, :]", code, "+=" if written else "="))
        written = True


def _sizes(der: MatrixDerivation) -> tuple[dict[sp.Symbol, str], dict[str, str]]:
    """Each symbolic size bound to the shape of the first argument that has it."""
    table: dict[sp.Symbol, str] = {}
    code: dict[str, str] = {}
    for a in der.args:
        if a.role == "hyper":
            continue
        for axis, s in enumerate(der.symbols[a.name].shape):
            if isinstance(s, sp.Symbol) and s not in table:
                table[s] = f"_{s.name}"
                code[f"_{s.name}"] = f"{a.name}.shape[{axis}]"
    return table, code


def lower_matrix(der: MatrixDerivation) -> list[Kernel]:
    table, size_code = _sizes(der)
    hypers = [a.name for a in der.args_with_role("hyper")]
    data = [KernelArg(a.name, a.shape, a.role) for a in der.args if a.role != "hyper"]
    hyper_args = [KernelArg(h, (), "hyper") for h in hypers]
    outputs = [KernelArg(o, tuple(str(s) for s in e.shape), "output") for o, e in der.outputs.items()]

    fwd = MatrixEmitter(der, table)
    for o, e in der.outputs.items():
        assign(fwd, o, e)
    first = data[0].name
    setup = [Assign("_dtype", f"{first}.dtype")]
    kernels = [Kernel("forward", "Evaluate the outputs; matrix products run in BLAS.", data + outputs + fwd.scratch + hyper_args,
                      tuple(setup + fwd.stmts), fwd.ops, first, sizes=size_code, hypers=hypers)]
    bwd = MatrixEmitter(der, table)
    for name, e in der.vjps.items():
        assign(bwd, f"grad_{name}", e)
    grads_in = [KernelArg(f"grad_{o.name}", o.shape, "grad_output") for o in outputs]
    grads_out = [KernelArg(f"grad_{a.name}", a.shape, "grad") for a in data if a.name in der.vjps]
    kernels.append(Kernel("vjp", "VJPs from SymPy's matrix calculus: ∂L/∂A = ∂ Σ_o Tr(G_oᵀ F_o) / ∂A.",
                          data + grads_in + grads_out + bwd.scratch + hyper_args, tuple(setup + bwd.stmts), bwd.ops, first,
                          sizes=size_code, hypers=hypers))
    params = {a.name for a in der.args_with_role("param")}
    if params and len(params) < len(der.vjps):  # the first layer of a network needs no ∂L/∂X
        only = MatrixEmitter(der, table)
        for name, e in der.vjps.items():
            if name in params:
                assign(only, f"grad_{name}", e)
        kernels.append(Kernel("vjp_params", "The parameters' VJPs only (no gradient for the inputs).",
                              data + grads_in + [g for g in grads_out if g.name[len("grad_"):] in params] + only.scratch
                              + hyper_args,
                              tuple(setup + only.stmts), only.ops, first, sizes=size_code, hypers=hypers))
    return kernels
