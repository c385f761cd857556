"""Verification of matrix specs: the oracle substitutes explicit 50-digit matrices."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy as sp

from layergen.derive.matrix import grad_matrix
from layergen.verify.checks import Verifier
from layergen.verify.harness import resolve
from layergen.verify.oracle import DPS, mp_ready


class MatrixVerifier(Verifier):
    def sample(self, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        values = {a.name: rng.uniform(-2, 2, resolve(a.shape)) for a in self.der.args if a.role != "hyper"}
        if awkward:  # large and tiny magnitudes in the first input
            first = next(iter(values.values())).reshape(-1)
            special = [0.0, 1e-7, -1e-7, 30.0, -30.0, 1.0]
            first[: min(len(special), first.size)] = special[: first.size]
        return values

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]):
        der = self.der
        matrices: dict[sp.Basic, sp.Basic] = {}
        sizes: dict[sp.Symbol, int] = {}
        for a in der.args:
            if a.role == "hyper":
                continue
            sym = der.symbols[a.name]
            arr = np.asarray(values[a.name], dtype=float)
            matrices[sym] = sp.ImmutableMatrix(arr.shape[0], arr.shape[1], [sp.Float(v, DPS) for v in arr.ravel()])
            sizes.update({s: n for s, n in zip(sym.shape, arr.shape) if isinstance(s, sp.Symbol)})
        for o in der.outputs:
            if f"grad_{o}" in values:
                arr = np.asarray(values[f"grad_{o}"], dtype=float)
                matrices[grad_matrix(der.symbols[o])] = sp.ImmutableMatrix(
                    arr.shape[0], arr.shape[1], [sp.Float(v, DPS) for v in arr.ravel()])
        exprs = der.outputs if kernel == "forward" else {f"grad_{k}": v for k, v in der.vjps.items() if f"grad_{k}" in outputs}
        ref = {}
        for name, expr in exprs.items():
            explicit = expr.xreplace(matrices).subs(sizes).doit()
            explicit = sp.Matrix(explicit).applyfunc(lambda e: mp_ready(e).evalf(DPS))
            ref[name] = np.array(explicit.tolist(), dtype=object).reshape(outputs[name])
        return ref, None
