"""Inverses of scalar bijections: checked when declared, solved where SymPy can, else numeric.

Direction convention (DESIGN.md): ``forward`` maps data → latent (density evaluation),
``inverse`` maps latent → data (sampling). A declared inverse is accepted only when
inverse∘forward simplifies to the identity, or agrees with it to 1e-25 at random points
evaluated with 40 significant digits; the same check both ways.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import sympy as sp

from layergen.spec.functions import to_elementary

SOLVE_SECONDS = 10


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Stop a SymPy call that runs too long (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError(f"gave up after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def random_point(symbols: list[sp.Symbol], rng: random.Random) -> dict[sp.Symbol, sp.Float]:
    return {s: sp.Float(rng.uniform(-1.5, 1.5), 40) for s in symbols}


def mismatch(composed: sp.Expr, target: sp.Symbol, others: list[sp.Symbol], seed: int = 0,
             trials: int = 6) -> dict[sp.Symbol, sp.Float] | None:
    """A point where ``composed`` ≠ ``target`` (the identity fails), or None when it holds."""
    composed = to_elementary(composed)
    difference = sp.simplify(composed - target) if sp.count_ops(composed) < 60 else None
    if difference == 0:
        return None
    rng = random.Random(seed)
    for _ in range(trials):
        point = random_point([target, *others], rng)
        value = sp.N(composed.subs(point), 40)
        if not value.is_real or abs(value - point[target]) > sp.Float("1e-25") * (1 + abs(point[target])):
            return point
    return None


def solve_scalar(y_expr: sp.Expr, x: sp.Symbol, y: sp.Symbol, others: list[sp.Symbol]) -> sp.Expr | None:
    """The unique real solution x = h⁻¹(y) of y = h(x), verified numerically, or None."""
    try:
        with time_limit(SOLVE_SECONDS):
            candidates = sp.solve(sp.Eq(y, to_elementary(y_expr)), x, dict=False)
    except (NotImplementedError, TimeoutError, ValueError, TypeError):
        return None
    valid = [c for c in candidates if mismatch(c.subs(y, y_expr), x, others) is None]
    return valid[0] if len(valid) == 1 else None


def check_declared(forward: sp.Expr, inverse: sp.Expr, x: sp.Symbol, y: sp.Symbol,
                   others: list[sp.Symbol], fail: Callable[[str], Exception]) -> None:
    """Raise ``fail(message)`` unless ``inverse`` inverts ``forward`` both ways."""
    bad = mismatch(inverse.subs(y, forward), x, others)
    if bad is not None:
        raise fail(f"does not invert the forward map: inverse(forward({x})) ≠ {x} at {_show(bad)}")
    bad = mismatch(forward.subs(x, inverse), y, others)
    if bad is not None:
        raise fail(f"does not invert the forward map: forward(inverse({y})) ≠ {y} at {_show(bad)}")


def _show(point: Mapping[sp.Symbol, sp.Float]) -> str:
    return ", ".join(f"{k}={float(v):.4g}" for k, v in point.items())


def monotone_direction(dh: sp.Expr, symbols: list[sp.Symbol], seed: int = 0) -> bool | None:
    """True when h' > 0 at random points, False when < 0 there, None when the sign varies."""
    rng = random.Random(seed)
    signs = set()
    for _ in range(12):
        value = sp.N(to_elementary(dh).subs(random_point(symbols, rng)), 20)
        if not value.is_real or value == 0:
            return None
        signs.add(bool(value > 0))
    return signs.pop() if len(signs) == 1 else None
