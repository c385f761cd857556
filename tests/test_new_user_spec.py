"""As a new user would: a spec outside the package, generated with the CLI, imported and verified."""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from layergen.derive import derive
from layergen.runtime.modules import import_generated
from layergen.spec.loader import discover
from layergen.verify.checks import verifier_for
from layergen.verify.report import format_row

from conftest import REPO

ELU = textwrap.dedent('''
    """Exponential linear unit: x for x > 0, α(eˣ − 1) otherwise."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise

    x, y = sp.symbols("x y", real=True)
    alpha = sp.Symbol("alpha", positive=True)
    SPEC = Elementwise(name="elu", kind="map", doc=__doc__, inputs={x: (N, D)}, hyper={alpha: 1.0},
                       forward={y: sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))})
''')

# A transformer with no closed-form inverse: SymPy cannot solve y = x + c·tanh(x) for x, so
# layergen generates a bracketed Newton/bisection inverse from the derived h'(x).
SOFT_SHIFT = textwrap.dedent('''
    """y = x + σ(g) tanh(x): monotone (h' ≥ 1 − σ(g) > 0), inverse only numeric."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise

    x, y, g = sp.symbols("x y g", real=True)
    SPEC = Elementwise(name="soft_shift", kind="bijection", doc=__doc__, inputs={x: (N, D)},
                       conditioning={g: (N, D)}, forward={y: x + sp.tanh(x) / (1 + sp.exp(-g))})
''')


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def user_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("user")
    specs = base / "my_specs"
    (specs / "activations").mkdir(parents=True)
    (specs / "flows").mkdir(parents=True)
    (specs / "activations" / "elu.py").write_text(ELU)
    (specs / "flows" / "soft_shift.py").write_text(SOFT_SHIFT)
    before = tree_digest(REPO / "specs") + tree_digest(REPO / "generated")
    result = subprocess.run(["layergen", "generate", "--specs", str(specs), "--out", str(base / "gen")],
                            capture_output=True, text=True, cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert before == tree_digest(REPO / "specs") + tree_digest(REPO / "generated"), "no other file may change"
    return specs, base / "gen"


@pytest.mark.parametrize("name, group", [("elu", "activations"), ("soft_shift", "flows")])
def test_user_spec_generates_imports_and_verifies(user_tree: tuple[Path, Path], name: str, group: str) -> None:
    specs, out = user_tree
    path = out / group / f"{name}.py"
    assert path.exists()
    module = import_generated(path)
    loaded = next(s for s in discover([specs]) if s.name == name)
    assert module.SPEC_HASH == loaded.content_hash
    rows = verifier_for(derive(loaded), module, seed=0).run()
    assert rows and all(r.ok for r in rows), "\n".join(format_row(r) for r in rows if not r.ok)


def test_numeric_inverse_is_used_and_rejects_nan(user_tree: tuple[Path, Path]) -> None:
    specs, out = user_tree
    loaded = next(s for s in discover([specs]) if s.name == "soft_shift")
    der = derive(loaded)
    assert der.inverse is None and der.inverse_source == "numeric"
    module = import_generated(out / "flows" / "soft_shift.py")
    y = np.array([[0.5, -40.0, 1e6]])
    g = np.zeros_like(y)
    x, logdet = np.empty_like(y), np.empty(1)
    module.inverse(y, g, x, logdet)
    again, _ = np.empty_like(y), np.empty(1)
    module.forward(x, g, again, _)
    assert np.allclose(again, y, rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="numeric inverse"):
        module.inverse(np.array([[np.nan]]), np.zeros((1, 1)), np.empty((1, 1)), np.empty(1))


def test_cli_verify_on_user_specs_prints_the_table(user_tree: tuple[Path, Path]) -> None:
    specs, out = user_tree
    result = subprocess.run(["layergen", "verify", "elu", "--specs", str(specs), "--out", str(out)],
                            capture_output=True, text=True, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "max abs err" in result.stdout and "all passed" in result.stdout
    assert "elu" in result.stdout and "finite-diff" in result.stdout
