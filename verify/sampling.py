"""Test points: random ones, and awkward ones read off the derived expressions.

Awkward points (DESIGN.md, verification): 0 and ±1e-7, large |x|, and every switch point
of a piecewise map (conditions of ``Piecewise``, arguments of ``Heaviside``/``Max``/``Min``),
where the kink convention of ``derive.rules`` decides the derivative. Inputs that appear
under ``log`` or a fractional power are sampled positive.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from layergen.derive.inverse import time_limit

LARGE = {np.float64: 30.0, np.float32: 15.0}


def switch_points(exprs: list[sp.Expr], symbol: sp.Symbol) -> list[float]:
    """Values of ``symbol`` where a branch of any expression switches."""
    points: set[float] = set()
    candidates: list[sp.Expr] = []
    for expr in exprs:
        for node in sp.preorder_traversal(sp.sympify(expr)):
            if isinstance(node, sp.core.relational.Relational):
                candidates.append(node.lhs - node.rhs)
            elif isinstance(node, (sp.Heaviside, sp.Abs, sp.sign)):
                candidates.append(node.args[0])
            elif isinstance(node, (sp.Max, sp.Min)) and len(node.args) == 2:
                candidates.append(node.args[0] - node.args[1])
    for c in candidates:
        if c.free_symbols != {symbol}:
            continue
        try:
            with time_limit(5):
                roots = sp.solve(c, symbol)
        except (NotImplementedError, TimeoutError, TypeError, ValueError):
            continue
        points.update(float(r) for r in roots if r.is_real and r.is_number)
    return sorted(points)


def needs_positive(exprs: list[sp.Expr], symbol: sp.Symbol) -> bool:
    for expr in exprs:
        for node in sp.preorder_traversal(sp.sympify(expr)):
            if isinstance(node, sp.log) and node.args[0].has(symbol) and not isinstance(node.args[0], sp.exp):
                if node.args[0].is_positive is not True:
                    return True
            if isinstance(node, sp.Pow) and node.base.has(symbol) and not node.exp.is_integer:
                return True
    return False


def awkward_values(dtype: type, kinks: list[float], positive: bool) -> list[float]:
    big = LARGE[dtype]
    values = [0.0, 1e-7, -1e-7, big, -big, 1.0, -1.0, *kinks]
    values += [k + d for k in kinks for d in (1e-6, -1e-6)]
    return [v for v in values if v > 0] if positive else values


def uniform(rng: np.random.Generator, shape: tuple[int, ...], positive: bool, scale: float = 2.0) -> np.ndarray:
    return rng.uniform(0.2, scale + 0.2, shape) if positive else rng.uniform(-scale, scale, shape)
