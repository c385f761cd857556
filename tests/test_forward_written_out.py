"""The forward map written out element by element, as an oracle for what is read off a derivation.

1. Every boxed gradient the LaTeX export prints is the derivative of the spec's forward map. The export
   rewrites the derivation's VJPs for the page: reductions' adjoints inlined as sums, sums merged,
   common factors pulled out, the spec's notation (X̂, π, m̂) written in. The oracle: the forward map for
   a batch of 3 × 2 (reductions as explicit sums), the scalar L = Σ ∂L/∂y · y (+ Σ ∂L/∂logdet · logdet
   for a bijection; the loss itself for a loss) differentiated by SymPy, both evaluated at random
   rationals to 30 digits.
2. A generated module's ``SAMPLE_BY_SAMPLE`` (which a network's layers need) says whether an output
   row reads another row of the inputs.
"""

from __future__ import annotations

import random

import pytest
import sympy as sp

from layergen.latex.index_form import ElementIndexer, final_vjp
from layergen.latex.notation import B0, B1
from layergen.spec.declare import D, Elementwise, N

from conftest import CATALOG, derivation

ROWS, COLUMNS = 3, 2
# read off the specs, not their derivations: a module-level derive would run at collection, in every
# xdist worker, before the session's derivation cache holds anything (about 20 s of each worker's start)
ELEMENTWISE = [s.name for s in CATALOG if isinstance(s.spec, Elementwise) and s.spec.kind != "optimizer_step"]


def random_value(rng: random.Random, role: str) -> sp.Rational:
    """Away from 0 (the kinks of ReLU, |·|, leaky ReLU); parameters positive (scales, variances);
    targets in (0, 1) (probabilities for BCE)."""
    if role == "param":
        return sp.Rational(rng.randint(20, 60), 40)
    if role == "target":
        return sp.Rational(rng.randint(1, 39), 40)
    return sp.Rational(rng.choice((-1, 1)) * rng.randint(4, 80), 37)


class Batch:
    """The spec's arguments for a batch of ROWS × COLUMNS: symbols for what is differentiated,
    rationals for the rest; reductions and outputs written out per element."""

    def __init__(self, name: str, seed: int) -> None:
        self.der = der = derivation(name)
        loaded = next(s for s in CATALOG if s.name == name)
        rng = random.Random(seed)
        self.rank = len(der.args_with_role("input")[0].shape)
        self.rows = ROWS if self.rank == 2 or der.args_with_role("input")[0].shape == ("N",) else ROWS * COLUMNS
        self.columns = COLUMNS if self.rank == 2 else 1
        self.values: dict[sp.Symbol, sp.Rational] = {}  # the element symbols' values
        self.arrays: dict[str, dict[tuple[int, ...], sp.Expr]] = {}  # name → (i, j) → symbol or value
        for a in der.args:
            if a.role == "hyper":
                continue
            shape = self.element_shape(a.shape)
            table = {}
            for index in shape:
                symbol = sp.Symbol(f"{a.name}_{'_'.join(map(str, index))}", real=True)
                table[index] = symbol
                self.values[symbol] = random_value(rng, a.role)
            self.arrays[a.name] = table
        for fact, total in loaded.spec.facts.items():  # Σ_k t_k = 1 for one-hot targets: scale each row
            target = self.arrays[str(fact.operand)]
            for i in range(1, self.rows + 1):
                row = [target[(i, j)] for j in range(1, self.columns + 1)]
                scale = sp.Rational(total) / sum(self.values[s] for s in row)
                for s in row:
                    self.values[s] *= scale
        self.hypers = {der.symbols[a.name]: sp.nsimplify(a.default) for a in der.args if a.role == "hyper"}
        self.reductions: dict[str, dict[int, sp.Expr]] = {}
        for step in der.reductions:
            groups = range(1, (self.rows if step.axis == 1 else self.columns) + 1)
            self.reductions[step.symbol.name] = {g: self.reduce(step, g) for g in groups}

    def element_shape(self, shape: tuple[str, ...]) -> list[tuple[int, ...]]:
        sizes = [{"N": self.rows, "D": self.columns}.get(s, self.rows) for s in shape]
        if len(shape) == 2:
            return [(i, j) for i in range(1, sizes[0] + 1) for j in range(1, sizes[1] + 1)]
        if len(shape) == 1:
            return [(i,) for i in range(1, sizes[0] + 1)]
        return [()]

    def at(self, expr: sp.Expr, i: int, j: int) -> sp.Expr:
        """``expr`` at element (i, j): every argument, hyperparameter and earlier reduction substituted."""
        table: dict[sp.Symbol, sp.Expr] = {**self.hypers, N: self.rows, D: self.columns}
        for a in self.der.args:
            if a.role == "hyper":
                continue
            arr = self.arrays[a.name]
            if len(a.shape) == 2:
                table[self.der.symbols[a.name]] = arr[(i, j)]
            elif len(a.shape) == 1:
                table[self.der.symbols[a.name]] = arr[(j,) if a.shape == ("D",) else (i,)]
            else:
                table[self.der.symbols[a.name]] = arr[()]
        for name, groups in self.reductions.items():
            axis = next(s.axis for s in self.der.reductions if s.symbol.name == name)
            table[self.der.symbols[name]] = groups[i if axis == 1 else j]
        return sp.sympify(expr).xreplace(table)

    def reduce(self, step, group: int) -> sp.Expr:  # type: ignore[no-untyped-def]
        if step.axis == 1:
            terms = [self.at(step.operand, group, j) for j in range(1, self.columns + 1)]
        else:
            terms = [self.at(step.operand, i, group) for i in range(1, self.rows + 1)]
        size = len(terms)
        return {"sum": sp.Add(*terms), "mean": sp.Add(*terms) / size,
                "logsumexp": sp.log(sp.Add(*(sp.exp(t) for t in terms)))}[step.op]

    def elements(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(1, self.rows + 1) for j in range(1, self.columns + 1)]


def objective(batch: Batch, rng: random.Random) -> tuple[sp.Expr, dict[str, dict[tuple[int, ...], sp.Rational]]]:
    """The scalar whose gradient the boxed results are, and the adjoints it weighs the outputs by."""
    der, adjoints = batch.der, {}
    if der.kind == "loss":
        (ell,) = der.outputs.values()
        total = sp.Add(*(batch.at(ell, i, j) for i, j in batch.elements()))
        return (total / batch.rows if der.reduction == "mean" else total), adjoints
    total = sp.S.Zero
    for o, expr in der.outputs.items():
        adjoints[o] = {(i, j): sp.Rational(rng.randint(-30, 30), 11) for i, j in batch.elements()}
        total += sp.Add(*(adjoints[o][(i, j)] * batch.at(expr, i, j) for i, j in batch.elements()))
    if der.kind == "bijection":
        adjoints["logdet"] = {(i,): sp.Rational(rng.randint(-30, 30), 13) for i in range(1, batch.rows + 1)}
        total += sp.Add(*(adjoints["logdet"][(i,)] * batch.at(der.logdet, i, j) for i, j in batch.elements()))
    return total, adjoints


def printed_value(batch: Batch, boxed: sp.Expr, index: tuple[int, ...], adjoints: dict,  # type: ignore[type-arg]
                  notation: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """The boxed expression at one element, its sums expanded over the small batch and every
    indexed object (arguments, batch statistics, notation, adjoints) given its value."""
    expr = boxed.subs({N: batch.rows, D: batch.columns}).doit()
    expr = expr.xreplace({B1: index[0], B0: index[-1]})
    notation_names = {s.name: value for s, value in notation.items()}

    def value(node: sp.Indexed) -> sp.Expr:
        name, idx = str(node.base.label), tuple(int(k) for k in node.indices)
        if name.startswith("grad_"):
            return adjoints[name[5:]][idx if name != "grad_logdet" else idx[:1]]
        if name in batch.reductions:
            return batch.reductions[name][idx[0]]
        if name in notation_names:
            return batch.at(notation_names[name], *(idx if len(idx) == 2 else (idx[0], idx[0])))
        return batch.arrays[name][idx]

    expr = expr.replace(lambda e: isinstance(e, sp.Indexed), value)
    return expr.xreplace(batch.hypers)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_each_boxed_gradient_is_the_derivative_of_the_forward_map(name: str) -> None:
    der = derivation(name)
    spec = next(s for s in CATALOG if s.name == name).spec
    indexer = ElementIndexer(der, dict(spec.notation), {(r.operand, r.axis): v for r, v in spec.facts.items()})
    batch = Batch(name, seed=7)
    total, adjoints = objective(batch, random.Random(8))
    checked = 0
    for a in der.differentiable:
        boxed = final_vjp(der, a.name, indexer, B1, B0)
        for index, symbol in batch.arrays[a.name].items():
            expected = sp.diff(total, symbol).xreplace(batch.values)
            element = index if index else (1, 1)
            got = printed_value(batch, boxed, element, adjoints, dict(spec.notation)).xreplace(batch.values)
            difference = sp.N(got - expected, 30)
            assert abs(difference) <= 1e-20 * (1 + abs(sp.N(expected, 30))), (
                f"{name}: printed ∂L/∂{a.name} at {index} is {sp.N(got, 15)}, the forward map's derivative {sp.N(expected, 15)}")
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_a_module_says_whether_its_rows_depend_on_other_rows(name: str) -> None:
    """``SAMPLE_BY_SAMPLE`` (which a network's layers need) against the forward map written out: does
    any output of the first row read an argument of another row?"""
    from conftest import module

    batch = Batch(name, seed=3)
    der = batch.der
    other_rows = {symbol for arr in batch.arrays.values() for index, symbol in arr.items()
                  if len(index) == 2 and index[0] != 1}
    first_row = [batch.at(expr, 1, j) for expr in der.outputs.values() for j in range(1, batch.columns + 1)]
    mixes = any(value.free_symbols & other_rows for value in first_row)
    assert module(name).SAMPLE_BY_SAMPLE is (not mixes or batch.rank == 1)


def test_a_matrix_map_that_mixes_rows_is_found_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A matrix map's rows are read off its explicit elements: centring the columns over the batch,
    Y = X − (1/N) 1 1ᵀ X, mixes them; the dense layer does not."""
    from layergen.derive import derive
    from layergen.derive.structure import samples_independent
    from layergen.spec.loader import load_spec_file

    spec = tmp_path / "layers" / "centre_rows.py"
    spec.parent.mkdir()
    spec.write_text('"""Y = X − (1/N) 1 1ᵀ X."""\nimport sympy as sp\nfrom layergen.spec import N, MatrixMap\n'
                    'K = sp.Symbol("K", integer=True, positive=True)\nX, Y = sp.MatrixSymbol("X", N, K), sp.MatrixSymbol("Y", N, K)\n'
                    'SPEC = MatrixMap(name="centre_rows", kind="map", doc=__doc__, inputs=[X], params=[],\n'
                    '                 forward={Y: X - sp.OneMatrix(N, N) * X / N})\n')
    assert not samples_independent(derive(load_spec_file(spec, "layers")))
    assert samples_independent(derivation("dense")) and samples_independent(derivation("masked_dense"))
