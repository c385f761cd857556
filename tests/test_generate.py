"""generated/ is deterministic machine output, checked for staleness, imported (never exec'd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from layergen.codegen import build_module, builtin_generated_dir, generate
from layergen.errors import SpecError

from conftest import CATALOG, REPO


def test_output_is_byte_identical_across_runs_and_cache_states() -> None:
    """A derivation made now renders the same module as the same derivation read back from the derivation
    cache, and as the committed module, which another process derived at another time (with another hash
    seed); then ``layergen generate --check``, as CI runs it, passes on the committed tree. The catalog is
    derived once here (about 20 s): the cached copies are these derivations stored and loaded again, and
    the command reads them from the same cache."""
    from layergen.derive import cache, derive

    for loaded in CATALOG:
        derived = derive(loaded, use_cache=False)
        cache.store(derived)
        fresh = build_module(loaded, der=derived)
        cached = build_module(loaded, der=cache.load(loaded.content_hash, loaded.name))
        assert fresh.text == cached.text
        committed = builtin_generated_dir() / fresh.relative_path
        assert committed.read_text(encoding="utf-8") == fresh.text, f"{committed} is stale"
    result = subprocess.run([sys.executable, "-m", "layergen.cli", "generate", "--check"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_derivations_missing_from_the_cache_are_made_on_worker_processes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``derive_all`` (``layergen generate``'s derivations): in the specs' order, those in the cache loaded in
    this process, the others derived on spawned workers, which store them; each renders its committed module."""
    import pytest

    import layergen.derive as derive_stage
    from layergen.derive import cache, derive_all

    monkeypatch.setenv("LAYERGEN_CACHE_DIR", str(tmp_path))
    picked = [s for s in CATALOG if s.name in ("relu", "softplus", "mse")]
    derive_stage.derive(picked[0])  # one of them in the cache
    monkeypatch.setattr(derive_stage, "derive", lambda *args, **kwargs: pytest.fail("derived in this process"))
    derived = derive_all(picked, jobs=2)
    assert [der.name for der in derived] == [loaded.name for loaded in picked]
    for loaded, der in zip(picked, derived):
        module = build_module(loaded, der=der)
        assert module.text == (builtin_generated_dir() / module.relative_path).read_text(encoding="utf-8")
        assert cache.load(loaded.content_hash, loaded.name) is not None


def test_header_names_spec_hash_and_op_counts() -> None:
    for loaded in CATALOG:
        text = build_module(loaded).text
        header = text.splitlines()[:3]
        assert "DO NOT EDIT" in header[0]
        assert f"spec hash {loaded.content_hash}" in header[1]
        assert header[2].startswith("# kernels: ") and " ops)" in header[2]
        assert f"SPEC_HASH = '{loaded.content_hash}'" in text
        assert "exec(" not in text


def test_check_reports_edited_missing_and_orphaned_files(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    shutil.copytree(builtin_generated_dir(), out, ignore=shutil.ignore_patterns("__pycache__"))
    assert not generate(CATALOG, out, check=True, prune=True).stale
    edited = out / "activations" / "relu.py"
    edited.write_text(edited.read_text() + "# hand edit\n")
    (out / "losses" / "mse.py").unlink()
    orphan = out / "activations" / "removed_spec.py"
    orphan.write_text("# a module whose spec is gone\n")
    report = generate(CATALOG, out, check=True, prune=True)
    assert sorted(p.name for p in report.stale) == ["mse.py", "relu.py"]
    assert report.orphans == [orphan]
    assert "# hand edit" in edited.read_text(), "--check must not write"
    report = generate(CATALOG, out, prune=True)
    assert not generate(CATALOG, out, check=True, prune=True).stale and not orphan.exists()


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    generate(CATALOG[:3], out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.py")}
    report = generate(CATALOG[:3], out)
    assert not report.written and len(report.unchanged) == 3
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*.py")}


def test_cli_check_exits_nonzero_and_lists_stale_user_modules(tmp_path: Path) -> None:
    specs = tmp_path / "specs" / "activations"
    specs.mkdir(parents=True)
    (specs / "square.py").write_text(textwrap.dedent('''
        import sympy as sp
        from layergen.spec import D, N, Elementwise
        x, y = sp.symbols("x y", real=True)
        SPEC = Elementwise(name="square", kind="map", inputs={x: (N, D)}, forward={y: x**2})
    '''))
    out = tmp_path / "out"
    run = lambda *a: subprocess.run(["layergen", *a, "--specs", str(tmp_path / "specs"), "--out", str(out)],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path)
    assert run("generate", "--check").returncode == 1
    assert run("generate").returncode == 0
    assert run("generate", "--check").returncode == 0
    (specs / "square.py").write_text((specs / "square.py").read_text().replace("x**2", "x**3"))
    stale = run("generate", "--check")
    assert stale.returncode == 1 and "square.py" in stale.stdout


def test_numba_cache_makes_the_second_process_warm(tmp_path: Path) -> None:
    """cache=True works because modules are real files: a second process loads, not compiles."""
    out = tmp_path / "gen"
    generate([s for s in CATALOG if s.name == "gelu"], out)
    script = textwrap.dedent(f'''
        import numpy as np
        from pathlib import Path
        from layergen.runtime.modules import import_generated
        m = import_generated(Path({str(out / "activations" / "gelu.py")!r}))
        x = np.linspace(-3, 3, 12).reshape(3, 4)
        y = np.empty_like(x)
        m.forward(x, y)
        print(sum(m.forward.stats.cache_hits.values()), sum(m.forward.stats.cache_misses.values()))
    ''')
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    hits, misses = map(int, first.stdout.split())
    assert hits == 0 and misses >= 1, "the first process compiles"
    hits, misses = map(int, second.stdout.split())
    assert hits >= 1 and misses == 0, "the second process loads the compiled kernel from the cache"


def test_spec_text_cannot_inject_code(tmp_path: Path) -> None:
    """A docstring full of quotes and code stays a string in the generated module."""
    folder = tmp_path / "specs" / "activations"
    folder.mkdir(parents=True)
    (folder / "tricky.py").write_text(textwrap.dedent('''
        import sympy as sp
        from layergen.spec import D, N, Elementwise
        x, y = sp.symbols("x y", real=True)
        SPEC = Elementwise(name="tricky", kind="map", doc='Evil """ + __import__("os").system("touch PWNED") + """ end\\\\',
                           inputs={x: (N, D)}, forward={y: 2 * x})
    '''))
    out = tmp_path / "out"
    from layergen.spec.loader import discover
    from layergen.runtime.modules import import_generated

    generate([s for s in discover([tmp_path / "specs"]) if s.name == "tricky"], out)
    module = import_generated(out / "activations" / "tricky.py")
    assert "Evil" in module.__doc__ and not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_group_folder_must_be_a_plain_name(tmp_path: Path) -> None:
    import pytest

    from layergen.spec.loader import load_spec_file

    bad = tmp_path / "my-group"
    bad.mkdir()
    (bad / "anything.py").write_text("SPEC = None\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(bad / "anything.py", "my-group")
    assert info.value.field == "group"
