"""Shared fixtures: the discovered catalog, derivations and generated modules (loaded once)."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

import pytest

# Each test session derives into its own cache unless the caller chose one, so the suite
# also exercises cold derivation and never depends on a developer's cache. The process that
# creates the directory (pytest itself, or xdist's controller, whose workers inherit the variable)
# holds it for its lifetime and removes it at exit, so test runs do not pile caches up in /tmp.
if "LAYERGEN_CACHE_DIR" not in os.environ:
    _SESSION_CACHE = tempfile.TemporaryDirectory(prefix="layergen-cache-")
    os.environ["LAYERGEN_CACHE_DIR"] = _SESSION_CACHE.name

# Both cores already run a test process each, so a cold start's helper process (``compile_ahead``) would
# only compete with the other tests, and compile functions that many tests never call; it is off unless
# the caller turns it on. ``test_compile_ahead.py`` runs it.
os.environ.setdefault("LAYERGEN_COMPILE_AHEAD", "0")

from layergen.derive import derive  # noqa: E402
from layergen.runtime.modules import import_generated  # noqa: E402
from layergen.spec.loader import LoadedSpec, discover  # noqa: E402

CATALOG: list[LoadedSpec] = discover()
REPO = Path(__file__).resolve().parents[1]


@cache
def derivation(name: str):  # type: ignore[no-untyped-def]
    return derive(next(s for s in CATALOG if s.name == name))


@cache
def module(name: str):  # type: ignore[no-untyped-def]
    from layergen.codegen import builtin_generated_dir

    loaded = next(s for s in CATALOG if s.name == name)
    return import_generated(builtin_generated_dir() / loaded.group / f"{loaded.name}.py")


def call_capturing_arguments(call, values, dtype):  # type: ignore[no-untyped-def]
    """Call a ``KernelCall`` as the verification does (outputs allocated, arrays cast to ``dtype``) and
    return its outputs, its result and the arguments the compiled kernel itself received."""
    captured: list[tuple] = []
    original = call.function
    call.function = lambda *a: captured.append(a) or original(*a)
    try:
        outputs, result = call(values, dtype)
    finally:
        call.function = original
    return outputs, result, captured[0]


def spec_ids() -> list[str]:
    return [s.name for s in CATALOG]


@pytest.fixture(params=spec_ids())
def catalog_spec(request: pytest.FixtureRequest) -> LoadedSpec:
    return next(s for s in CATALOG if s.name == request.param)
