"""An activation as a config names it: the spec's name, then its hyperparameters as ``name=number`` pairs
(an optimizer's entry is read the same way: "adam beta2=0.99", ``runtime/config.py``).

``"leaky_relu alpha=0.1"`` in a network's ``layers`` or ``activation``, or in a flow's ``activation``, runs
leaky ReLU (000 eq. 4) with α = 0.1; a hyperparameter left out takes the spec's default. A value must lie
in the domain the spec's symbol declares (``HYPER_DOMAINS``, ``layergen.spec.domains``), because the
kernels were derived under that assumption. The fused steps pass the values as literals, which Numba folds
into the kernels (``literal_arguments``).
"""

from __future__ import annotations

import re
from types import ModuleType

from layergen.errors import LayergenError
from layergen.conventions import describe, in_domain

Settings = tuple[tuple[str, float], ...]


def split_settings(text: str, where: str, what: str = "an activation's", example: str = "'leaky_relu alpha=0.2'"
                     ) -> tuple[str, Settings]:
    """The spec name and the ``name=number`` settings of ``text`` such as "leaky_relu alpha = 0.1" (spaces
    around ``=`` allowed; an optimizer's too: "adam beta2=0.99"); ``where`` starts the error message, e.g.
    "architecture: bad layer 'leaky_relu a'"."""
    name, _, rest = str(text).strip().partition(" ")
    settings: dict[str, float] = {}
    for pair in re.sub(r"\s*=\s*", "=", rest).split():
        key, equals, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not equals or not key or number is None or key in settings:
            raise LayergenError(f"{where}: {what} hyperparameters follow its name as name=number pairs, "
                                f"each name once, such as {example}")
        settings[key] = number
    return name, tuple(settings.items())


def activation_hypers(name: str, settings: Settings, module: ModuleType, where: str,
                     what: str = "activation") -> dict[str, float]:
    """The hyperparameters activation ``name`` (its generated ``module``) runs with, in its kernels' order: the
    spec's defaults with ``settings`` in their place. Each setting must name one of them and lie in its
    domain; ``where`` starts the error message, ``what`` names the kind of spec in it (a loss's settings
    are read the same way: "huber delta=0.5")."""
    values = dict(module.HYPER_DEFAULTS)
    domains = getattr(module, "HYPER_DOMAINS", {})  # a module generated before domains were recorded
    for key, value in settings:
        if key not in values:
            valid = f"valid: {', '.join(values)}" if values else "it has none"
            raise LayergenError(f"{where}: {what} {name} has no hyperparameter {key!r}; {valid}")
        domain = domains.get(key, "real")
        if not in_domain(value, domain):
            raise LayergenError(f"{where}: {what} {name}: {key}={value!r} is outside the domain its spec "
                                f"declares, {describe(domain)}; its kernels are derived under it")
        values[key] = value
    return values


def literal_arguments(hypers: dict[str, float]) -> str:
    """The hyperparameters as the trailing literal arguments of a generated kernel call: ", 0.1"."""
    return "".join(f", {float(v)!r}" for v in hypers.values())
