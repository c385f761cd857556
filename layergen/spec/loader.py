"""Discovering spec files: ``specs/`` of the package plus any ``--specs DIR``.

A spec file is a Python file ``<dir>/<group>/<name>.py`` (or ``<dir>/<name>.py``) that
defines ``SPEC``. Files are imported by path, never as part of a package, so a user's
specs can live anywhere. The spec's content hash is the SHA-256 of the file's bytes: it
keys the derivation cache and is written into the generated module's header.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from layergen.errors import SpecError
from layergen.spec.declare import Spec, SpecBase
from layergen.spec.validate import validate


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec together with where it came from and its content hash."""

    spec: Spec
    path: Path
    group: str
    content_hash: str

    @property
    def name(self) -> str:
        return self.spec.name


def builtin_spec_dir() -> Path:
    import layergen.specs

    return Path(layergen.specs.__path__[0])


def spec_files(root: Path) -> list[Path]:
    """Spec files below ``root``, sorted for determinism (private files skipped)."""
    if not root.is_dir():
        raise SpecError(root, "--specs", "is not a folder of spec files (<dir>/<group>/<name>.py)")
    return sorted(
        p for p in root.rglob("*.py")
        if not p.name.startswith("_") and "__pycache__" not in p.parts
    )


def content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


_GROUP = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def load_spec_file(path: Path, group: str) -> LoadedSpec:
    """Import one spec file by path and validate its ``SPEC``."""
    if not _GROUP.match(group):
        raise SpecError(path, "group", f"the folder name {group!r} becomes a package name in generated/: use "
                        "letters, digits and '_', starting with a letter")
    digest = content_hash(path)
    module_name = f"layergen_userspec_{group}_{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(path, "file", "cannot be imported as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # report where in the spec file the error arose
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise SpecError(path, "file", f"executing the spec raised {type(exc).__name__}{line}: {exc}") from exc
    spec = getattr(module, "SPEC", None)
    if spec is None:
        raise SpecError(path, "SPEC", "the file defines no SPEC (expected SPEC = Elementwise(...), MatrixMap(...) or Expanded(...))")
    if not isinstance(spec, SpecBase):
        raise SpecError(path, "SPEC", f"is a {type(spec).__name__}; expected Elementwise, MatrixMap or Expanded")
    spec.source = path
    validate(spec, path)
    return LoadedSpec(spec=spec, path=path, group=group, content_hash=digest)


def discover(extra_dirs: Sequence[Path] = (), include_builtin: bool = True) -> list[LoadedSpec]:
    """All specs, built-in first, then each ``--specs`` folder; names must be unique."""
    roots: list[Path] = ([builtin_spec_dir()] if include_builtin else []) + [Path(d) for d in extra_dirs]
    loaded: list[LoadedSpec] = []
    seen: dict[str, Path] = {}
    for root in roots:
        for path in spec_files(root):
            group = path.parent.name if path.parent != root else "user"
            item = load_spec_file(path, group)
            if item.name in seen:
                raise SpecError(path, "name", f"'{item.name}' is already the name of the spec in {seen[item.name]}; spec names must be unique")
            seen[item.name] = path
            loaded.append(item)
    return loaded


def select(specs: Iterable[LoadedSpec], names: Sequence[str]) -> list[LoadedSpec]:
    """The specs named in ``names`` (all when empty); an unknown name is an error."""
    specs = list(specs)
    if not names:
        return specs
    by_name = {s.name: s for s in specs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SpecError(None, "NAME", f"unknown spec {', '.join(map(repr, unknown))}; known: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]


