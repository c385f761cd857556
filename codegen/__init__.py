"""Stage 3: lowering derivations to kernel descriptions and rendering generated modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from layergen.codegen.ast import Kernel
from layergen.codegen.render import RenderedModule, render_module, write_if_changed

if TYPE_CHECKING:
    from layergen.derive.derivation import DerivationBase
    from layergen.spec.loader import LoadedSpec

# derive/ and spec/ (SymPy, 0.25 s to import) load inside the functions that need them: the runtime
# imports this package only for the Jinja environment it renders fused network modules with


def lower(der: DerivationBase) -> list[Kernel]:
    """The derivation's kernels, lowered and then compacted (``codegen.transform``)."""
    from layergen.codegen.transform import compact

    return [compact(kernel) for kernel in _lowered(der)]


def _lowered(der: DerivationBase) -> list[Kernel]:
    from layergen.derive.derivation import ElementwiseDerivation, ExpandedDerivation, MatrixDerivation

    if isinstance(der, ElementwiseDerivation):
        from layergen.codegen.lower_elementwise import lower_elementwise

        return lower_elementwise(der)
    if isinstance(der, MatrixDerivation) and der.kind == "bijection":
        from layergen.codegen.lower_linear import lower_linear

        return lower_linear(der)
    if isinstance(der, MatrixDerivation):
        from layergen.codegen.lower_matrix import lower_matrix

        return lower_matrix(der)
    if isinstance(der, ExpandedDerivation):
        from layergen.codegen.lower_expanded import lower_expanded

        return lower_expanded(der)
    raise TypeError(type(der))


def spec_display_path(loaded: LoadedSpec) -> str:
    """The spec's path as written into headers: relative, so output is machine-independent."""
    from layergen.spec.loader import builtin_spec_dir

    builtin = builtin_spec_dir()
    if loaded.path.is_relative_to(builtin):
        return "specs/" + loaded.path.relative_to(builtin).as_posix()
    return f"{loaded.group}/{loaded.path.name}"


def build_module(loaded: LoadedSpec, use_cache: bool = True, der: DerivationBase | None = None) -> RenderedModule:
    """The spec's generated module, from ``der`` if given, else from its derivation (cached on disk)."""
    from layergen.derive import derive

    der = der if der is not None else derive(loaded, use_cache=use_cache)
    return render_module(der, lower(der), spec_display_path(loaded))


def builtin_generated_dir() -> Path:
    import layergen.generated

    return Path(layergen.generated.__path__[0])


@dataclass
class GenerateReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)


def generate(specs: Sequence[LoadedSpec], out_dir: Path, check: bool = False, use_cache: bool = True,
             prune: bool = False, jobs: int = 1) -> GenerateReport:
    """Render every spec into ``out_dir``; with ``check`` only compare and report stale files.

    ``prune`` (for the built-in folder, which must mirror specs/ exactly) also reports, or
    removes, generated modules whose spec no longer exists. Derivations missing from the cache are
    derived on ``jobs`` worker processes (``derive_all``).
    """
    from layergen.derive import derive_all

    report = GenerateReport()
    expected: set[Path] = set()
    for loaded, der in zip(specs, derive_all(specs, use_cache, jobs)):
        module = build_module(loaded, der=der)
        path = out_dir / module.relative_path
        expected.add(path)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == module.text:
            report.unchanged.append(path)
        elif check:
            report.stale.append(path)
        else:
            write_if_changed(path, module.text)
            report.written.append(path)
    if prune and out_dir.is_dir():
        for path in sorted(out_dir.glob("*/*.py")):
            if path not in expected and path.name != "__init__.py":
                report.orphans.append(path)
                if not check:
                    path.unlink()
    return report
