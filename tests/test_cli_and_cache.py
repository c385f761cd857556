"""The CLI's verbs and exit codes, and the derivation cache."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layergen import cli
from layergen.derive import cache, derive
from layergen.spec.loader import load_spec_file

from conftest import CATALOG


def test_list_shows_every_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for loaded in CATALOG:
        assert loaded.name in out
    assert f"{len(CATALOG)} specs" in out


def test_derive_prints_the_derivation_and_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["derive", "softmax", "affine_coupling", "--kernels"]) == 0
    out = capsys.readouterr().out
    assert "lse = logsumexp over axis 1 of x" in out
    assert "∂L/∂x = (grad_lse + grad_y)*exp(x - lse)" in out
    assert "log|det J| = Σ_d s" in out and "inverse (solved)" in out
    assert "kernel forward_vjp(" in out and "ops=" in out
    assert cli.main(["derive", "leaky_relu", "dropout", "adam"]) == 0
    out = capsys.readouterr().out
    assert "alpha        hyper         shape () = 0.01, nonnegative" in out  # the symbol's assumption
    assert "p            hyper         shape () = 0.5, in [0, 1)" in out  # the spec's declared range
    assert "epsilon      hyper         shape () = 1e-08, positive\n" in out  # a range that is a sign: named as one
    assert "t            hyper         shape () = 1.0, in [1, inf)\n" in out
    specs = str(Path(__file__).parent / "specs")
    assert cli.main(["derive", "scaled_residual", "--specs", specs]) == 0
    assert "c            hyper         shape () = 0.5\n" in capsys.readouterr().out  # a real symbol: no domain to state


def test_verify_sweeps_seeds_and_reports_each_checks_worst_margin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "relu", "sos_polynomial", "--seeds", "3-4"]) == 0
    out = capsys.readouterr().out
    assert "seed 3: " in out and "seed 4: " in out and "seed 5" not in out
    assert "worst over seeds 3–4" in out and "2 specs × 2 seeds" in out and "all passed" in out
    # every check that ran has its row: the sum-of-squares flow's round trips in both dtypes among them
    assert out.count("round-trip ") == 2 and "oracle           float32" in out
    assert cli.main(["verify", "relu", "--seeds", "4-3"]) == 2
    assert "argument --seeds: expected A-B with 0 ≤ A ≤ B (such as 0-24) or one seed, got '4-3'" in capsys.readouterr().err


def test_a_sweep_with_a_failure_lists_it_under_its_seed_and_exits_one(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 1 of the sweep fails one check (a verifier whose rows say so): its line, its row, exit 1."""
    import layergen.verify.checks as checks

    real = checks.verifier_for

    def failing_at_seed_one(der, module, seed):  # type: ignore[no-untyped-def]
        verifier = real(der, module, seed)
        run = verifier.run

        def run_and_fail():  # type: ignore[no-untyped-def]
            rows = run()
            if seed == 1:
                rows[0] = dataclasses.replace(rows[0], ok=False, scaled=1.0)
            return rows
        verifier.run = run_and_fail
        return verifier

    monkeypatch.setattr(checks, "verifier_for", failing_at_seed_one)
    assert cli.main(["verify", "relu", "--seeds", "0-2", "--jobs", "1"]) == 1  # in this process, patched
    out = capsys.readouterr().out
    assert "seed 0: 6 checks, all passed" in out and "seed 1: 6 checks, 1 FAILED" in out
    assert "\n  relu " in out and "FAIL" in out and "1 specs × 3 seeds, 18 checks" in out and "1 FAILED" in out


def test_verify_prints_the_table_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "relu", "mse"]) == 0
    out = capsys.readouterr().out
    assert "max abs err" in out and "max rel err" in out
    assert "2 specs, 4 kernels" in out and "all passed" in out
    assert "largest oracle error / max(1, |ref|), float32" in out


def test_verify_exits_nonzero_when_a_check_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from layergen.verify import checks

    monkeypatch.setattr(checks, "ORACLE_TOL", {np.float64: -1.0, np.float32: -1.0})  # nothing can pass
    assert cli.main(["verify", "tanh", "--jobs", "1"]) == 1  # in this process, patched
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out


def test_verify_on_worker_processes_prints_what_one_process_prints(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs verified on two spawned workers: the same rows, in the catalog's order, as in this process."""
    from layergen.verify import parallel

    tables = []
    for jobs in ("1", "2"):
        if jobs == "2":  # from here on, only the (spawned, unpatched) workers can verify
            monkeypatch.setattr(parallel, "_rows", lambda *args: pytest.fail("verified in this process"))
        assert cli.main(["verify", "softplus", "relu", "mse", "--jobs", jobs]) == 0
        tables.append([line for line in capsys.readouterr().out.splitlines() if " in " not in line])
    assert tables[0] == tables[1] and len(tables[0]) > 10
    for command in ("verify", "generate", "latex"):
        assert cli.main([command, "--jobs", "0"]) == 2
        assert "argument --jobs: must be a positive integer (worker processes), got 0" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "generate" in capsys.readouterr().out


def test_cache_hit_skips_derivation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAYERGEN_CACHE_DIR", str(tmp_path))
    loaded = next(s for s in CATALOG if s.name == "gelu")
    first = derive(loaded)
    entries = list((tmp_path / "derivations").glob("gelu-*.pkl"))
    assert len(entries) == 1 and loaded.content_hash in entries[0].name

    import layergen.derive.elementwise as elementwise

    monkeypatch.setattr(elementwise, "derive_elementwise", lambda *a: pytest.fail("derived again"))
    assert derive(loaded).vjps == first.vjps


def test_corrupt_cache_entry_is_a_miss(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAYERGEN_CACHE_DIR", str(tmp_path))
    loaded = next(s for s in CATALOG if s.name == "silu")
    derive(loaded)
    (entry,) = (tmp_path / "derivations").glob("silu-*.pkl")
    entry.write_bytes(b"not a pickle")
    assert cache.load(loaded.content_hash, "silu") is None
    again = derive(loaded)
    assert pickle.loads(entry.read_bytes()).vjps == again.vjps


def test_editing_a_spec_changes_its_hash(tmp_path: Path) -> None:
    spec = tmp_path / "g" / "cube.py"
    spec.parent.mkdir()
    source = ('import sympy as sp\nfrom layergen.spec import D, N, Elementwise\nx, y = sp.symbols("x y", real=True)\n'
              'SPEC = Elementwise(name="cube", kind="map", inputs={x: (N, D)}, forward={y: x**3})\n')
    spec.write_text(source)
    first = load_spec_file(spec, "g")
    spec.write_text(source.replace("x**3", "x**3 + x"))
    second = load_spec_file(spec, "g")
    assert first.content_hash != second.content_hash
    assert derive(first).vjps != derive(second).vjps


def test_fused_module_keys_follow_the_text_of_the_kernels_they_compile_in(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    """Numba's cache of a fused step compiles the kernels in and does not notice when they change: the
    cache key must, even when only the code generator changed (same spec, new kernel text)."""
    import types

    from layergen.runtime import kernel_catalog, modules
    from layergen.runtime.flow_architecture import FlowArchitecture
    from layergen.runtime.network import Architecture

    before = Architecture(4, (8, 3)).key(), FlowArchitecture().key()
    real = modules.load_builtin
    edited = tmp_path / "dense.py"
    edited.write_text(Path(real("dense").__file__).read_text() + "\n# regenerated by a newer layergen\n")
    def fake(name: str, group: str | None = None) -> object:
        return types.SimpleNamespace(__file__=str(edited)) if name == "dense" else real(name, group)

    monkeypatch.setattr(modules, "load_builtin", fake)  # the flows' lookup
    monkeypatch.setattr(kernel_catalog, "load_builtin", fake)  # the networks'

    after = Architecture(4, (8, 3)).key(), FlowArchitecture().key()
    assert after[0] != before[0] and after[1] != before[1]


def test_the_runtime_imports_no_sympy() -> None:
    """A warm start from Numba's cache has 1 s (issue 3); importing SymPy alone takes about 0.45 s of it on
    the 2-core machine, so training and sampling import only ``layergen.conventions`` of the spec language."""
    code = ("import sys, layergen.runtime.network, layergen.runtime.flow_run, layergen.runtime.predict, "
            "layergen.cli_flows; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sympy')[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
