"""The values a hyperparameter may take: its SymPy symbol's assumptions, narrowed by an interval the spec
may declare (``hyper_ranges``).

A spec declares a hyperparameter as a symbol with a default, such as leaky ReLU's
``alpha = sp.Symbol("alpha", nonnegative=True)`` (000 eq. 4). The derivation may rely on the
assumption: SymPy simplifies ``|α x|`` to ``α |x|`` for α ≥ 0, and a log-determinant can drop
an absolute value. A kernel is therefore exact only inside the symbol's domain, so the generated
module records it (``HYPER_DOMAINS``), the spec's default is checked against it, and the runtime
refuses a value outside it. Some ranges are no sign: Adam's β₁ lies in [0, 1) (000 eq. 23; at 1 the bias
correction divides by 0), dropout's p in [0, 1). A spec states those as ``hyper_ranges={beta1:
sp.Interval.Ropen(0, 1)}``; they leave the derivation alone, and the runtime and the verification keep
to them as to a sign. A domain is named by its sign (``positive``, ...) or written as an interval,
``[0, 1)``; what a domain admits is ``layergen.conventions`` (no SymPy, for the runtime).
"""

from __future__ import annotations

import math

import sympy as sp

from layergen.conventions import DOMAINS, describe, in_domain, moved_value

__all__ = ["DOMAINS", "SIGN_SETS", "describe", "domain_of", "in_domain", "moved_value", "sign_of"]

#: each sign's domain as a SymPy set
SIGN_SETS: dict[str, sp.Set] = {
    "positive": sp.Interval.open(0, sp.oo), "nonnegative": sp.Interval(0, sp.oo),
    "negative": sp.Interval.open(-sp.oo, 0), "nonpositive": sp.Interval(-sp.oo, 0), "real": sp.Reals,
}


def sign_of(symbol: sp.Symbol) -> str:
    """The name of the domain ``symbol``'s assumptions give, one of ``DOMAINS``: its sign if SymPy knows
    one (the narrowest first: positive before nonnegative), else ``real``."""
    for name in ("positive", "negative", "nonnegative", "nonpositive"):
        if getattr(symbol, f"is_{name}"):
            return name
    return "real"


def domain_of(symbol: sp.Symbol, interval: sp.Set | None = None) -> str:
    """The domain of a hyperparameter: its sign (``sign_of``), narrowed by the spec's ``interval`` when it
    declares one, written as an interval (``[0, 1)``) unless the interval adds nothing to the sign. An
    empty intersection (a range that contradicts the assumptions) is an error."""
    sign = sign_of(symbol)
    if interval is None:
        return sign
    narrowed = sp.Intersection(SIGN_SETS[sign], interval)
    for name, values in SIGN_SETS.items():  # a range that is a sign, (0, ∞), is named as one
        if narrowed == values:
            return name
    if not isinstance(narrowed, sp.Interval):
        raise ValueError(f"{symbol}: the range {interval} and the assumption {sign} leave "
                         f"{'no value' if narrowed is sp.S.EmptySet else narrowed}; give an interval inside it")
    return (f"{'(' if narrowed.left_open else '['}{_bound(narrowed.start)}, "
            f"{_bound(narrowed.end)}{')' if narrowed.right_open else ']'}")


def _bound(value: sp.Expr) -> str:
    number = float(value)
    return repr(number).removesuffix(".0") if math.isfinite(number) else ("inf" if number > 0 else "-inf")
