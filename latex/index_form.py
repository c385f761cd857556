"""Derivation expressions in index notation (003's style), as SymPy objects.

``ElementIndexer`` maps the per-element symbols of an ``ElementwiseDerivation`` to indexed
objects at a given (sample, feature) index, and ``final_vjp`` inlines the reductions'
adjoints as explicit sums, so the exported boxed result is one closed expression that
tests compare with the notes' formulas. ``matrix_element`` does the same for matrix maps.
"""

from __future__ import annotations

import sympy as sp

from layergen.derive.derivation import ElementwiseDerivation, MatrixDerivation
from layergen.latex.notation import A0, A1, MU, NU, spare_indices
from layergen.spec.declare import D, N
from layergen.spec.functions import sigmoid


class ElementIndexer:
    def __init__(self, der: ElementwiseDerivation, notation: dict[sp.Symbol, sp.Expr] | None = None,
                 facts: dict[tuple[sp.Expr, int], sp.Expr] | None = None) -> None:
        self.der = der
        self.notation = notation or {}
        self.facts = facts or {}
        self.rank = len(der.args_with_role("input")[0].shape)
        self.axis = {s.symbol.name: s.axis for s in der.reductions}
        self.solved: dict[sp.Symbol, tuple[sp.Symbol, sp.Expr] | None] = {}  # notation name → (input, solution)

    def at(self, sample: sp.Symbol, feature: sp.Symbol) -> dict[sp.Symbol, sp.Expr]:
        """Symbol → indexed object at element (sample, feature)."""
        der, table = self.der, {}
        element = (sample, feature) if self.rank == 2 else (feature,)
        for a in der.args:  # by shape, whatever the role (a dropout mask is a constant of the batch's shape)
            sym = der.symbols[a.name]
            if len(a.shape) == self.rank and a.role != "param":
                table[sym] = sp.IndexedBase(a.name)[element]
            elif a.shape == ("N",) and self.rank == 2:  # one value per sample
                table[sym] = sp.IndexedBase(a.name)[sample]
            elif a.shape:
                table[sym] = sp.IndexedBase(a.name)[feature]
        for o in der.outputs:
            table[der.symbols[o]] = sp.IndexedBase(o)[element]
            table[sp.Symbol(f"grad_{o}", real=True)] = sp.IndexedBase(f"grad_{o}")[element]
        for name, axis in self.axis.items():
            index = sample if axis == 1 else feature
            table[der.symbols[name]] = sp.IndexedBase(name)[index]
            table[sp.Symbol(f"grad_{name}", real=True)] = sp.IndexedBase(f"grad_{name}")[index]
        table[sp.Symbol("grad_logdet", real=True)] = sp.IndexedBase("grad_logdet")[sample]
        return table

    def indexed(self, expr: sp.Expr, sample: sp.Symbol, feature: sp.Symbol) -> sp.Expr:
        return sp.sympify(expr).xreplace(self.at(sample, feature))

    def running(self, axis: int, expr: sp.Expr) -> sp.Symbol:
        """An index to sum over, not yet used in ``expr``."""
        choices = (A1, MU) if axis == 0 else (A0, NU)
        return next(c for c in choices if c not in expr.free_symbols)

    def adjoint_sum(self, reduction: str, group_index: sp.Symbol, context: sp.Expr) -> sp.Expr:
        """∂L/∂r at ``group_index`` = Σ over the reduced axis of the reduction's adjoint terms."""
        axis = self.axis[reduction]
        k = self.running(axis, context)
        element = (k, group_index) if axis == 0 else (group_index, k)
        body = self.inline(self.indexed(self.der.reduction_adjoints[reduction], *element), context + k)
        return self.sum_over(body, k, axis)

    def inline(self, expr: sp.Expr, context: sp.Expr | None = None) -> sp.Expr:
        """Replace every reduction adjoint ∂L/∂r_i by its explicit sum."""
        context = expr if context is None else context
        for name in reversed(list(self.axis)):
            base = sp.IndexedBase(f"grad_{name}")
            for node in [n for n in expr.atoms(sp.Indexed) if n.base == base]:
                expr = expr.xreplace({node: self.adjoint_sum(name, node.indices[0], context + expr)})
        return expr

    def sum_over(self, body: sp.Expr, k: sp.Symbol, axis: int) -> sp.Expr:
        """Σ_k body, term by term, with constants outside the sums, and known sums replaced:
        a spec's ``facts`` (Σ_k t_k = 1) and every mean reduction's definition (Σ_k u_k = n·M)."""
        size = N if axis == 0 else D
        total = sp.S.Zero
        for term in sp.Add.make_args(sp.expand(body, power_exp=False, multinomial=False, log=False, deep=False)):
            outside, inside = [], []
            for factor in sp.Mul.make_args(term):
                (inside if k in factor.free_symbols else outside).append(factor)
            inner = sp.Mul(*inside)
            if not inside:
                total += sp.Mul(*outside) * size
            elif inner.is_Add:
                total += sp.Mul(*outside) * self.sum_over(inner, k, axis)
            else:
                known = self.known_sum(inner, k, axis)
                total += sp.Mul(*outside) * (known if known is not None else sp.Sum(inner, (k, 1, size)))
        return total

    def known_sum(self, inner: sp.Expr, k: sp.Symbol, axis: int) -> sp.Expr | None:
        if not isinstance(inner, sp.Indexed) or k not in inner.indices:
            return None
        group = [i for i in inner.indices if i != k]
        for (operand, fact_axis), value in self.facts.items():
            if fact_axis == axis and inner.base == sp.IndexedBase(str(operand)):
                return value
        for step in self.der.reductions:
            if step.op == "mean" and step.axis == axis and inner.base == sp.IndexedBase(str(step.operand)) and group:
                return (N if axis == 0 else D) * sp.IndexedBase(step.symbol.name)[group[0]]
        return None

    def name_subexpressions(self, expr: sp.Expr, sample: sp.Symbol, feature: sp.Symbol) -> sp.Expr:
        """Write the notes' names (π = σ(Φ), m̂, X̂) where their definitions appear, or, for a name linear
        in the input, where the input can be written through it; the shortest form is kept."""
        for sym, value in self.notation.items():
            for s, f in ((sample, feature), (A1, A0), (sample, A0), (A1, feature)):
                target = self.indexed(value, s, f)
                name = sp.IndexedBase(sym.name)[(s, f) if self.rank == 2 else (f,)]
                expr = expr.xreplace({target: name})
                expr = expr.replace(target, name)
                if target.is_Mul and sp.count_ops(expr) <= MERGE_LIMIT:  # a quotient inside a larger product:
                    # lr·m/((1 − β₁ᵗ)(…)) holds m̂ (000 eq. 23); algebraic substitution, bounded like merged_sums
                    expr = expr.subs(target, name)
        return shortest(expr, *(self.in_terms_of(expr, sym, value) for sym, value in self.notation.items()))

    def in_terms_of(self, expr: sp.Expr, name: sp.Symbol, value: sp.Expr) -> sp.Expr:
        """``expr`` with the input written through a name that is linear in it (X = M + X̂ √(S+ε)
        for X̂ = (X − M)/√(S+ε)), its sums merged again: where the name's definition is spread
        over several factors, the shortest form only appears this way (003 §8's X̂)."""
        if name not in self.solved:
            self.solved[name] = self.solve_for_input(name, value)
        if self.solved[name] is None:
            return expr
        x, solution = self.solved[name]
        base = sp.IndexedBase(x.name)
        swaps = {}
        for node in expr.atoms(sp.Indexed):
            if node.base == base and len(node.indices) == self.rank:
                indices = node.indices if self.rank == 2 else (None, node.indices[0])
                named = sp.IndexedBase(name.name)[node.indices]
                swaps[node] = self.indexed(solution, *indices).xreplace({name: named})
        return merged_sums(expr.xreplace(swaps)) if swaps else expr

    def solve_for_input(self, name: sp.Symbol, value: sp.Expr) -> tuple[sp.Symbol, sp.Expr] | None:
        """(x, x in terms of ``name``) where ``name = value`` is linear in an input x, else None."""
        inputs = [self.der.symbols[a.name] for a in self.der.args_with_role("input")]
        (x, *_) = [x for x in inputs if x in value.free_symbols] or [None]
        if x is None or sp.diff(value, x) == 0 or sp.diff(value, x, 2) != 0:  # linear in x only
            return None
        solutions = sp.solve(sp.Eq(name, value), x)
        return (x, solutions[0]) if len(solutions) == 1 else None  # else a coefficient that may vanish


def final_vjp(der: ElementwiseDerivation, wrt: str, indexer: ElementIndexer, sample: sp.Symbol, feature: sp.Symbol
              ) -> sp.Expr:
    """The VJP (or loss gradient) with respect to ``wrt`` as one closed index expression."""
    arg = der.arg(wrt)
    expr = indexer.indexed(der.vjps[wrt], sample, feature)
    if arg.role == "param":
        if arg.shape:  # Σ over the batch of the per-element contributions
            body = indexer.inline(indexer.indexed(der.vjps[wrt], A1, feature))
            return indexer.name_subexpressions(readable(indexer.sum_over(body, A1, 0)), sample, feature)
        body = indexer.inline(indexer.indexed(der.vjps[wrt], A1, A0))
        return sp.Sum(body, (A1, 1, N), (A0, 1, D))
    return indexer.name_subexpressions(readable(indexer.inline(expr)), sample, feature)


def readable(expr: sp.Expr) -> sp.Expr:
    """Shorter equivalent form for the page: σ(−u) = 1 − σ(u), then a bounded simplify; an
    expression with sums gets its sums merged instead (``merged_sums``)."""
    # a Wild pattern sigmoid(-u) would also match sigmoid(x) with u = -x: test the sign instead
    alt = expr.replace(lambda e: isinstance(e, sigmoid) and e.args[0].could_extract_minus_sign(),
                       lambda e: 1 - sigmoid(-e.args[0]))
    if alt.has(sp.Sum):
        return shortest(expr, merged_sums(expr))
    if sp.count_ops(alt) > 80:
        return expr
    simple = sp.factor_terms(sp.simplify(alt))
    return simple if sp.count_ops(simple) < sp.count_ops(expr) else expr


#: beyond this many operations an expression is printed as derived: expanding it could blow up
MERGE_LIMIT = 200


def shortest(*forms: sp.Expr) -> sp.Expr:
    """The form with the fewest operations, then the fewest sums; the first of those that tie."""
    return min(forms, key=lambda form: (sp.count_ops(form), form.count(sp.Sum)))


def merged_sums(expr: sp.Expr) -> sp.Expr:
    """One Σ per summation index instead of one per term: c₁ Σ_k f₁ + c₂ Σ_k f₂ = Σ_k (c₁f₁ + c₂f₂),
    its body factored, the factors free of k before the Σ, and the factor common to every term in
    front. This turns the batch-norm VJP into 003 §8's shape: A/√(S+ε) (G − (1/n) Σ ...)."""
    if sp.count_ops(expr) > MERGE_LIMIT:
        return expr
    rest, bodies = sp.S.Zero, {}
    for term in sp.Add.make_args(sp.expand_mul(expr)):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(sums) == 1:  # grouped by its outermost index: Σ_{αα'} f = Σ_α' (Σ_α f)
            (summed,) = sums
            inner = summed.function if len(summed.limits) == 1 else sp.Sum(summed.function, *summed.limits[:-1])
            bodies[summed.limits[-1]] = bodies.get(summed.limits[-1], sp.S.Zero) + term / summed * inner
        else:
            rest += term
    if not bodies:
        return expr
    total = rest
    for limit, body in bodies.items():
        factors = sp.Mul.make_args(shortest(sp.factor_terms(body), sp.factor(body)))
        inside = sp.Mul(*(f for f in factors if limit[0] in f.free_symbols))
        total += sp.Mul(*(f for f in factors if limit[0] not in f.free_symbols)) * sp.Sum(inside, limit)
    return sp.factor_terms(total)


def matrix_element(expr: sp.MatrixExpr, row: sp.Expr, col: sp.Expr, prefer: sp.Symbol | None = None) -> sp.Expr:
    """Element (row, col) of a matrix expression, its sums over named indices: α' for the
    batch, α for features (or ``prefer``), never SymPy's dummies."""
    element = expr[row, col]
    for total in element.atoms(sp.Sum):
        dummy, _, upper = total.limits[0]
        if prefer is not None:
            name = prefer
        elif upper.has(N) and A1 not in element.free_symbols:
            name = A1
        else:
            name = A0 if A0 not in element.free_symbols else NU
        element = element.xreplace({total: total.xreplace({dummy: name})})
    return named_inner_sums(element)


def named_inner_sums(expr: sp.Expr) -> sp.Expr:
    """SymPy's dummy indices of the sums a matrix product writes out (i_2, i_3 of a product of three)
    renamed to the document's spare letters (κ, λ)."""
    inner = sorted({v for total in expr.atoms(sp.Sum) for v, *_ in total.limits if isinstance(v, sp.Dummy)}, key=str)
    return expr.xreplace(dict(zip(inner, spare_indices())))


def vector_rows(expr: sp.Expr, der: MatrixDerivation) -> sp.Expr:
    """b[0, α] → b_α for 1×M rows; M[α, 0] → M_α for columns."""
    def fix(node: sp.Basic) -> sp.Basic:
        parent = node.parent
        if parent.shape[0] == 1:
            return sp.IndexedBase(parent.name)[node.j]
        if parent.shape[1] == 1:
            return sp.IndexedBase(parent.name)[node.i]
        return sp.IndexedBase(parent.name)[node.i, node.j]

    return expr.replace(lambda e: isinstance(e, sp.matrices.expressions.matexpr.MatrixElement), fix)
