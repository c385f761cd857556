"""The spec language: what a person writes to add a layer, loss, optimizer step or bijection.

A spec holds a *forward map only* (and optionally a closed-form inverse, which layergen
checks). Three levels of expression cover the catalog (DESIGN.md, "specs/"):

``Elementwise``
    scalar expressions in per-element symbols. A symbol declared with shape ``(N, D)``
    stands for the element ``x[n, d]``; a parameter of shape ``(D,)`` for ``θ[d]``; shape
    ``()`` for one scalar. ``reductions`` name sums, means or log-sum-exps over one axis
    (``axis=1``: over the features of a sample, as in softmax and layer norm; ``axis=0``:
    over the batch, as in batch norm), so row-wise vector maps keep symbolic sizes.
``MatrixMap``
    matrix expressions over a batch in ``MatrixSymbol``s (dense layers): SymPy's matrix
    calculus yields BLAS-shaped VJPs, lowered to BLAS gemm calls (``layergen.runtime.gemm.matmul_into``).
``Expanded``
    small fixed-dimension maps written component by component (2-D toy bijections,
    rotations), where the full Jacobian is affordable.

Kinds: ``map`` (VJPs for every input and parameter), ``bijection`` (plus Jacobian
structure, log|det J|, its gradients and the inverse), ``loss`` (the mean over the batch
of a per-element loss, and its derivative with respect to the prediction), and
``optimizer_step`` (an elementwise update of parameters and optimizer state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Union

import sympy as sp

from layergen import conventions

#: Batch size and feature count: the symbolic sizes of ``Elementwise`` arrays.
N, D = sp.symbols("N D", integer=True, positive=True)

Shape = tuple[sp.Expr, ...]
KINDS: tuple[str, ...] = ("map", "bijection", "loss", "optimizer_step")

#: an optimizer step's inputs that hold the parameters and their gradient (``layergen.conventions``)
OPTIMIZER_PARAMETER, OPTIMIZER_GRADIENT = conventions.OPTIMIZER_PARAMETER, conventions.OPTIMIZER_GRADIENT
REDUCTION_OPS: tuple[str, ...] = ("sum", "mean", "logsumexp")
#: Structures a square factor of a linear bijection may declare (001 §28.3). Triangular ones are
#: trainable parameters whose entries outside the triangle are ignored (and get no gradient);
#: ``unit_*`` also fix the diagonal to 1. A ``permutation`` is a constant 0/1 matrix the caller
#: passes; a ``reversal`` (the anti-diagonal permutation) is fixed by its size and is no argument.
STRUCTURES: tuple[str, ...] = ("lower", "upper", "unit_lower", "unit_upper", "permutation", "reversal")


@dataclass(frozen=True)
class Param:
    """A parameter declaration: its shape, whether training updates it, and the value a network starts
    it at (``init``; needed where a network trains the parameter, since no rule fits every parameter:
    a scale starts at 1, a shift at 0, PReLU's slope at 0.25)."""

    shape: Shape
    trainable: bool = True
    init: float | None = None


@dataclass(frozen=True)
class Reduction:
    """``op`` over ``axis`` of the per-element expression ``operand``.

    ``sum``: Σ_k u_k; ``mean``: (1/n) Σ_k u_k; ``logsumexp``: log Σ_k e^{u_k}, computed with
    the running maximum subtracted so it never overflows; its derivative e^{u_k - r} is
    stable too (it is the softmax).
    """

    operand: sp.Expr
    axis: int
    op: str


def Sum(operand: sp.Expr, axis: int = 1) -> Reduction:
    """Σ over ``axis`` (1: the features of one sample; 0: the batch)."""
    return Reduction(sp.sympify(operand), axis, "sum")


def Mean(operand: sp.Expr, axis: int = 1) -> Reduction:
    """Arithmetic mean over ``axis``."""
    return Reduction(sp.sympify(operand), axis, "mean")


def LogSumExp(operand: sp.Expr, axis: int = 1) -> Reduction:
    """log Σ exp over ``axis``, evaluated stably."""
    return Reduction(sp.sympify(operand), axis, "logsumexp")


ParamDecl = Union[Shape, Param]


@dataclass
class SpecBase:
    """Fields every level shares. ``source`` is filled in by the loader."""

    level: ClassVar[str] = ""
    name: str
    kind: str
    doc: str = ""
    source: Path | None = field(default=None, compare=False)

    @property
    def group(self) -> str:
        """The folder under specs/ (activations, layers, losses, flows, ...)."""
        return self.source.parent.name if self.source is not None else "user"


@dataclass
class Elementwise(SpecBase):
    """A map defined element by element, with optional reductions along one axis.

    ``inputs``, ``conditioning`` and ``targets`` map symbols to shapes ``(N, D)``;
    ``params`` map symbols to ``(D,)`` or ``()`` (or a ``Param``); ``hyper`` map symbols to
    default values (runtime scalars, no gradient). ``forward`` maps output symbols to
    expressions. Conditioning inputs are the per-sample parameters γ of a flow
    transformer h(x; γ) (000 eq. 78); targets are the labels of a loss (no gradient).
    """

    level: ClassVar[str] = "elementwise"
    inputs: Mapping[sp.Symbol, Shape] = field(default_factory=dict)
    forward: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    params: Mapping[sp.Symbol, ParamDecl] = field(default_factory=dict)
    conditioning: Mapping[sp.Symbol, Shape] = field(default_factory=dict)
    targets: Mapping[sp.Symbol, Shape] = field(default_factory=dict)
    #: per-element arrays that get no gradient (a dropout mask)
    constants: Mapping[sp.Symbol, Shape] = field(default_factory=dict)
    hyper: Mapping[sp.Symbol, float] = field(default_factory=dict)
    #: hyperparameter -> the interval it may take beyond its symbol's sign, e.g. {β: Interval.Ropen(0, 1)}
    #: (``layergen.spec.domains``); the derivation does not use it, the runtime and the checks keep to it
    hyper_ranges: Mapping[sp.Symbol, sp.Interval] = field(default_factory=dict)
    reductions: Mapping[sp.Symbol, Reduction] = field(default_factory=dict)
    inverse: Mapping[sp.Symbol, sp.Expr] | None = None
    #: bijections without a closed-form inverse: {x: (lo, hi)}, the interval in which the generated
    #: Newton/bisection seeks x = h⁻¹(y) (numbers or expressions in hyper symbols). A y outside
    #: h([lo, hi]) is an error, never a silent extrapolation. Without it the bracket [−2^k, 2^k]
    #: is widened until it holds the root.
    bracket: Mapping[sp.Symbol, tuple[sp.Expr, sp.Expr]] | None = None
    #: losses: "mean" is L = (1/N) Σ ℓ over a batch of N rows (003 §2); "sum" is L = Σ ℓ (penalties)
    reduction: str = "mean"
    #: Names the notes give to subexpressions, e.g. {π: σ(Φ)}; used only by the LaTeX export.
    notation: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    #: Identities the data satisfy, e.g. {Sum(t, axis=1): 1} for one-hot targets; used only by
    #: the LaTeX export to reach the notes' boxed forms (kernels stay valid for any data).
    facts: Mapping[Reduction, sp.Expr] = field(default_factory=dict)


@dataclass
class MatrixMap(SpecBase):
    """A map of whole matrices over a batch, in ``MatrixSymbol``s (e.g. X·W + 1·b).

    A ``bijection`` at this level is linear in its input row by row, Y = X·F₁·F₂⋯ with every
    square factor Fₖ (or its transpose) a declared ``structure`` (``STRUCTURES``), e.g. the
    LU-decomposed mixing Y = X·(P·L·U)ᵀ. The structures are what make log|det J| = Σ log|U_ii|
    and the inverse (transposes and triangular solves) derivable for any size D.
    """

    level: ClassVar[str] = "matrix"
    inputs: Sequence[sp.MatrixSymbol] = ()
    forward: Mapping[sp.MatrixSymbol, sp.MatrixExpr] = field(default_factory=dict)
    params: Sequence[sp.MatrixSymbol] = ()
    #: matrices that get no gradient (a MADE mask, a permutation)
    constants: Sequence[sp.MatrixSymbol] = ()
    hyper: Mapping[sp.Symbol, float] = field(default_factory=dict)
    hyper_ranges: Mapping[sp.Symbol, sp.Interval] = field(default_factory=dict)  # as Elementwise's
    #: square params and constants -> one of ``STRUCTURES``
    structure: Mapping[sp.MatrixSymbol, str] = field(default_factory=dict)


@dataclass
class Expanded(SpecBase):
    """A small fixed-dimension map written per component: ``{"y": (y0_expr, y1_expr)}``.

    ``inputs`` map a name to its component symbols, ``params`` scalar symbols to ``()``.
    """

    level: ClassVar[str] = "expanded"
    inputs: Mapping[str, Sequence[sp.Symbol]] = field(default_factory=dict)
    forward: Mapping[str, Sequence[sp.Expr]] = field(default_factory=dict)
    params: Mapping[sp.Symbol, ParamDecl] = field(default_factory=dict)
    hyper: Mapping[sp.Symbol, float] = field(default_factory=dict)
    hyper_ranges: Mapping[sp.Symbol, sp.Interval] = field(default_factory=dict)  # as Elementwise's
    inverse: Mapping[str, Sequence[sp.Expr]] | None = None


Spec = Union[Elementwise, MatrixMap, Expanded]


def param_shape(decl: ParamDecl) -> Shape:
    return decl.shape if isinstance(decl, Param) else tuple(decl)


def param_trainable(decl: ParamDecl) -> bool:
    return decl.trainable if isinstance(decl, Param) else True


def param_init(decl: ParamDecl) -> float | None:
    """The parameter's declared starting value, or None."""
    return float(decl.init) if isinstance(decl, Param) and decl.init is not None else None


def broadcast_rows(row: sp.MatrixExpr, n: sp.Expr) -> sp.MatrixExpr:
    """1·b: repeat the row vector ``row`` (shape 1×K) over ``n`` rows."""
    return sp.OneMatrix(n, 1) * row
