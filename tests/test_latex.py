"""LaTeX export: documents from the same derivations as the kernels, checked for freshness,
compiled with a real engine, and ending in the boxed results of the notes."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import sympy as sp

from layergen.derive import derive
from layergen.latex.export import check, document, export, render
from layergen.latex.index_form import ElementIndexer, final_vjp, matrix_element, vector_rows
from layergen.latex.notation import A0, A1, B0, B1, INDEX_POOL, MU, NU, name_tex, tex
from layergen.spec.declare import N

from conftest import CATALOG, REPO, derivation

DOCS = REPO / "docs" / "derivations"


def loaded(name: str):  # type: ignore[no-untyped-def]
    return next(s for s in CATALOG if s.name == name)


def final(name: str, wrt: str) -> sp.Expr:
    spec = loaded(name).spec
    ix = ElementIndexer(derivation(name), dict(spec.notation), {(r.operand, r.axis): v for r, v in spec.facts.items()})
    return final_vjp(derivation(name), wrt, ix, B1, B0)


def boxed_in_document(name: str) -> list[str]:
    doc = document(loaded(name))
    return [e.rhs for s in doc.sections for e in s.equations if e.boxed]


def idx(name: str, *indices: sp.Symbol) -> sp.Indexed:
    return sp.IndexedBase(name)[indices]


def test_docs_in_the_repository_are_fresh() -> None:
    assert check(CATALOG, DOCS) == [], "run `layergen latex --out docs/derivations` (and --format md)"
    assert (DOCS / "derivations.tex").exists() and (DOCS / "derivations.md").exists()


def test_check_reports_changed_spec_changed_exporter_and_missing(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    shutil.copytree(DOCS, out)
    mse = out / "mse.tex"
    mse.write_text(mse.read_text().replace(loaded("mse").content_hash, "0123456789abcdef"))
    relu = out / "relu.tex"
    relu.write_text(relu.read_text().replace("Forward map", "Forward"))
    (out / "gelu.md").unlink()
    reasons = {s.path.name: s.reason for s in check(CATALOG, out)}
    assert "spec changed" in reasons.pop("mse.tex")
    assert "content differs" in reasons.pop("relu.tex")
    assert reasons.pop("gelu.md") == "missing"
    assert "content differs" in reasons.pop("derivations.tex", "content differs")  # holds the same hash lines
    assert not reasons
    result = subprocess.run(["layergen", "latex", "--check", str(out)], capture_output=True, text=True)
    assert result.returncode == 1 and "mse.tex" in result.stdout


def test_softmax_cross_entropy_ends_in_003_eq_2_3() -> None:
    expected = (idx("pi", B1, B0) - idx("t", B1, B0)) / N
    assert sp.simplify(final("softmax_cross_entropy", "Phi") - expected) == 0
    assert tex(expected) in boxed_in_document("softmax_cross_entropy")


def test_bce_ends_in_003_eq_2_2() -> None:
    expected = (idx("pi", B1, B0) - idx("t", B1, B0)) / N
    assert sp.simplify(final("bce_logits", "Phi") - expected) == 0
    assert tex(final("bce_logits", "Phi")) in boxed_in_document("bce_logits")


def test_mse_ends_in_003_eq_2_1() -> None:
    assert sp.simplify(final("mse", "Phi") - (idx("Phi", B1, B0) - idx("y", B1, B0)) / N) == 0


def test_dense_ends_in_003_section_9_1() -> None:
    der = derivation("dense")
    G = sp.IndexedBase("grad_A")
    got_x = vector_rows(matrix_element(der.vjps["X"], MU, NU), der)
    got_w = vector_rows(matrix_element(der.vjps["W"], MU, NU), der)
    got_b = vector_rows(matrix_element(der.vjps["b"], 0, MU), der)
    sizes = {N: 2, sp.Symbol("K", integer=True, positive=True): 3, sp.Symbol("M", integer=True, positive=True): 2}
    boxed_x = sp.Sum(G[MU, A0] * idx("W", NU, A0), (A0, 0, sp.Symbol("M", integer=True, positive=True) - 1))
    boxed_w = sp.Sum(G[A1, NU] * idx("X", A1, MU), (A1, 0, N - 1))
    boxed_b = sp.Sum(G[A1, MU], (A1, 0, N - 1))
    for got, boxed in ((got_x, boxed_x), (got_w, boxed_w), (got_b, boxed_b)):
        assert sp.simplify((got - boxed).subs(sizes).doit()) == 0
    boxed = boxed_in_document("dense")
    assert r"\sum_{\alpha} W_{\nu\alpha} \frac{\partial L}{\partial A_{\mu\alpha}}" in boxed
    assert r"\sum_{\alpha'} X_{\alpha'\mu} \frac{\partial L}{\partial A_{\alpha'\nu}}" in boxed
    assert r"\sum_{\alpha'} \frac{\partial L}{\partial A_{\alpha'\mu}}" in boxed


def test_batch_norm_ends_in_003_section_8() -> None:
    """∂L/∂X_{β'β} = A_β/(n√(S_β+ε)) [n G_{β'β} − Σ_α' G_{α'β} − X̂_{β'β} Σ_α' G_{α'β} X̂_{α'β}]."""
    n, eps = 4, sp.Rational(1, 100000)
    got = final("batch_norm_train", "X")
    rng = random.Random(1)
    X = [sp.Rational(rng.randint(-90, 90), 37) for _ in range(n)]
    G = [sp.Rational(rng.randint(-90, 90), 41) for _ in range(n)]
    A = sp.Rational(7, 5)
    M = sum(X) / n
    S = sum((x - M) ** 2 for x in X) / n
    xhat = [(x - M) / sp.sqrt(S + eps) for x in X]
    columns = {"X": X, "grad_F": G, "Xhat": xhat}
    for row in range(n):
        values = {idx("A", B0): A, idx("M", B0): M, idx("S", B0): S, sp.Symbol("epsilon", real=True): eps,
                  idx("X", B1, B0): X[row], idx("grad_F", B1, B0): G[row], idx("Xhat", B1, B0): xhat[row]}
        explicit = got.subs(N, n).doit()
        explicit = explicit.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name in columns and e.indices[0] != B1,
                                    lambda e: columns[e.base.label.name][int(e.indices[0]) - 1])
        value = explicit.xreplace(values)
        boxed = A / (n * sp.sqrt(S + eps)) * (n * G[row] - sum(G) - xhat[row] * sum(g * h for g, h in zip(G, xhat)))
        assert abs(sp.N(value - boxed, 40)) < 1e-30
    # printed as the notes print it: through X̂, its sums merged, ∂L/∂A = Σ_α' ∂L/∂F_α'β X̂_α'β
    assert not got.has(sp.IndexedBase("X")) and got.count(sp.Sum) == 1
    assert final("batch_norm_train", "A") == sp.Sum(idx("grad_F", A1, B0) * idx("Xhat", A1, B0), (A1, 1, N))


SKEW_SPEC = """
import sympy as sp
from layergen.spec import D, N, Elementwise, Mean

X, F, M, S = sp.symbols("X F M S", real=True)
SPEC = Elementwise(name="skew_scale", kind="map", inputs={X: (N, D)},
                   reductions={M: Mean(X, axis=0), S: Mean((X - M) ** 3, axis=0)}, forward={F: (X - M) * S})
"""


def test_a_term_that_sums_to_zero_is_left_out_and_one_that_does_not_is_kept(tmp_path: Path) -> None:
    """∂S/∂X of the batch variance S = (1/n) Σ_α' (X_α' − M)² has a term through the mean, Σ_α' (2/n)(M − X_α')
    ∂M/∂X, that is 0 for every batch: the document leaves it out, as 003 §8 does, and says why. The third
    central moment's term through the mean, Σ_α' −(3/n)(X_α' − M)² ∂M/∂X, is not 0: it stays."""
    from layergen.derive.structure import summed_partial_vanishes
    from layergen.spec.loader import discover

    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "skew_scale.py").write_text(SKEW_SPEC)
    skew = next(s for s in discover([tmp_path]) if s.name == "skew_scale")
    for item, vanishes in ((loaded("batch_norm_train"), True), (loaded("layer_norm"), True), (skew, False)):
        der = derive(item)
        mean, moment = der.reductions
        assert summed_partial_vanishes(der, moment, mean) is vanishes, item.name
        through_mean = [e for s in document(item).sections for e in s.equations
                        if e.lhs.startswith(r"\frac{\partial " + name_tex(moment.symbol.name))]
        assert through_mean, item.name
        for equation in through_mean:
            assert (r"\partial " + name_tex(mean.symbol.name) in equation.rhs) is not vanishes, (item.name, equation.rhs)
            assert ("sums to 0" in equation.note) is vanishes, (item.name, equation.note)


def test_symbols_print_as_the_notes_write_them() -> None:
    text = "\n".join(render([document(s) for s in CATALOG], "tex").values())
    for raw in ("_d)", "Dummy", "_i_1", "grad_", "alpha1", "beta0", "Lambda(", "[0]", "[U+"):
        assert raw not in text, f"raw name {raw!r} in the exported LaTeX"
    assert not re.search(r"(?<!\\)lambda", text), "a raw Python lambda in the exported LaTeX"
    for notes in (r"\alpha'", r"\pi_{\beta'\beta}", r"\epsilon", r"W_{\nu\alpha}", r"b_{\alpha}", r"\sigma\left(",
                  r"{\beta_{1}} \in [0, 1)", r"{a_{0,1}}_{\alpha'\alpha}", r"\hat{X}_{\alpha'\beta}",
                  r"F_{\alpha'\alpha} &= A_{\alpha} \hat{X}_{\alpha'\alpha} + B_{\alpha}",  # 003 §8, through X̂
                  r"- \frac{\operatorname{lr} \hat{m}_{\alpha}}{\epsilon + \sqrt{\hat{v}_{\alpha}}}",  # 000 eq. 23
                  r"$\alpha$ runs over the entries of the flat parameter vector", r"$\alpha$ runs over the batch"):
        assert notes in text
    assert r"\operatorname{beta" not in text and r"\mathrm{0" not in text, "Adam's β₁ and the SOS coefficients a_{0,1}"


#: a subscript made of index letters only: x_{\alpha'\alpha}, \sum_{\alpha'}, \delta_{\alpha\beta}
INDEX_SUBSCRIPT = re.compile(r"_\{((?:\\[a-z]+'?)+)\}")


def test_no_index_letter_is_also_a_name_of_the_spec() -> None:
    """A parameter α read at feature α prints as α_α: each document's index letters avoid the
    names of its spec (arguments, outputs, batch statistics, notation), and keep the notes'
    α, β, μ, ν where nothing collides."""
    from layergen.spec.loader import discover

    checked = 0
    for item in discover([REPO / "tests" / "specs"]):
        der = derive(item)
        names = {a.name for a in der.args} | set(der.outputs) | {r.symbol.name for r in getattr(der, "reductions", ())}
        names |= {s.name for s in dict(getattr(item.spec, "notation", {}) or {})}
        greek = {re.sub(r"([a-z])[0-9]+$", r"\1", n.partition("_")[0]) for n in names}  # beta1 prints as β₁
        doc = document(item)
        text = "\n".join(f"{s.text} {e.lhs} {e.rhs}" for s in doc.sections for e in s.equations)
        letters = {letter for m in INDEX_SUBSCRIPT.finditer(text) for letter in re.findall(r"\\([a-z]+)", m.group(1))}
        assert not letters & greek, f"{item.name}: index letters {sorted(letters & greek)} are also names in the spec"
        if not greek & {"alpha", "beta", "mu", "nu"} and letters:  # the notes' letters, and spare ones for inner sums
            assert "alpha" in letters and letters <= {"alpha", "beta", "mu", "nu", *INDEX_POOL[4:]}, (
                f"{item.name}: {sorted(letters)} instead of the notes' letters")
        checked += bool(letters)
    assert checked >= 40
    leaky = render([document(loaded("leaky_relu"))], "md")["leaky_relu.md"]
    assert r"\alpha x_{\beta'\beta}" in leaky and "Per element; $\\beta'$ runs over the batch" in leaky


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (.ci/run installs it)")
def test_combined_document_compiles_with_pdflatex(tmp_path: Path) -> None:
    export(CATALOG, tmp_path, "tex")
    start = time.perf_counter()
    for _ in range(2):  # twice, for the table of contents
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivations.tex"],
                             cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:]
    seconds = time.perf_counter() - start
    log = (tmp_path / "derivations.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log
    assert not [line for line in log.splitlines() if line.startswith("!")]
    assert (tmp_path / "derivations.pdf").stat().st_size > 50_000
    assert seconds < 60
    single = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "batch_norm_train.tex"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert single.returncode == 0, single.stdout[-3000:]
    # user specs too: names with underscores (v_new) and scalar parameters must typeset
    from layergen.spec.loader import discover

    users = tmp_path / "users"
    export([s for s in discover([REPO / "tests" / "specs"]) if s.path.is_relative_to(REPO / "tests" / "specs")], users, "tex")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivations.tex"],
                         cwd=users, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def test_markdown_uses_mathjax_blocks() -> None:
    text = render([document(loaded("softmax_cross_entropy"))], "md")["softmax_cross_entropy.md"]
    assert "$$\n\\begin{aligned}" in text and "\\boxed{" in text
    assert "**Spec hash:** `" + loaded("softmax_cross_entropy").content_hash + "`" in text


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    unknown = subprocess.run(["layergen", "latex", "nope", "--out", str(tmp_path)], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown spec 'nope'" in unknown.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    unwritable = subprocess.run(["layergen", "latex", "relu", "--out", str(blocker / "sub")], capture_output=True, text=True)
    assert unwritable.returncode == 2 and "argument --out: cannot write to" in unwritable.stderr
    fmt = subprocess.run(["layergen", "latex", "--format", "pdf", "--out", str(tmp_path)], capture_output=True, text=True)
    assert fmt.returncode == 2 and "--format" in fmt.stderr and "'tex', 'md'" in fmt.stderr
    no_out = subprocess.run(["layergen", "latex", "relu"], capture_output=True, text=True)
    assert no_out.returncode == 2 and "--out" in no_out.stderr


def test_every_spec_gets_a_document_with_hash_and_kernels() -> None:
    for item in CATALOG:
        doc = document(item)
        assert doc.content_hash == item.content_hash and doc.sections
        assert doc.kernels, item.name  # (name, operation count) of each generated kernel
