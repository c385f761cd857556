"""The kernel description: a tiny statement AST between a Derivation and Python source.

Lowering (``codegen.lower_*``) builds ``Kernel`` objects; the Jinja2 templates render
them; ``dump`` prints them for inspection (``layergen generate --dump``), as the
stage printers of pystencils and Devito do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Assign:
    """``target op value``; op is ``=`` or ``+=``."""

    target: str
    value: str
    op: str = "="
    kind: str = "assign"


@dataclass(frozen=True)
class Loop:
    """``for index in range(stop): body``, or ``range(start, stop)`` when ``start`` is given."""

    index: str
    stop: str
    body: tuple["Stmt", ...]
    comment: str = ""
    kind: str = "loop"
    start: str = ""


@dataclass(frozen=True)
class NewtonSolve:
    """Solve h(_x) = value for ``target`` by bracketed Newton/bisection.

    ``evaluate`` assigns ``_h`` = h(_x) and ``_dh`` = h'(_x) from ``_x`` (and element data).
    ``bracket`` assigns ``_lo`` and ``_hi`` from the spec's declared bracket; when it is empty the
    bracket [−2^k, 2^k] is widened until it holds the root. ``spec`` names the spec in errors.
    """

    target: str
    value: str
    evaluate: tuple[Assign, ...]
    increasing: bool
    bracket: tuple[Assign, ...] = ()
    spec: str = ""
    kind: str = "newton"


@dataclass(frozen=True)
class Raw:
    """One line of source that no other node expresses (kept rare)."""

    line: str
    kind: str = "raw"


Stmt = Union[Assign, Loop, NewtonSolve, Raw]


@dataclass(frozen=True)
class KernelArg:
    name: str
    shape: tuple[str, ...]
    role: str  # input, conditioning, target, param, constant, hyper, output, grad_output, grad, scratch
    doc: str = ""


@dataclass
class Kernel:
    """One ``@njit`` function. ``dtype_from`` names the array whose dtype the kernel uses."""

    name: str
    doc: str
    args: list[KernelArg]
    body: tuple[Stmt, ...]
    op_count: int
    dtype_from: str
    returns: str | None = None
    sizes: dict[str, str] = field(default_factory=dict)  # size name -> expression, e.g. _N: x.shape[0]
    hypers: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        """What the kernel returns: ``returns`` if set, else its output arrays (as a tuple)."""
        if self.returns:
            return self.returns
        outs = [a.name for a in self.args if a.role in ("output", "grad")]
        return ", ".join(outs) if len(outs) != 1 else outs[0]


def dump(kernel: Kernel) -> str:
    """Readable text of a kernel description (not Python; for inspection)."""
    lines = [f"kernel {kernel.name}({', '.join(a.name for a in kernel.args)})  ops={kernel.op_count}"]

    def walk(stmts: tuple[Stmt, ...], depth: int) -> None:
        pad = "  " * depth
        for s in stmts:
            if isinstance(s, Loop):
                start = f"{s.start} ≤ " if s.start else ""
                lines.append(f"{pad}for {start}{s.index} < {s.stop}:{'  # ' + s.comment if s.comment else ''}")
                walk(s.body, depth + 1)
            elif isinstance(s, Assign):
                lines.append(f"{pad}{s.target} {s.op} {s.value}")
            elif isinstance(s, NewtonSolve):
                lines.append(f"{pad}{s.target} = solve h(_x) = {s.value} ({'increasing' if s.increasing else 'decreasing'})")
                walk(s.evaluate, depth + 1)
            else:
                lines.append(f"{pad}{s.line}")

    walk(kernel.body, 1)
    lines.append(f"  return {kernel.result}")
    return "\n".join(lines)
