"""The ``Derivation``: everything layergen derives from one spec, as SymPy expressions.

It is pure data (picklable, no NumPy, no Numba). ``codegen`` lowers it to kernels, the
LaTeX export prints it, the verification evaluates it. One class per spec level.

Naming inside derived expressions: ``grad_<name>`` is the upstream gradient ∂L/∂<name>
of an output (or the adjoint of a reduction), ``grad_logdet`` the weight of log|det J|.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


@dataclass(frozen=True)
class ArrayArg:
    """A kernel argument. ``role``: input, conditioning, target, param, hyper."""

    name: str
    role: str
    shape: tuple[str, ...]  # symbolic sizes as strings, e.g. ("N", "D"), ("D",), ()
    trainable: bool = False
    default: float | None = None
    domain: str = "real"  # a hyperparameter's values its symbol admits (``spec.domains``)
    init: float | None = None  # a parameter's declared starting value (``Param.init``)


@dataclass(frozen=True)
class ReductionStep:
    """``symbol = op_{axis} operand``, with ``partials[v] = ∂(op_k operand_k)/∂v_k``."""

    symbol: sp.Symbol
    op: str
    axis: int
    operand: sp.Expr
    partials: dict[str, sp.Expr]


@dataclass(frozen=True)
class NumericInverse:
    """Bracketed Newton/bisection for y = h(x): h and h' as expressions of x.

    ``bracket`` is the spec's (lo, hi) for x, in hyper symbols; None: widen [−2^k, 2^k].
    """

    h: sp.Expr
    dh: sp.Expr
    increasing: bool
    bracket: tuple[sp.Expr, sp.Expr] | None = None


@dataclass
class DerivationBase:
    name: str
    group: str
    kind: str
    content_hash: str
    doc: str
    args: list[ArrayArg]
    rewrites: list[str] = field(default_factory=list)
    conventions: list[str] = field(default_factory=list)

    def arg(self, name: str) -> ArrayArg:
        return next(a for a in self.args if a.name == name)

    def args_with_role(self, *roles: str) -> list[ArrayArg]:
        return [a for a in self.args if a.role in roles]

    @property
    def differentiable(self) -> list[ArrayArg]:
        """Arguments that get a VJP: inputs, conditioning inputs, trainable parameters."""
        return [a for a in self.args if a.role in ("input", "conditioning") or (a.role == "param" and a.trainable)]


@dataclass
class ElementwiseDerivation(DerivationBase):
    """Per-element expressions; see ``derive.elementwise`` for the math."""

    level: str = "elementwise"
    symbols: dict[str, sp.Symbol] = field(default_factory=dict)
    reductions: list[ReductionStep] = field(default_factory=list)
    outputs: dict[str, sp.Expr] = field(default_factory=dict)
    #: output name -> wrt name -> ∂ψ_out/∂wrt (reductions held fixed)
    partials: dict[str, dict[str, sp.Expr]] = field(default_factory=dict)
    #: reduction name -> element expression whose group sum is that reduction's local adjoint
    reduction_adjoints: dict[str, sp.Expr] = field(default_factory=dict)
    #: wrt name -> element expression of the adjoint (VJP) in grad_* symbols
    vjps: dict[str, sp.Expr] = field(default_factory=dict)
    #: bijections: log|∂y/∂x| per element (summed over features per sample), its partials
    logdet: sp.Expr | None = None
    logdet_partials: dict[str, sp.Expr] = field(default_factory=dict)
    jacobian_structure: str | None = None
    inverse: dict[str, sp.Expr] | None = None
    inverse_source: str | None = None  # "declared", "solved" or "numeric"
    numeric_inverse: NumericInverse | None = None
    #: losses: ∂L/∂prediction with L = (1/N) Σ ℓ, in the reduction adjoint symbols
    loss_gradients: dict[str, sp.Expr] = field(default_factory=dict)
    #: losses: "mean" (L = (1/N) Σ ℓ) or "sum" (L = Σ ℓ)
    reduction: str = "mean"


@dataclass
class MatrixDerivation(DerivationBase):
    """Matrix calculus over a batch; for a linear bijection Y = X·M also log|det J|, inverse
    (``derive.linear``). A structured factor's VJP is ``vjps[name]`` (with respect to the
    effective factor) restricted to its free entries, plus ḡ·f'(F_ii) on the diagonal when
    it is one of ``logdet_diagonals``."""

    level: str = "matrix"
    symbols: dict[str, sp.MatrixSymbol] = field(default_factory=dict)
    outputs: dict[str, sp.MatrixExpr] = field(default_factory=dict)
    #: wrt name -> matrix expression of ∂L/∂wrt given G = ∂L/∂output
    vjps: dict[str, sp.MatrixExpr] = field(default_factory=dict)
    #: linear bijections: factor name -> structure (``spec.declare.STRUCTURES``)
    structure: dict[str, str] = field(default_factory=dict)
    factor: sp.MatrixExpr | None = None  # M in Y = X·M
    jacobian_structure: str | None = None
    logdet: sp.Expr | None = None  # Σ_i log|F_ii| over the triangular factors
    logdet_diagonals: list[str] = field(default_factory=list)
    logdet_element: sp.Expr | None = None  # f(u) = log|u|
    logdet_element_partial: sp.Expr | None = None  # f'(u), from SymPy
    inverse: dict[str, sp.MatrixExpr] | None = None  # X = Y·M⁻¹
    inverse_source: str | None = None


@dataclass
class ExpandedDerivation(DerivationBase):
    level: str = "expanded"
    inputs: dict[str, list[sp.Symbol]] = field(default_factory=dict)
    outputs: dict[str, list[sp.Expr]] = field(default_factory=dict)
    output_symbols: dict[str, list[sp.Symbol]] = field(default_factory=dict)
    jacobian: sp.Matrix | None = None
    jacobian_structure: str | None = None
    #: wrt component/param name -> expression in grad_<out><i> symbols (and grad_logdet)
    vjps: dict[str, sp.Expr] = field(default_factory=dict)
    logdet: sp.Expr | None = None
    logdet_partials: dict[str, sp.Expr] = field(default_factory=dict)
    inverse: dict[str, list[sp.Expr]] | None = None
    inverse_source: str | None = None


Derivation = ElementwiseDerivation | MatrixDerivation | ExpandedDerivation
