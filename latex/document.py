"""Building a format-neutral document for one derivation: sections of text and equations.

Text uses inline ``$...$`` math only, and equations are (lhs, rhs) pairs of LaTeX, so the
same document renders to LaTeX and to MathJax Markdown. Every formula comes from the
``Derivation`` (the kernels' source); nothing is typed here but connecting prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from layergen.derive.derivation import DerivationBase, ElementwiseDerivation, ExpandedDerivation, MatrixDerivation
from layergen.derive.structure import summed_partial_vanishes
from layergen.latex.index_form import ElementIndexer, final_vjp, matrix_element, named_inner_sums, readable, vector_rows
from layergen.latex.notation import (A0, A1, B0, B1, MU, NU, index_letters, letters_avoiding, loss_letter, name_tex,
                                     subscript, tex)
from layergen.spec.declare import Elementwise
from layergen.spec.loader import LoadedSpec

STRUCTURE_REASON = {
    "diagonal": r"each output depends on its own input only, so $J$ is diagonal and $\log|\det J|$ is the sum of the logs of its diagonal (triangular-map theorem, 000 eq. 72)",
    "lower-triangular": r"$y_i$ depends on $x_{1:i}$ only, so $J$ is lower-triangular and $\det J = \prod_i \partial y_i/\partial x_i$ (000 eq. 72)",
    "upper-triangular": r"$J$ is upper-triangular, so $\det J$ is the product of its diagonal (000 eq. 72)",
    "block-triangular": r"$J$ is block-triangular, so $\det J$ is the product of the determinants of its diagonal blocks",
    "dense": r"$J$ has no zero pattern to exploit, so $\log|\det J|$ comes from the symbolic determinant",
}


@dataclass
class Equation:
    lhs: str
    rhs: str
    boxed: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        self.rhs = self.rhs.replace("+ -", "-")


@dataclass
class Section:
    title: str
    text: str = ""
    equations: list[Equation] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


@dataclass
class SpecDocument:
    name: str
    group: str
    kind: str
    level: str
    content_hash: str
    doc: str
    arguments: list[tuple[str, str, str, str]]
    sections: list[Section]
    kernels: list[tuple[str, int]]


#: a hyperparameter's domain (``layergen.spec.domains``) as a relation; ``real`` needs none
DOMAIN_TEX = {"positive": "> 0", "nonnegative": r"\geq 0", "negative": "< 0", "nonpositive": r"\leq 0"}


def interval_tex(domain: str) -> str:
    """An interval domain (``[0, 1)``) in LaTeX, with ∞ for inf."""
    return domain.replace("-inf", r"-\infty").replace("inf", r"\infty")


def partial(num: str, den: str) -> str:
    return rf"\frac{{\partial {num}}}{{\partial {den}}}"


def total(*indices: sp.Symbol) -> str:
    r"""Σ over index roles, in the document's letters: ``total(A1, A0)`` → ``\sum_{\alpha'\alpha}``."""
    return r"\sum" + subscript(*indices)


def delta(*pairs: tuple[sp.Symbol, sp.Symbol]) -> str:
    """Kronecker deltas of index roles: ``delta((A1, B1), (A0, B0))`` → ``δ_{α'β'} δ_{αβ}``."""
    return " ".join(r"\delta" + subscript(*pair) for pair in pairs)


def build(loaded: LoadedSpec, der: DerivationBase, kernels: list[tuple[str, int]]) -> SpecDocument:
    arguments = []
    for a in der.args:
        shape = "scalar" if not a.shape else r"$" + r" \times ".join(name_tex(s) if not s.isdigit() else s for s in
                                                                      ("n" if s == "N" else "d" if s == "D" else s for s in a.shape)) + "$"
        extra = "trainable" if a.trainable else (f"default {a.default:g}" if a.default is not None else "")
        if a.init is not None:
            extra += f", initially {a.init:g}"
        if a.role == "hyper" and a.domain in DOMAIN_TEX:  # the assumption the derivation was made under
            extra += rf", ${name_tex(a.name)} {DOMAIN_TEX[a.domain]}$"
        elif a.role == "hyper" and a.domain != "real":  # a declared range: [0, 1)
            extra += rf", ${name_tex(a.name)} \in {interval_tex(a.domain)}$"
        arguments.append((f"${name_tex(a.name)}$", a.role, shape, extra))
    names = [a.name for a in der.args] + list(der.outputs) + [r.symbol.name for r in getattr(der, "reductions", ())]
    names += [symbol.name for symbol in dict(getattr(loaded.spec, "notation", {}) or {})]
    with index_letters(letters_avoiding(names)):
        if isinstance(der, ElementwiseDerivation):
            sections = elementwise_sections(loaded.spec, der)
        elif isinstance(der, MatrixDerivation):
            sections = matrix_sections(der)
        else:
            sections = expanded_sections(der)
    notes = Section("Stability rewrites and conventions", items=list(der.rewrites) + list(der.conventions))
    if not notes.items:
        notes.items = ["none were needed"]
    sections.append(notes)
    return SpecDocument(der.name, der.group, der.kind, der.level, der.content_hash, (der.doc or "").strip(),
                        arguments, sections, kernels)


def elementwise_sections(spec: Elementwise, der: ElementwiseDerivation) -> list[Section]:
    ix = ElementIndexer(der, dict(spec.notation), {(r.operand, r.axis): v for r, v in spec.facts.items()})
    at = ix.indexed
    if ix.rank == 2:
        forward = Section("Forward map", f"Per element; ${tex(A1)}$ runs over the batch, ${tex(A0)}$ over the features (003 §8).")
    else:  # a vector: the batch (a per-sample value), or the flat parameters (penalties, optimizer steps)
        (axis,) = der.args_with_role("input")[0].shape
        over = {"N": "the batch", "D": "the features"}.get(axis, "the entries of the flat parameter vector")
        forward = Section("Forward map", f"Per element; ${tex(A0)}$ runs over {over}.")
    for step in der.reductions:
        k = A0 if step.axis == 1 else A1
        idx = (A1, k) if step.axis == 1 else (k, A0)
        lhs = tex(sp.IndexedBase(step.symbol.name)[A1 if step.axis == 1 else A0])
        body = tex(at(step.operand, *idx))
        rhs = {"sum": rf"\sum_{{{tex(k)}}} {body}", "mean": rf"\frac{{1}}{{{'d' if step.axis == 1 else 'n'}}} \sum_{{{tex(k)}}} {body}",
               "logsumexp": rf"\log \sum_{{{tex(k)}}} e^{{{body}}}"}[step.op]
        forward.equations.append(Equation(lhs, rhs))
    for sym, value in spec.notation.items():  # defined before the outputs that are written with them
        element = (A1, A0) if ix.rank == 2 else (A0,)
        forward.equations.append(Equation(tex(sp.IndexedBase(sym.name)[element]), tex(at(value, A1, A0)), note="notation"))
    for o, e in der.outputs.items():
        forward.equations.append(Equation(tex(sp.IndexedBase(o)[A1, A0] if ix.rank == 2 else sp.IndexedBase(o)[A0]),
                                          tex(through_notation(ix, at(e, A1, A0)))))
    sections = [forward]
    if der.kind == "optimizer_step":
        return sections
    if der.kind == "loss":
        (ell, expr), = der.outputs.items()
        sections[0].equations.append(Equation(loss_letter(), rf"\frac{{1}}{{n}} {total(A1, A0)} {name_tex(ell)}{subscript(A1, A0)}",
                                              note="the batch mean (003 §2)"))
    if der.kind == "bijection":
        sections.append(jacobian_section(der, ix))
    for a in der.differentiable:
        sections.append(vjp_section(der, ix, a.name, spec))
    if der.kind == "bijection":
        sections.append(inverse_section(der, ix))
    return sections


def through_notation(ix: ElementIndexer, value: sp.Expr) -> sp.Expr:
    """An output's forward map written with the spec's notation (Adam's θ − lr m̂/(√v̂ + ε), batch
    norm's A X̂ + B), unless that leaves the name alone (softmax's y = π says nothing)."""
    named = ix.name_subexpressions(value, A1, A0)
    return value if isinstance(named, sp.Indexed) and any(str(named.base.label) == s.name for s in ix.notation) else named


def vjp_section(der: ElementwiseDerivation, ix: ElementIndexer, name: str, spec: Elementwise) -> Section:
    arg = der.arg(name)
    loss = der.kind == "loss"
    title = (f"Gradient of the loss with respect to ${name_tex(name)}$" if loss else
             f"Vector-Jacobian product for ${name_tex(name)}$")
    sec = Section(title)
    v = name_tex(name)
    if arg.role == "param" and arg.shape:
        target = v + subscript(B0)
    elif arg.role == "param":
        target = v
    else:
        target = v + subscript(B1, B0)
    element = subscript(A1, A0)
    if loss:
        (ell,) = der.outputs
        sec.equations.append(Equation(partial(loss_letter(), target), rf"\frac{{1}}{{n}} {total(A1, A0)} {partial(name_tex(ell) + element, target)}",
                                      note="chain rule (003 §4)"))
    else:
        terms = " + ".join(rf"{partial(loss_letter(), name_tex(o) + element)} {partial(name_tex(o) + element, target)}" for o in der.outputs)
        sec.equations.append(Equation(partial(loss_letter(), target), rf"{total(A1, A0)} {terms}", note="chain rule (003 §4)"))
    depends = reductions_depending_on(der, name)
    for o in der.outputs:
        parts = der.partials[o]
        if name in parts:
            deltas = delta((A1, B1), (A0, B0)) if arg.role != "param" else (delta((A0, B0)) if arg.shape else "")
            coefficient = "" if parts[name] == 1 else grouped(ix.name_subexpressions(ix.indexed(parts[name], A1, A0), A1, A0)) + r" \,"
            rhs = rf"{coefficient} {deltas}".strip() or "1"
            for step in der.reductions:
                if step.symbol.name in parts and step.symbol.name in depends:
                    r_idx = tex(sp.IndexedBase(step.symbol.name)[A1 if step.axis == 1 else A0])
                    named = ix.name_subexpressions(ix.indexed(parts[step.symbol.name], A1, A0), A1, A0)
                    rhs += rf" + {tex(named)} {partial(r_idx, target)}"
            sec.equations.append(Equation(partial(name_tex(o) + element, target), rhs))
    for step in der.reductions:
        if step.symbol.name in depends:
            group = A1 if step.axis == 1 else A0
            match = B1 if step.axis == 1 else B0
            r_idx = tex(sp.IndexedBase(step.symbol.name)[group])
            rhs = rf"{grouped(ix.indexed(step.partials.get(name, 0), B1, B0))} \, {delta((group, match))}"
            note = f"{step.op} over the {'features' if step.axis == 1 else 'batch'}"
            for earlier in der.reductions:
                if earlier.symbol.name in step.partials and earlier.symbol.name in depends:
                    k = A0 if step.axis == 1 else A1
                    element = (group, k) if step.axis == 1 else (k, group)
                    inner = tex(sp.IndexedBase(earlier.symbol.name)[group])
                    if summed_partial_vanishes(der, step, earlier):  # as the notes leave it out (003 §8)
                        note += rf"; the term through ${inner}$ sums to 0"
                        continue
                    rhs += rf" + {total(k)} {grouped(ix.indexed(step.partials[earlier.symbol.name], *element))} {partial(inner, target)}"
            sec.equations.append(Equation(partial(r_idx, target), rhs, note=note))
    if der.reductions:
        collected = ix.indexed(der.vjps[name], B1, B0) if not (arg.role == "param") else None
        if collected is not None:
            sec.equations.append(Equation(partial(loss_letter(), target), tex(collected), note="collecting the terms"))
        for step in reversed(der.reductions):
            group = B1 if step.axis == 1 else B0
            k = ix.running(step.axis, sp.S.Zero + group)
            element = (group, k) if step.axis == 1 else (k, group)
            adj = ix.sum_over(ix.indexed(der.reduction_adjoints[step.symbol.name], *element), k, step.axis)
            adj = ix.name_subexpressions(readable(adj), B1, B0)
            sec.equations.append(Equation(partial(loss_letter(), tex(sp.IndexedBase(step.symbol.name)[group])), tex(adj),
                                          note="adjoint of the reduction"))
    sec.equations.append(Equation(partial(loss_letter(), target), tex(final_vjp(der, name, ix, B1, B0)), boxed=True))
    return sec


def reductions_depending_on(der: ElementwiseDerivation, name: str) -> set[str]:
    """The reductions whose value depends on ``name``, directly or through earlier ones."""
    found: set[str] = set()
    for step in der.reductions:
        if name in step.partials or any(r in found for r in step.partials):
            found.add(step.symbol.name)
    return found


def grouped(expr: sp.Expr) -> str:
    """LaTeX of a factor: a sum gets parentheses before it is multiplied by δ's."""
    return rf"\left({tex(expr)}\right)" if sp.sympify(expr).is_Add else tex(expr)


def jacobian_section(der: ElementwiseDerivation, ix: ElementIndexer) -> Section:
    (x,) = [a.name for a in der.args_with_role("input")]
    (y,) = der.outputs
    sec = Section("Jacobian and log-determinant", f"Structure: {der.jacobian_structure}; {STRUCTURE_REASON[der.jacobian_structure]}.")
    dh = der.partials[y][x]
    sec.equations.append(Equation(partial(name_tex(y) + subscript(A1, A0), name_tex(x) + subscript(B1, B0)),
                                  rf"{tex(ix.indexed(dh, A1, A0))} \, {delta((A1, B1), (A0, B0))}"))
    sec.equations.append(Equation(r"\log|\det J" + subscript(A1) + "|", rf"{total(A0)} {grouped(ix.indexed(der.logdet, A1, A0))}" if der.logdet != 0 else "0", boxed=True))
    per_feature = {a.name for a in der.args if a.role == "param"} | {r.symbol.name for r in der.reductions}
    for v, e in der.logdet_partials.items():
        sec.equations.append(Equation(partial(r"\log|\det J" + subscript(B1) + "|", name_tex(v) + (subscript(B0) if v in per_feature else subscript(B1, B0))),
                                      tex(ix.indexed(e, B1, B0)), boxed=True))
    return sec


def inverse_section(der: ElementwiseDerivation, ix: ElementIndexer) -> Section:
    (x,) = [a.name for a in der.args_with_role("input")]
    sec = Section("Inverse (latent to data)")
    if der.inverse is not None:
        sec.text = {"declared": "Declared in the spec and checked: inverse(forward(x)) = x and forward(inverse(y)) = y.",
                    "solved": "Solved by SymPy from the forward map and checked at random points."}[der.inverse_source]
        sec.equations.append(Equation(name_tex(x) + subscript(A1, A0), tex(ix.indexed(der.inverse[x], A1, A0)), boxed=True))
    elif der.numeric_inverse is None:  # batch statistics
        sec.text = ("The statistics are functions of the batch being transformed, so this training-mode map has no inverse "
                    "of its own; sampling uses the evaluation-mode spec, whose statistics are running averages.")
        return sec
    else:
        ni = der.numeric_inverse
        bracket = ("the spec's bracket $" + tex(ni.bracket[0]) + r" \le x \le " + tex(ni.bracket[1])
                   + "$ (a value outside its image is an error)" if ni.bracket else "a bracket $[-2^k, 2^k]$ widened until it holds the root")
        sec.text = ("No closed form: each element solves $h(x) = y$ by Newton steps safeguarded by bisection inside "
                    + bracket + ", using the derived $h'$; $h$ is strictly " + ("increasing." if ni.increasing else "decreasing."))
        sec.equations += [Equation("h(x)", tex(ni.h)), Equation("h'(x)", tex(ni.dh))]
    sec.equations.append(Equation(r"\log|\det J^{-1}" + subscript(A1) + "|", r"-\log|\det J" + subscript(A1) + "|", note="at the recovered $x$"))
    return sec


def matrix_sections(der: MatrixDerivation) -> list[Section]:
    (out, expr), = der.outputs.items()
    loss = loss_letter()  # 𝓛 where a factor is named L (LU mixing)
    forward_element = vector_rows(matrix_element(expr, A1, A0, prefer=B0), der)
    sections = [Section("Forward map", "In index notation (003 §9.1).",
                        [Equation(tex(sp.IndexedBase(out)[A1, A0]), tex(forward_element))])]
    for name, vjp in der.vjps.items():
        m = der.symbols[name]
        row_vector = m.shape[0] == 1
        target = m[0, MU] if row_vector else m[MU, NU]
        shown = tex(vector_rows(target, der))
        sec = Section(f"Vector-Jacobian product for ${name_tex(name)}$")
        derivative = named_inner_sums(vector_rows(sp.diff(expr[A1, A0], target).doit(), der))
        element = name_tex(out) + subscript(A1, A0)
        sec.equations.append(Equation(partial(element, shown), tex(derivative)))
        sec.equations.append(Equation(partial(loss, shown), rf"{total(A1, A0)} {partial(loss, element)} {partial(element, shown)}",
                                      note="chain rule (003 §4)"))
        final = vector_rows(matrix_element(vjp, 0 if row_vector else MU, MU if row_vector else NU), der)
        sec.equations.append(Equation(partial(loss, shown), tex(final), boxed=True))
        sec.equations.append(Equation(partial(loss, name_tex(name)), tex(vjp), note="the same, as a matrix product (BLAS)"))
        sections.append(sec)
    if der.kind == "bijection":
        from layergen.latex.linear_sections import linear_sections

        sections += linear_sections(der, loss)
    return sections


def expanded_sections(der: ExpandedDerivation) -> list[Section]:
    forward = Section("Forward map")
    for name, comps in der.outputs.items():
        forward.equations += [Equation(name_tex(f"{name}{k}"), tex(e)) for k, e in enumerate(comps)]
    sections = [forward]
    jac = Section("Jacobian", f"Structure: {der.jacobian_structure}.",
                  [Equation("J", NotesMatrix(der.jacobian))])
    if der.kind == "bijection":
        jac.text += " " + STRUCTURE_REASON[der.jacobian_structure] + "."
        jac.equations.append(Equation(r"\log|\det J|", tex(der.logdet), boxed=True))
    sections.append(jac)
    loss = loss_letter()
    vjp = Section("Vector-Jacobian products", rf"$\partial {loss}/\partial x_j = \sum_k \partial {loss}/\partial y_k \, J_{{kj}}$"
                  + (rf" $+ \, \partial {loss}/\partial \log|\det J| \cdot \partial \log|\det J|/\partial x_j$" if der.kind == "bijection" else ""))
    vjp.equations += [Equation(partial(loss_letter(), name_tex(v)), tex(e), boxed=True) for v, e in der.vjps.items()]
    sections.append(vjp)
    if der.inverse is not None:
        inv = Section("Inverse (latent to data)", f"{der.inverse_source.capitalize()} and checked at random points.")
        for name, comps in der.inverse.items():
            inv.equations += [Equation(name_tex(c.name), tex(e), boxed=True) for c, e in zip(der.inputs[name], comps)]
        sections.append(inv)
    return sections


def NotesMatrix(matrix: sp.Matrix) -> str:  # noqa: N802 - reads as a constructor of LaTeX text
    rows = [" & ".join(tex(matrix[i, j]) for j in range(matrix.cols)) for i in range(matrix.rows)]
    return r"\begin{pmatrix} " + r" \\ ".join(rows) + r" \end{pmatrix}"
