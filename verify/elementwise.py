"""Verification of elementwise specs: sampling with awkward points and the mpmath oracle."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

import mpmath
import numpy as np
import sympy as sp

from layergen.spec.functions import to_elementary
from layergen.verify.checks import LOGDET_TOL, Verifier, compare
from layergen.verify.harness import resolve
from layergen.verify.oracle import DPS, ElementwiseOracle
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

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]
                  ) -> tuple[dict[str, np.ndarray], object]:
        values = dict(values)
        for a in self.der.args_with_role("hyper"):
            values.setdefault(a.name, a.default)
        return self.oracle.evaluate(kernel, values, outputs)

    def check_logdet(self) -> None:
        """Adds (c) with SymPy: expand one sample into its D components, form the full
        Jacobian with ``jacobian`` (no structure assumed) and take log|det| at 50 digits.

        With batch statistics (the batch-norm flow) log|det J| is defined with the statistics
        held fixed (000 eq. 77): the SymPy Jacobian is then taken at the batch's statistics, and
        the finite-difference check, which would move them, does not apply."""
        der = self.der
        if not der.reductions:
            super().check_logdet()
        rng = np.random.default_rng(self.seed + 5)
        values = self.sample(rng, np.float64, awkward=False)
        out, _ = self.kernels["forward"](values, np.float64)
        (y_name,) = der.outputs
        x_arg = der.args_with_role("input")[0]
        n_rows, n_cols = np.shape(values[x_arg.name])
        reference = np.zeros(n_rows)
        with mpmath.workdps(DPS):
            for n in range(n_rows):
                xs = [sp.Symbol(f"_x{j}", real=True) for j in range(n_cols)]
                comps = []
                with_hypers = values | {a.name: a.default for a in der.args_with_role("hyper")}
                if der.reductions:  # one group per feature: the statistics of column j
                    statistics = [self.oracle.with_reductions(with_hypers, [(k, j) for k in range(n_rows)], False)[n]
                                  for j in range(n_cols)]
                for j in range(n_cols):
                    env = statistics[j] if der.reductions else self.oracle.element_env(with_hypers, (n, j))
                    env.pop(der.symbols[x_arg.name], None)
                    point = {s: sp.Float(str(v), DPS) for s, v in env.items() if s in der.symbols.values()}
                    comps.append(to_elementary(der.outputs[y_name]).xreplace(point).subs(der.symbols[x_arg.name], xs[j]))
                jac = sp.Matrix(comps).jacobian(xs)
                at = {xs[j]: sp.Float(float(values[x_arg.name][n, j]), DPS) for j in range(n_cols)}
                reference[n] = float(sp.log(abs(jac.subs(at).det())).evalf(DPS))
        self.add("forward", np.float64, "logdet-sympy", compare(out["logdet"], reference), LOGDET_TOL)
