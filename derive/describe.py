"""Readable text of a derivation (``layergen derive NAME``)."""

from __future__ import annotations

import sympy as sp

from layergen.derive.derivation import DerivationBase, ElementwiseDerivation, ExpandedDerivation, MatrixDerivation
from layergen.spec.domains import DOMAINS


def _fmt(expr: object) -> str:
    return sp.sstr(expr, order="none")


def describe(der: DerivationBase) -> str:
    lines = [f"{der.name}  ({der.group}, {der.level} {der.kind}, spec hash {der.content_hash})"]
    if der.doc:
        lines += ["", *("  " + line for line in der.doc.strip().splitlines())]
    lines += ["", "arguments:"]
    for a in der.args:
        extra = " trainable" if a.trainable else (f" = {a.default}" if a.default is not None else "")
        if a.init is not None:
            extra += f", starts at {a.init:g}"
        if a.role == "hyper" and a.domain != "real":  # the assumption the derivation was made under
            extra += f", {a.domain if a.domain in DOMAINS else 'in ' + a.domain}"
        lines.append(f"  {a.name:<12} {a.role:<13} shape {tuple(a.shape)}{extra}")
    if isinstance(der, ElementwiseDerivation):
        lines += _elementwise(der)
    elif isinstance(der, MatrixDerivation):
        lines += ["", "forward:"] + [f"  {o} = {_fmt(e)}" for o, e in der.outputs.items()]
        lines += ["", "VJPs (G = ∂L/∂output):"] + [f"  ∂L/∂{v} = {_fmt(e)}" for v, e in der.vjps.items()]
    elif isinstance(der, ExpandedDerivation):
        lines += _expanded(der)
    if der.rewrites:
        lines += ["", "stability rewrites applied:"] + [f"  {r}" for r in der.rewrites]
    if der.conventions:
        lines += ["", "conventions:"] + [f"  {c}" for c in der.conventions]
    return "\n".join(lines)


def _elementwise(der: ElementwiseDerivation) -> list[str]:
    lines = []
    if der.reductions:
        lines += ["", "reductions:"]
        for step in der.reductions:
            lines.append(f"  {step.symbol} = {step.op} over axis {step.axis} of {_fmt(step.operand)}")
    lines += ["", "forward (per element):"] + [f"  {o} = {_fmt(e)}" for o, e in der.outputs.items()]
    if der.kind == "optimizer_step":
        return lines
    if der.reduction_adjoints:
        lines += ["", "reduction adjoints (summed over the reduced axis):"]
        lines += [f"  grad_{r} = Σ {_fmt(e)}" for r, e in der.reduction_adjoints.items()]
    title = "loss gradients (L = (1/N) Σ ℓ):" if der.kind == "loss" else "VJPs (grad_<o> = ∂L/∂<o>):"
    lines += ["", title] + [f"  ∂L/∂{v} = {_fmt(e)}" for v, e in der.vjps.items()]
    if der.logdet is not None:
        lines += ["", f"Jacobian: {der.jacobian_structure}", f"log|det J| = Σ_d {_fmt(der.logdet)}"]
        lines += [f"  ∂/∂{v}: {_fmt(e)}" for v, e in der.logdet_partials.items()]
        if der.inverse is not None:
            lines += [f"inverse ({der.inverse_source}):"] + [f"  {k} = {_fmt(e)}" for k, e in der.inverse.items()]
        elif der.numeric_inverse is not None:
            ni = der.numeric_inverse
            lines += ["inverse (numeric): bracketed Newton/bisection on", f"  h  = {_fmt(ni.h)}", f"  h' = {_fmt(ni.dh)}"]
    return lines


def _expanded(der: ExpandedDerivation) -> list[str]:
    lines = ["", "forward:"]
    for name, comps in der.outputs.items():
        lines += [f"  {name}[{i}] = {_fmt(e)}" for i, e in enumerate(comps)]
    if der.jacobian is not None:
        lines += ["", f"Jacobian ({der.jacobian_structure}):", *("  " + row for row in sp.pretty(der.jacobian).splitlines())]
    lines += ["", "VJPs:"] + [f"  ∂L/∂{v} = {_fmt(e)}" for v, e in der.vjps.items()]
    if der.logdet is not None:
        lines += ["", f"log|det J| = {_fmt(der.logdet)}"]
    if der.inverse is not None:
        lines += [f"inverse ({der.inverse_source}):"]
        for name, comps in der.inverse.items():
            lines += [f"  {name}[{i}] = {_fmt(e)}" for i, e in enumerate(comps)]
    return lines
