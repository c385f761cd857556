"""Invalid specs are rejected with a SpecError that names the file, the field and the fix.

Each test writes one small spec file into ``tmp_path/group/<name>.py`` and loads it the way
``discover`` does; the CLI tests run the installed ``layergen`` command.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import sympy as sp
from sympy.matrices.exceptions import ShapeError

from layergen.derive import derive
from layergen.errors import SpecError
from layergen.spec.domains import describe, domain_of, in_domain, moved_value
from layergen.spec.loader import LoadedSpec, discover, load_spec_file, select

HEADER = "import sympy as sp\nfrom layergen.spec import D, N, Elementwise, MatrixMap, Sum, broadcast_rows\n"


def write(root: Path, name: str, body: str, header: str = HEADER) -> Path:
    path = root / "group" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + textwrap.dedent(body))
    return path


def load(path: Path) -> LoadedSpec:
    return load_spec_file(path, "group")


def rejected(path: Path, field: str, *phrases: str) -> SpecError:
    """Load ``path``; it must fail naming this file and ``field``, with each phrase in the message."""
    with pytest.raises(SpecError) as info:
        load(path)
    exc = info.value
    assert exc.source == path
    assert exc.field == field, str(exc)
    for phrase in phrases:
        assert phrase in exc.message, exc.message
    assert str(exc).startswith(f"{path}: field '{field}': ")
    return exc


def elementwise(name: str, **fields: str) -> str:
    """Source of an Elementwise spec in x, y (shape (N, D)) plus whatever ``fields`` add."""
    fields = {"kind": '"map"', "inputs": "{x: (N, D)}", "forward": "{y: 2 * x}", **fields}
    body = ",\n    ".join(f"{k}={v}" for k, v in fields.items())
    return (f"x, y, z, a, s = sp.symbols('x y z a s', real=True)\n"
            f"SPEC = Elementwise(\n    name={name!r},\n    {body},\n)\n")


# --- undeclared symbols -----------------------------------------------------------------

def test_undeclared_symbol_in_forward(tmp_path: Path) -> None:
    path = write(tmp_path, "undeclared", elementwise("undeclared", forward="{y: x * z}"))
    exc = rejected(path, "forward", "undeclared")
    assert "z" in exc.message.split("undeclared symbol(s)")[1].split(";")[0]


def test_undeclared_symbol_in_reduction(tmp_path: Path) -> None:
    path = write(tmp_path, "undeclared_red", elementwise(
        "undeclared_red", reductions="{s: Sum(z * x, axis=1)}", forward="{y: x - s}"))
    rejected(path, "reductions", "undeclared symbol(s) z")


# --- shapes -----------------------------------------------------------------------------

def test_param_shape_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_param", elementwise("bad_param", params="{a: (N,)}", forward="{y: a * x}"))
    rejected(path, "params", "shape mismatch", "(D,)")


def test_input_shape_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_inputs", elementwise(
        "bad_inputs", inputs="{x: (N, D), z: (D, N)}", forward="{y: x + z}"))
    rejected(path, "inputs", "shape mismatch", "(N, D)", "(D, N)")


def test_matrix_output_shape_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_dense", """
        K, M = sp.symbols("K M", integer=True, positive=True)
        X, W, b = sp.MatrixSymbol("X", N, K), sp.MatrixSymbol("W", K, M), sp.MatrixSymbol("b", 1, M)
        A = sp.MatrixSymbol("A", N, K)
        SPEC = MatrixMap(name="bad_dense", kind="map", inputs=[X], params=[W, b],
                         forward={A: X * W + broadcast_rows(b, N)})
        """)
    rejected(path, "forward", "shape mismatch", "(N, K)", "(N, M)")


def test_sympy_shape_error_while_executing_spec(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_product", """
        X, W = sp.MatrixSymbol("X", N, 3), sp.MatrixSymbol("W", 4, 2)
        A = sp.MatrixSymbol("A", N, 2)
        SPEC = MatrixMap(name="bad_product", kind="map", inputs=[X], params=[W], forward={A: X * W})
        """)
    line = 1 + path.read_text().splitlines().index('SPEC = MatrixMap(name="bad_product", kind="map", '
                                                    'inputs=[X], params=[W], forward={A: X * W})')
    exc = rejected(path, "file", "ShapeError", f"(line {line})")
    assert isinstance(exc.__cause__, ShapeError)


# --- structure --------------------------------------------------------------------------

def test_missing_forward(tmp_path: Path) -> None:
    path = write(tmp_path, "no_forward", elementwise("no_forward", forward="{}"))
    rejected(path, "forward", "missing forward")


@pytest.mark.parametrize("file_name, name", [("inject", "x; import os"), ("lambda", "lambda")])
def test_invalid_spec_name(tmp_path: Path, file_name: str, name: str) -> None:
    path = write(tmp_path, file_name, elementwise(name))
    rejected(path, "name", "is not a valid name", repr(name), "not a Python keyword")


def test_invalid_symbol_name(tmp_path: Path) -> None:
    path = write(tmp_path, "keyword_symbol", elementwise(
        "keyword_symbol", inputs="{sp.Symbol('import'): (N, D)}", forward="{y: 2 * sp.Symbol('import')}"))
    rejected(path, "inputs", "'import' is not a valid name")


def test_name_differs_from_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "mine", elementwise("other"))
    rejected(path, "name", "'other' must equal the file name 'mine'")


def test_duplicate_spec_names_across_folders(tmp_path: Path) -> None:
    first = write(tmp_path / "a", "dupe", elementwise("dupe"))
    second = write(tmp_path / "b", "dupe", elementwise("dupe", forward="{y: 3 * x}"))
    with pytest.raises(SpecError) as info:
        discover([tmp_path / "a", tmp_path / "b"])
    exc = info.value
    assert exc.source == second
    assert exc.field == "name"
    assert "already" in exc.message and str(first) in exc.message


def test_duplicate_symbol_names(tmp_path: Path) -> None:
    path = write(tmp_path, "twice", elementwise("twice", hyper="{x: 1.0}"))
    rejected(path, "symbols", "'x' is declared twice")


@pytest.mark.parametrize("declared, default, phrase", [
    ("nonnegative=True", "-0.1", "nonnegative (≥ 0)"), ("positive=True", "0.0", "positive (> 0)"),
    ("negative=True", "1", "negative (< 0)"), ("real=True", "float('nan')", "any finite number")])
def test_hyper_default_outside_its_symbols_domain(tmp_path: Path, declared: str, default: str, phrase: str) -> None:
    """The derivation may rely on a hyperparameter's assumptions, so its default must satisfy them."""
    body = f"k = sp.Symbol('k', {declared})\n" + elementwise("domain", hyper=f"{{k: {default}}}", forward="{y: k * x}")
    rejected(write(tmp_path, "domain", body), "hyper", "k's default", phrase)


@pytest.mark.parametrize("declared, ranges, field, phrase", [
    ("real=True", "{k: sp.Interval.Ropen(0, 1)}", "hyper", "k's default 1.5 is outside the domain its symbol and "
                                                           "range declare: in [0, 1)"),
    ("positive=True", "{k: sp.Interval(-2, 0)}", "hyper_ranges", "leave no value"),
    ("real=True", "{z: sp.Interval(0, 1)}", "hyper_ranges", "z is not a hyperparameter; its keys are symbols of "
                                                            "hyper (k)"),
    ("real=True", "{k: (0, 1)}", "hyper_ranges", "k's range must be a SymPy Interval")])
def test_hyper_ranges_are_intervals_of_hyperparameters_holding_their_defaults(
        tmp_path: Path, declared: str, ranges: str, field: str, phrase: str) -> None:
    body = f"k = sp.Symbol('k', {declared})\n" + elementwise("ranged", hyper="{k: 1.5}", hyper_ranges=ranges,
                                                              forward="{y: k * x}")
    rejected(write(tmp_path, "ranged", body), field, phrase)


def test_a_range_narrows_the_sign_and_the_checks_keep_inside_it() -> None:
    """The domain string the generated module records, what it admits, and the moved value the
    verification runs each kernel at (away from the default, inside the domain)."""
    k = sp.Symbol("k", positive=True)
    assert domain_of(k, sp.Interval.Ropen(-1, 1)) == "(0, 1)" and domain_of(k, sp.Interval(-5, sp.oo)) == "positive"
    assert domain_of(sp.Symbol("r", real=True), sp.Interval.open(0, sp.oo)) == "positive"
    assert domain_of(sp.Symbol("t", real=True), sp.Interval(1, sp.oo)) == "[1, inf)"
    assert [in_domain(v, "[0, 1)") for v in (-0.1, 0.0, 0.5, 1.0, float("nan"))] == [False, True, True, False, False]
    assert [in_domain(v, "(0, 0.5]") for v in (0.0, 0.5, 0.6)] == [False, True, False]
    assert describe("[0, 1)") == "in [0, 1)" and describe("positive") == "positive (> 0)"
    assert moved_value(0.9, "[0, 1)") == 0.675 and moved_value(1.0, "[1, inf)") == 1.25
    assert moved_value(0.0, "(-1, 0]") == -0.25 and moved_value(0.0, "[0, 1)") == 0.25


def test_hyper_default_must_be_a_number(tmp_path: Path) -> None:
    body = "k = sp.Symbol('k', real=True)\n" + elementwise("flag", hyper="{k: True}", forward="{y: k * x}")
    rejected(write(tmp_path, "flag", body), "hyper", "k needs a numeric default, got True")


def test_unknown_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "layerkind", elementwise("layerkind", kind='"layer"'))
    rejected(path, "kind", "'layer' is not valid", "valid: map, bijection, loss, optimizer_step")


OPTIMIZER = """
P = sp.Symbol("P", integer=True, positive=True)
theta, g, w, m, theta_new, w_new, m_new, lr = sp.symbols("theta g w m theta_new w_new m_new lr", real=True)
SPEC = Elementwise(name={name!r}, kind="optimizer_step", inputs={inputs}, hyper={{lr: 0.1}}, forward={forward})
"""


@pytest.mark.parametrize("name, inputs, forward, field, phrase", [
    ("no_theta", "{w: (P,), g: (P,)}", "{w_new: w - lr * g}", "inputs", "declare both as inputs; got g, w"),
    ("no_gradient", "{theta: (P,), m: (P,)}", "{theta_new: theta - lr * m}", "inputs", "got m, theta"),
    ("state_only", "{theta: (P,), g: (P,), m: (P,)}", "{m_new: m + g}", "forward", "give 'theta_new'"),
    ("unnamed_output", "{theta: (P,), g: (P,)}", "{w_new: theta - lr * g}", "forward", "named <input>_new"),
])
def test_an_optimizer_step_updates_theta_from_g(tmp_path: Path, name: str, inputs: str, forward: str, field: str,
                                               phrase: str) -> None:
    """The runtime binds an optimizer's parameters and gradient by the names ``theta`` and ``g``, and the
    generated update treats every other rewritten input as state (flushed below the normal range)."""
    path = write(tmp_path, name, OPTIMIZER.format(name=name, inputs=inputs, forward=forward))
    rejected(path, field, phrase)


def test_file_without_spec(tmp_path: Path) -> None:
    path = write(tmp_path, "empty", "x = sp.Symbol('x')\n")
    rejected(path, "SPEC", "defines no SPEC")


# --- declared inverses (checked at derive time) -----------------------------------------

def affine(name: str, inverse: str) -> str:
    return f"""
        x, y, alpha, beta = sp.symbols("x y alpha beta", real=True)
        SPEC = Elementwise(name={name!r}, kind="bijection", inputs={{x: (N, D)}},
                           params={{alpha: (D,), beta: (D,)}},
                           forward={{y: sp.exp(alpha) * x + beta}}, inverse={{x: {inverse}}})
        """


def test_wrong_declared_inverse(tmp_path: Path) -> None:
    path = write(tmp_path, "wrong_inverse", affine("wrong_inverse", "(y - beta) * sp.exp(alpha)"))
    loaded = load(path)  # loading succeeds: the inverse is checked when derived
    with pytest.raises(SpecError) as info:
        derive(loaded, use_cache=False)
    exc = info.value
    assert exc.source == path
    assert exc.field == "inverse"
    assert "does not invert" in exc.message


def test_a_spec_that_fails_on_a_worker_process_reports_its_file_and_field(tmp_path: Path) -> None:
    """``layergen generate`` derives specs missing from the cache on worker processes: the error comes back
    as the one a derivation in this process raises."""
    from layergen.derive import derive_all

    path = write(tmp_path, "wrong_inverse", affine("wrong_inverse", "(y - beta) * sp.exp(alpha)"))
    right = write(tmp_path, "right_inverse", affine("right_inverse", "(y - beta) * sp.exp(-alpha)"))
    with pytest.raises(SpecError) as info:
        derive_all([load(right), load(path)], use_cache=False, jobs=2)
    assert (info.value.source, info.value.field) == (path, "inverse") and "does not invert" in info.value.message


def test_correct_declared_inverse(tmp_path: Path) -> None:
    path = write(tmp_path, "right_inverse", affine("right_inverse", "(y - beta) * sp.exp(-alpha)"))
    der = derive(load(path), use_cache=False)
    assert der.inverse_source == "declared"
    assert set(der.inverse) == {"x"}


# --- selecting specs and the command line -----------------------------------------------

def test_bracket_on_a_map(tmp_path: Path) -> None:
    rejected(write(tmp_path, "bad_bracket", elementwise("bad_bracket", bracket="{x: (-1, 1)}")),
             "bracket", "only a bijection")


@pytest.mark.parametrize("bounds, phrase", [("(1, -1)", "lo < hi"), ("(-s, s)", "undeclared symbol"),
                                            ("-1", "a pair (lo, hi)")])
def test_malformed_bracket(tmp_path: Path, bounds: str, phrase: str) -> None:
    path = write(tmp_path, "bad_bracket", elementwise("bad_bracket", kind='"bijection"', forward="{y: x + x**3}",
                                                      bracket=f"{{x: {bounds}}}"))
    rejected(path, "bracket", phrase)


def test_select_unknown_spec() -> None:
    specs = discover()
    with pytest.raises(SpecError) as info:
        select(specs, ["nope"])
    exc = info.value
    assert "unknown spec 'nope'" in exc.message
    assert "known: " in exc.message and "sigmoid" in exc.message.split("known: ")[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["layergen", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_derive_unknown_spec(tmp_path: Path) -> None:
    result = run_cli("derive", "nope", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "unknown spec" in result.stderr and "'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_out_without_specs(tmp_path: Path) -> None:
    result = run_cli("generate", "--out", str(tmp_path / "X"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--out" in result.stderr and "--specs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "X").exists()


# --- linear bijections: structured factors ---------------------------------------------------

def linear(name: str, factors: str = "X * (P * L).T", **fields: str) -> str:
    """Source of a MatrixMap bijection Y = X·(factors) with square D×D symbols P, L, W."""
    fields = {"kind": '"bijection"', "inputs": "[X]", "params": "[L, W]", "constants": "[P]",
              "structure": '{P: "permutation", L: "unit_lower"}', "forward": "{Y: " + factors + "}", **fields}
    body = ",\n    ".join(f"{k}={v}" for k, v in fields.items())
    return ("X, Y = sp.MatrixSymbol('X', N, D), sp.MatrixSymbol('Y', N, D)\n"
            "P, L, W = (sp.MatrixSymbol(n, D, D) for n in 'PLW')\n"
            "K = sp.MatrixSymbol('K', D, 3)\n"
            f"SPEC = MatrixMap(\n    name={name!r},\n    {body},\n)\n")


def test_the_linear_fixture_is_valid(tmp_path: Path) -> None:
    assert load(write(tmp_path, "lin", linear("lin"))).spec.kind == "bijection"


@pytest.mark.parametrize("fields, field, phrase", [
    ({"factors": "X * (P * L * W).T"}, "structure", "needs a declared structure"),
    ({"structure": '{P: "permutation", L: "triangular"}'}, "structure", "unknown structure 'triangular'"),
    ({"structure": '{P: "upper", L: "unit_lower"}'}, "structure", "move it to params"),
    ({"structure": '{P: "permutation", L: "reversal"}'}, "structure", "move it to constants"),
    ({"structure": '{P: "permutation", L: "unit_lower", K: "upper"}', "params": "[L, W, K]"}, "structure", "square"),
    ({"factors": "X * P.T + X"}, "forward", "the input times square factors"),
    ({"kind": '"map"'}, "structure", "only the factors of a linear bijection"),
])
def test_malformed_linear_bijection(tmp_path: Path, fields: dict[str, str], field: str, phrase: str) -> None:
    factors = fields.pop("factors", "X * (P * L).T")
    rejected(write(tmp_path, "lin", linear("lin", factors, **fields)), field, phrase)
