"""Rendering kernels into ``generated/<group>/<name>.py`` with Jinja2, and the staleness check.

The environment is built once (cached), with ``StrictUndefined`` so a template typo is an
error, never an empty string. Output is deterministic: same spec ⇒ same bytes; files are
rewritten only when their bytes change, so Numba's on-disk cache stays valid.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from layergen.codegen.ast import Kernel, NewtonSolve, Loop

if TYPE_CHECKING:  # the runtime renders its fused modules with this environment: it must not import SymPy
    from layergen.derive.derivation import DerivationBase


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("layergen.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = _pyrepr
    env.filters["zip"] = lambda first, *rest: zip(first, *rest)
    return env


def _pyrepr(value: object) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_pyrepr(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_pyrepr(k)}: {_pyrepr(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _uses_tolerance(kernel: Kernel) -> bool:
    def walk(stmts: tuple) -> bool:
        return any(isinstance(s, NewtonSolve) or (isinstance(s, Loop) and walk(s.body)) for s in stmts)

    return walk(kernel.body)


@dataclass(frozen=True)
class RenderedModule:
    relative_path: Path  # <group>/<name>.py
    text: str


def render_module(der: DerivationBase, kernels: list[Kernel], spec_path: str) -> RenderedModule:
    from layergen.derive.structure import samples_independent  # here: the runtime imports this module without SymPy

    hyper_defaults = {a.name: a.default for a in der.args_with_role("hyper")}
    hyper_domains = {a.name: a.domain for a in der.args_with_role("hyper")}
    param_inits = {a.name: a.init for a in der.args_with_role("param") if a.init is not None}
    loss_reduction = getattr(der, "reduction", "mean") if der.kind == "loss" else None
    element_by_element = der.level == "elementwise" and not getattr(der, "reductions", None)
    sample_by_sample = samples_independent(der)
    summary = (der.doc or "").strip().splitlines()[0] if der.doc and der.doc.strip() else der.name
    text = environment().get_template("module.py.j2").render(
        name=der.name, level=der.level, kind=der.kind, content_hash=der.content_hash, spec_path=spec_path,
        summary=summary, kernels=kernels, hyper_defaults=hyper_defaults, hyper_domains=hyper_domains, param_inits=param_inits,
        loss_reduction=loss_reduction,
        element_by_element=element_by_element, sample_by_sample=sample_by_sample, uses_tolerance=_uses_tolerance,
    )
    return RenderedModule(Path(der.group) / f"{der.name}.py", text)


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically when the content differs; return whether the file changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return True
