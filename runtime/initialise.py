"""The seeded weight initialisers of 003 §7."""

from __future__ import annotations

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.architecture import Architecture, param_specs

#: the schemes of ``initialise`` (003 §7), as a config's [network] init names them
INITIALISERS = ("lecun", "xavier", "he")


def parameter_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    return {p.name: p.shape for p in param_specs(arch)}


def initialise(arch: Architecture, seed: int, dtype: type, scheme: str = "he") -> dict[str, np.ndarray]:
    """Seeded initialisers of 003 §7 for weights: LeCun U(±√(3/n_i)), Xavier U(±√(6/(n_i+n_{i+1}))),
    He N(0, 2/n_i) (standard deviation √(2/n_i)); biases and shifts 0, scales 1; a layer's parameter the
    value its spec declares (``Param(..., init=v)``)."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for spec in param_specs(arch):
        if not isinstance(spec.init, str):
            params[spec.name] = np.full(spec.shape, spec.init, dtype)
            continue
        if spec.init != "weights":
            params[spec.name] = (np.ones if spec.init == "ones" else np.zeros)(spec.shape, dtype)
            continue
        fan_in, fan_out = spec.shape
        if scheme == "lecun":
            bound = np.sqrt(3.0 / fan_in)
            value = rng.uniform(-bound, bound, spec.shape)
        elif scheme == "xavier":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-bound, bound, spec.shape)
        elif scheme == "he":
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), spec.shape)
        else:
            raise LayergenError(f"init: unknown scheme {scheme!r}; valid: {', '.join(INITIALISERS)}")
        params[spec.name] = value.astype(dtype)
    return params
