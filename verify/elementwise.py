"""Verification of elementwise specs: sampling with awkward points and the mpmath oracle."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

import numpy as np

from layergen.verify.checks import Verifier
from layergen.verify.harness import resolve
from layergen.verify.oracle import ElementwiseOracle
from layergen.verify.sampling import awkward_values, needs_positive, switch_points, uniform


class ElementwiseVerifier(Verifier):
    @cached_property
    def oracle(self) -> ElementwiseOracle:
        return ElementwiseOracle(self.der)

    @cached_property
    def expressions(self) -> list:
        der = self.der
        return [*der.outputs.values(), *der.vjps.values(), *(s.operand for s in der.reductions)] + (
            [der.logdet] if der.logdet is not None else [])

    def positive(self, name: str) -> bool:
        return needs_positive(self.expressions, self.der.symbols[name])

    def sample(self, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        for a in self.der.args:
            if a.role == "hyper":
                continue
            shape = resolve(a.shape)
            values[a.name] = uniform(rng, shape, self.positive(a.name), 1.0 if a.role == "param" else 2.0)
        if awkward:
            for a in self.der.args_with_role("input"):
                sym = self.der.symbols[a.name]
                special = awkward_values(dtype, switch_points(self.expressions, sym), self.positive(a.name))
                flat = values[a.name].reshape(-1)
                flat[: min(len(special), flat.size)] = special[: flat.size]
        return values

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]):
        values = dict(values)
        for a in self.der.args_with_role("hyper"):
            values.setdefault(a.name, a.default)
        return self.oracle.evaluate(kernel, values, outputs)
