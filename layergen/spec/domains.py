"""The values a hyperparameter may take, read off its SymPy symbol's assumptions.

A spec declares a hyperparameter as a symbol with a default, such as leaky ReLU's
``alpha = sp.Symbol("alpha", nonnegative=True)`` (000 eq. 4). The derivation may rely on the
assumption: SymPy simplifies ``|α x|`` to ``α |x|`` for α ≥ 0, and a log-determinant can drop
an absolute value. A kernel is therefore exact only inside the symbol's domain, so the generated
module records it (``HYPER_DOMAINS``), the spec's default is checked against it, and the runtime
refuses a value outside it.
"""

from __future__ import annotations

import math

import sympy as sp

#: the domains, from the narrowest assumption SymPy reports, with what each admits
DOMAINS: dict[str, str] = {
    "positive": "> 0",
    "nonnegative": "≥ 0",
    "negative": "< 0",
    "nonpositive": "≤ 0",
    "real": "any finite number",
}


def domain_of(symbol: sp.Symbol) -> str:
    """The name of the domain ``symbol``'s assumptions give, one of ``DOMAINS``: its sign if SymPy knows
    one (the narrowest first: positive before nonnegative), else ``real``."""
    for name in ("positive", "negative", "nonnegative", "nonpositive"):
        if getattr(symbol, f"is_{name}"):
            return name
    return "real"


def in_domain(value: float, domain: str) -> bool:
    """Whether the finite number ``value`` lies in ``domain`` (a key of ``DOMAINS``)."""
    if not math.isfinite(value):
        return False
    return {"positive": value > 0, "nonnegative": value >= 0, "negative": value < 0,
            "nonpositive": value <= 0, "real": True}[domain]


def describe(domain: str) -> str:
    """``domain`` as a reader of an error message takes it: ``nonnegative (≥ 0)``."""
    return DOMAINS[domain] if domain == "real" else f"{domain} ({DOMAINS[domain]})"
