"""The CLI's verbs and exit codes, and the derivation cache."""

from __future__ import annotations

import pickle
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


def test_verify_prints_the_table_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "relu", "mse"]) == 0
    out = capsys.readouterr().out
    assert "max abs err" in out and "max rel err" in out
    assert "2 specs, 4 kernels" in out and "all passed" in out
    assert "largest oracle error / max(1, |ref|), float32" in out


def test_verify_exits_nonzero_when_a_check_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from layergen.verify import checks

    monkeypatch.setattr(checks, "ORACLE_TOL", {np.float64: -1.0, np.float32: -1.0})  # nothing can pass
    assert cli.main(["verify", "tanh"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out


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
