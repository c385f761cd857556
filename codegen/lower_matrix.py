"""Lowering of a ``MatrixDerivation``: matrix products to BLAS gemm, the rest to loops.

Outputs are written in place where the expression is BLAS-shaped (``assign``): a product
goes into the output with ``matmul_into(a, b, out)`` (``layergen.runtime.gemm``: one gemm call), a bias row or a sum over rows is a loop, and
a masked product (P ⊙ M) is the product into the output, then an in-place multiply. An
intermediate matrix that must exist goes into a **scratch argument** (role ``scratch``, its
shape in ``KERNELS``) that the caller allocates once, so kernels allocate nothing per call:
``MatMul`` → ``matmul_into(a, b, scratch)`` (BLAS gemm), ``HadamardProduct`` and
``ElementwiseApplyFunction`` → element loops into the scratch (printed with the scalar
printer, so branches stay ternaries, never ``np.where``). A scalar times a product scales the
product where it lies (in the output, or in its scratch); a scalar times anything else, a sum that
is no bias or product pattern, and a lone ``OneMatrix`` are element loops into a scratch. No kernel
builds a temporary array (``tests/test_no_allocation.py`` counts Numba's allocations per call).

A 1-row operand that stands for its repetition down the rows (``1·b``, a bias) is indexed ``[0, _j]``
in element loops, as NumPy's broadcasting would read it.
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
        self.ops = 0
        self.cache: dict[sp.Basic, str] = {}
        self.scratch: list[KernelArg] = []
        #: emitted names that hold one row standing for its repetition down the rows (``1·b``)
        self.rows: set[str] = set()

    def size(self, s: sp.Expr) -> str:
        return NumbaPrinter({k: v for k, v in self.sizes.items()}).doprint(s).replace("_dt(", "int(")

    def new_scratch(self, expr: sp.MatrixExpr) -> str:
        """A caller-allocated buffer of ``expr``'s shape, named ``scratch_<n>``."""
        name = f"scratch_{len(self.scratch)}"
        self.scratch.append(KernelArg(name, tuple(str(s) for s in expr.shape), "scratch", f"holds {expr}"))
        return name

    def element_loop(self, expr: sp.MatrixExpr, target: str, value: str, op: str = "=") -> None:
        rows, cols = (self.size(s) for s in expr.shape)
        self.stmts.append(Loop("_i", rows, (Loop("_j", cols, (Assign(f"{target}[_i, _j]", value, op),)),)))

    def element(self, code: str, own_shape: bool = False) -> str:
        """Element (_i, _j) of an emitted matrix: a repeated row's own row (unless the loop runs over the
        array's ``own_shape``), a transpose by swapped indices."""
        if code in self.rows and not own_shape:
            return f"{code}[0, _j]"
        if code.endswith(".T") and code[:-2].isidentifier():
            return f"{code[:-2]}[_j, _i]"
        return f"{code}[_i, _j]"

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
            into = self.new_scratch(expr)
            self.element_loop(expr, into, "_dt(1)")
            return into
        if isinstance(expr, sp.MatMul):
            scale, mats = _scalars(expr)
            repeated = isinstance(mats[0], sp.OneMatrix) and mats[0].shape[1] == 1 and len(mats) > 1
            if repeated:  # 1·B with B one row: the row stands for its repetition, no ones-matrix needed
                mats = [sp.MatMul(*mats[1:]) if len(mats) > 2 else mats[1]]
            code = self.emit(mats[0])
            for k, m in enumerate(mats[1:], start=2):
                into = self.new_scratch(sp.MatMul(*mats[:k], evaluate=False))
                self.stmts.append(Raw(f"matmul_into({code}, {self.emit(m)}, {into})"))
                code = into
                self.ops += 1
            if repeated:
                self.rows.add(code)
            if scale is not None:
                code = self.scaled(self.scalar(scale), code, mats[0] if len(mats) == 1 else
                                   sp.MatMul(*mats, evaluate=False), own=len(mats) > 1)
            return code
        if isinstance(expr, sp.MatAdd):
            terms = [self.emit(a) for a in expr.args]
            into = self.new_scratch(expr)
            self.element_loop(expr, into, " + ".join(self.element(t) for t in terms))
            self.ops += len(terms) - 1
            return into
        if isinstance(expr, sp.HadamardProduct):
            factors = [self.emit(a) for a in expr.args]
            into = self.new_scratch(expr)
            self.element_loop(expr, into, " * ".join(self.element(f) for f in factors))
            self.ops += len(factors) - 1
            return into
        if isinstance(expr, ElementwiseApplyFunction):
            return self.elementwise(expr)
        raise NotImplementedError(f"{self.der.name}: cannot lower the matrix expression {type(expr).__name__}: {expr}")

    def scaled(self, scale: str, code: str, shape_of: sp.MatrixExpr, own: bool) -> str:
        """``scale`` times the emitted matrix ``code`` (whose array has ``shape_of``'s shape): in place when
        ``own`` (a product's scratch, read by nothing else), else into a new scratch."""
        self.ops += 1
        if own:
            self.element_loop(shape_of, code, scale, "*=")
            return code
        into = self.new_scratch(shape_of)
        self.element_loop(shape_of, into, f"{scale} * {self.element(code, own_shape=True)}")
        if code in self.rows:  # a scaled bias row still stands for its repetition
            self.rows.add(into)
        return into

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


def _column_sum(term: sp.Basic) -> tuple[sp.Expr | None, sp.Basic] | None:
    """(c, G) when ``term`` is c·1ᵀ·G, a sum over rows with scalar factors c (None for none), else None."""
    if not isinstance(term, sp.MatMul):
        return None
    scale, mats = _scalars(term)
    if len(mats) == 2 and isinstance(mats[0], sp.OneMatrix) and mats[0].shape[0] == 1:
        return scale, mats[1]
    return None


def _scalars(term: sp.MatMul) -> tuple[sp.Expr | None, list[sp.Basic]]:
    """A product's scalar factors (None for none) and its matrices."""
    scalars = [a for a in term.args if not a.is_Matrix]
    return (sp.Mul(*scalars) if scalars else None), [a for a in term.args if a.is_Matrix]


def _plain_product(term: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
    if isinstance(term, sp.MatMul) and len(term.args) == 2 and all(a.is_Matrix for a in term.args) \
            and not any(isinstance(a, sp.OneMatrix) for a in term.args):
        return term.args[0], term.args[1]
    return None


def _scaled_product(term: sp.Basic) -> tuple[sp.Expr, tuple[sp.Basic, sp.Basic]] | None:
    """(c, (A, B)) when ``term`` is c·A·B with scalar factors c and A, B plain matrices."""
    if not isinstance(term, sp.MatMul):
        return None
    scale, mats = _scalars(term)
    if scale is not None and len(mats) == 2 and not any(isinstance(m, sp.OneMatrix) for m in mats):
        return scale, (mats[0], mats[1])
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
    """target = expr, term by term: a product (also a scaled c·A·B, or a masked one) goes straight into
    ``target`` (``matmul_into``), then is scaled or masked there; bias rows and row sums are loops; any
    other term is emitted (into the emitter's scratches where it needs one) and added element by element,
    its scalar factor applied in that loop."""
    rows, cols = (emitter.size(s) for s in expr.shape)
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    written = False
    into_target = (_plain_product, _masked_product, _scaled_product)  # the first of these terms writes target
    for term in sorted(terms, key=lambda t: all(pattern(t) is None for pattern in into_target)):
        product, row, column = _plain_product(term), _row_broadcast(term), _column_sum(term)
        masked, scaled = _masked_product(term), _scaled_product(term)
        if product is not None and not written:
            emitter.stmts.append(Raw(f"matmul_into({emitter.emit(product[0])}, {emitter.emit(product[1])}, {target})"))
            emitter.ops += 1
        elif scaled is not None and not written:
            scale, (left, right) = scaled
            emitter.stmts.append(Raw(f"matmul_into({emitter.emit(left)}, {emitter.emit(right)}, {target})"))
            emitter.element_loop(term, target, emitter.scalar(scale), "*=")
            emitter.ops += 2
        elif masked is not None and not written:
            (left, right), factors = masked
            emitter.stmts.append(Raw(f"matmul_into({emitter.emit(left)}, {emitter.emit(right)}, {target})"))
            emitter.element_loop(term, target, " * ".join(emitter.element(emitter.emit(f)) for f in factors), "*=")
            emitter.ops += 1 + len(factors)
        elif row is not None:
            code = emitter.emit(row)
            op = "+=" if written else "="
            emitter.stmts.append(Loop("_i", rows, (Loop("_j", cols, (Assign(f"{target}[_i, _j]", f"{code}[0, _j]", op),)),)))
        elif column is not None and not written:
            scale, summed = column
            code = emitter.emit(summed)
            emitter.stmts.append(Loop("_j", cols, (Assign(f"{target}[0, _j]", "_dt(0)"),)))
            emitter.stmts.append(Loop("_i", emitter.size(summed.shape[0]),
                                      (Loop("_j", cols, (Assign(f"{target}[0, _j]", emitter.element(code), "+="),)),)))
            if scale is not None:
                emitter.element_loop(term, target, emitter.scalar(scale), "*=")
        else:  # element by element into target: a scalar factor is applied there, not in a scratch
            scale, inner = _scalars(term) if isinstance(term, sp.MatMul) else (None, [term])
            code = emitter.emit(inner[0] if len(inner) == 1 else sp.MatMul(*inner))
            value = emitter.element(code) if scale is None else f"{emitter.scalar(scale)} * {emitter.element(code)}"
            emitter.element_loop(term, target, value, "+=" if written else "=")
            emitter.ops += written + (scale is not None)
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
    kernels = [Kernel("forward", "Evaluate the outputs; matrix products run in BLAS.", data + outputs + fwd.scratch + hyper_args,
                      tuple(fwd.stmts), fwd.ops, first, sizes=size_code, hypers=hypers)]
    bwd = MatrixEmitter(der, table)
    for name, e in der.vjps.items():
        assign(bwd, f"grad_{name}", e)
    grads_in = [KernelArg(f"grad_{o.name}", o.shape, "grad_output") for o in outputs]
    grads_out = [KernelArg(f"grad_{a.name}", a.shape, "grad") for a in data if a.name in der.vjps]
    kernels.append(Kernel("vjp", "VJPs from SymPy's matrix calculus: ∂L/∂A = ∂ Σ_o Tr(G_oᵀ F_o) / ∂A.",
                          data + grads_in + grads_out + bwd.scratch + hyper_args, tuple(bwd.stmts), bwd.ops, first,
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
                              tuple(only.stmts), only.ops, first, sizes=size_code, hypers=hypers))
    return kernels
