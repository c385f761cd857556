"""What the spec language and the runtime agree on, without SymPy: the runtime imports this module, and a
warm start from Numba's cache should not pay SymPy's import (about 0.45 s of the 1 s target).

- An optimizer step's inputs that hold the parameters and their gradient (the runtime binds both by these
  names); every other input the step rewrites is optimizer state.
- A hyperparameter's domain as the generated modules record it (``HYPER_DOMAINS``): a sign (``positive``,
  ``nonnegative``, ``negative``, ``nonpositive``, ``real``) or an interval such as ``[0, 1)``; which values
  it admits, how an error message names it, and a value inside it away from a default. How a spec's
  symbol and range become a domain is ``layergen.spec.domains``.
"""

from __future__ import annotations

import math
import re

OPTIMIZER_PARAMETER, OPTIMIZER_GRADIENT = "theta", "g"

#: the sign domains, from the narrowest assumption SymPy reports, with what each admits
DOMAINS: dict[str, str] = {
    "positive": "> 0",
    "nonnegative": "≥ 0",
    "negative": "< 0",
    "nonpositive": "≤ 0",
    "real": "any finite number",
}

_INTERVAL = re.compile(r"^([\[(])(\S+), (\S+)([\])])$")


def in_domain(value: float, domain: str) -> bool:
    """Whether the finite number ``value`` lies in ``domain`` (a key of ``DOMAINS``, or an interval)."""
    if not math.isfinite(value):
        return False
    if domain in DOMAINS:
        return {"positive": value > 0, "nonnegative": value >= 0, "negative": value < 0,
                "nonpositive": value <= 0, "real": True}[domain]
    match = _INTERVAL.match(domain)
    if match is None:
        raise ValueError(f"unknown domain {domain!r}: a sign ({', '.join(DOMAINS)}) or an interval such as [0, 1)")
    left, low, high, right = match[1], float(match[2]), float(match[3]), match[4]
    return (low < value if left == "(" else low <= value) and (value < high if right == ")" else value <= high)


def describe(domain: str) -> str:
    """``domain`` as a reader of an error message takes it: ``nonnegative (≥ 0)``, or ``in [0, 1)``."""
    if domain not in DOMAINS:
        return f"in {domain}"
    return DOMAINS[domain] if domain == "real" else f"{domain} ({DOMAINS[domain]})"


def moved_value(default: float, domain: str) -> float:
    """A value away from ``default`` inside ``domain``, for checks that a kernel reads its hyperparameter:
    ¾ of the default (±¼ for 0), else the first of 1¼ of it, default ± ¼ that the domain admits."""
    candidates = [0.75 * default, 1.25 * default] if default else [0.25, -0.25]
    for value in (*candidates, default + 0.25, default - 0.25):
        if value != default and in_domain(value, domain):
            return value
    raise ValueError(f"no value near {default} other than it lies in {domain}")
