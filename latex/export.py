"""Writing derivation documents (LaTeX or Markdown) and checking that exported ones are fresh.

Documents are rendered from the same ``Derivation`` objects as the kernels and carry the
same spec hash; ``check`` re-renders and compares, so docs cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from layergen.codegen import lower
from layergen.codegen.render import write_if_changed
from layergen.derive import derive
from layergen.errors import LayergenError
from layergen.latex.document import SpecDocument, build
from layergen.latex.notation import text_tex
from layergen.spec.loader import LoadedSpec

FORMATS = {"tex": ".tex", "md": ".md"}
GROUP_ORDER = ("activations", "layers", "losses", "flows", "optimizers")
COMBINED = "derivations"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("layergen.latex", "templates"), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters["tt"] = lambda s: str(s).replace("_", r"\_")
    env.filters["textex"] = text_tex
    env.filters["prose"] = lambda s: str(s).replace("§", r"\S{}")
    return env


_DOCUMENTS: dict[tuple[Path, str], SpecDocument] = {}


def document(loaded: LoadedSpec) -> SpecDocument:
    """The spec's document, built once per spec file and content in a process (exporting in both formats,
    or exporting and then checking, reuse it); a changed spec has another hash, so it is built anew."""
    key = (loaded.path, loaded.content_hash)
    if key not in _DOCUMENTS:
        der = derive(loaded)
        _DOCUMENTS[key] = build(loaded, der, [(k.name, k.op_count) for k in lower(der)])
    return _DOCUMENTS[key]


def render(docs: Sequence[SpecDocument], fmt: str) -> dict[str, str]:
    """File name → text: one document per spec and the combined one."""
    if fmt not in FORMATS:
        raise LayergenError(f"argument --format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    ext = FORMATS[fmt]
    env = environment()
    files = {f"{d.name}{ext}": env.get_template(f"spec{ext}.j2").render(doc=d) for d in docs}
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    groups: dict[str, list[SpecDocument]] = {}
    for d in sorted(docs, key=lambda d: (order.get(d.group, len(order)), d.group, d.name)):
        groups.setdefault(d.group, []).append(d)
    files[f"{COMBINED}{ext}"] = env.get_template(f"derivations{ext}.j2").render(docs=docs, groups=list(groups.items()))
    return files


def export(specs: Sequence[LoadedSpec], out: Path, fmt: str) -> list[Path]:
    files = render([document(s) for s in specs], fmt)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [out / name for name, text in files.items() if write_if_changed(out / name, text)]
    except OSError as exc:
        raise LayergenError(f"argument --out: cannot write to {out}: {exc.strerror or exc}") from exc


@dataclass
class Stale:
    path: Path
    reason: str


_HASH = re.compile(r"spec hash: ([0-9a-f]+)")


def check(specs: Sequence[LoadedSpec], folder: Path) -> list[Stale]:
    """Every exported document (in each format present) must equal what is rendered now."""
    if not folder.is_dir():
        raise LayergenError(f"argument --check: {folder} is not a folder of exported derivations")
    formats = [f for f, ext in FORMATS.items() if (folder / f"{COMBINED}{ext}").exists()]
    if not formats:
        raise LayergenError(f"argument --check: {folder} holds no {COMBINED}.tex or {COMBINED}.md; export first with `layergen latex --out {folder}`")
    docs = [document(s) for s in specs]
    by_name = {d.name: d for d in docs}
    stale: list[Stale] = []
    for fmt in formats:
        for name, text in render(docs, fmt).items():
            path = folder / name
            if not path.exists():
                stale.append(Stale(path, "missing"))
                continue
            current = path.read_text(encoding="utf-8")
            if current == text:
                continue
            spec = by_name.get(path.stem)
            found = _HASH.search(current)
            if spec is not None and (found is None or found.group(1) != spec.content_hash):
                stale.append(Stale(path, f"spec hash {found.group(1) if found else '?'} ≠ {spec.content_hash}: the spec changed"))
            else:
                stale.append(Stale(path, "content differs from a fresh export"))
    return stale
