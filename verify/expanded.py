"""Verification of expanded specs; adds an independent log|det J| from SymPy's ``jacobian``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import mpmath
import numpy as np
import sympy as sp

from layergen.derive.expanded import component_grad
from layergen.verify.checks import LOGDET_TOL, Verifier, compare
from layergen.verify.harness import resolve
from layergen.verify.oracle import DPS, mp_ready


class ExpandedVerifier(Verifier):
    def sample(self, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        for a in self.der.args:
            if a.role == "input":
                values[a.name] = rng.uniform(-2, 2, resolve(a.shape))
                if awkward:
                    flat = values[a.name].reshape(-1)
                    special = [0.0, 1e-7, -1e-7, 5.0, -5.0, 1.0]
                    flat[: min(len(special), flat.size)] = special[: flat.size]
            elif a.role == "param":
                values[a.name] = np.array(rng.uniform(-1, 1))
        return values

    def symbols(self) -> list[sp.Symbol]:
        der = self.der
        syms = [c for comps in der.inputs.values() for c in comps]
        syms += [s for ss in der.output_symbols.values() for s in ss]
        syms += [component_grad(n, k) for n, ss in der.output_symbols.items() for k in range(len(ss))]
        syms += [sp.Symbol(a.name, real=True) for a in der.args if a.role in ("param", "hyper")]
        return syms + [sp.Symbol("grad_logdet", real=True)]

    @cache  # noqa: B019 - one verifier per spec, a handful of expressions
    def fn(self, expr: sp.Expr):  # type: ignore[no-untyped-def]
        by_name = {s.name: s for s in self.symbols()}
        expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})
        return sp.lambdify(self.symbols(), mp_ready(expr), modules="mpmath")

    def env(self, values: Mapping[str, np.ndarray], n: int) -> list[object]:
        der = self.der
        table: dict[str, object] = {}
        for name, comps in der.inputs.items():
            if name in values:
                table.update({c.name: mpmath.mpf(float(values[name][n, i])) for i, c in enumerate(comps)})
        for name, syms in der.output_symbols.items():
            if name in values:
                table.update({s.name: mpmath.mpf(float(values[name][n, k])) for k, s in enumerate(syms)})
            if f"grad_{name}" in values:
                table.update({f"grad_{name}_{k}": mpmath.mpf(float(values[f"grad_{name}"][n, k])) for k in range(len(syms))})
        for a in der.args:
            if a.role == "param":
                table[a.name] = mpmath.mpf(float(values[a.name]))
            elif a.role == "hyper":
                table[a.name] = mpmath.mpf(float(values.get(a.name, a.default)))
        if "grad_logdet" in values:
            table["grad_logdet"] = mpmath.mpf(float(values["grad_logdet"][n]))
        return [table.get(s.name, mpmath.nan) for s in self.symbols()]

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]
                  ) -> tuple[dict[str, np.ndarray], object]:
        der = self.der
        ref = {name: np.zeros(shape, dtype=object) for name, shape in outputs.items()}
        rows = next(np.shape(v)[0] for k, v in values.items() if np.ndim(v) == 2)
        with mpmath.workdps(DPS):
            for n in range(rows):
                env = self.env(values, n)
                if kernel == "forward":
                    for name, comps in der.outputs.items():
                        for k, e in enumerate(comps):
                            ref[name][n, k] = self.fn(e)(*env)
                    if "logdet" in ref:
                        ref["logdet"][n] = self.fn(der.logdet)(*env)
                elif kernel == "inverse":
                    xs = {}
                    for name, comps in der.inverse.items():
                        for i, e in enumerate(comps):
                            xs[(name, i)] = ref[name][n, i] = self.fn(e)(*env)
                    table = dict(zip([s.name for s in self.symbols()], env))
                    for (name, i), value in xs.items():
                        table[der.inputs[name][i].name] = value
                    ref["logdet"][n] = -self.fn(der.logdet)(*[table[s.name] for s in self.symbols()])
                else:
                    for name, comps in der.inputs.items():
                        for i, c in enumerate(comps):
                            ref[f"grad_{name}"][n, i] = self.fn(der.vjps[c.name])(*env)
                    for a in der.args_with_role("param"):
                        if a.trainable:
                            ref[f"grad_{a.name}"][()] += self.fn(der.vjps[a.name])(*env)
        return ref, None

    def check_logdet(self) -> None:
        super().check_logdet()
        der = self.der
        xs = [c for comps in der.inputs.values() for c in comps]
        ys = [mp_ready(e) for comps in der.outputs.values() for e in comps]
        independent = sp.log(sp.Abs(sp.Matrix(ys).jacobian(xs).det()))  # no structure assumed
        rng = np.random.default_rng(self.seed + 5)
        values = self.sample(rng, np.float64, awkward=False)
        out, _ = self.kernels["forward"](values, np.float64)
        f = self.fn(independent)
        with mpmath.workdps(DPS):
            reference = np.array([float(f(*self.env(values, n))) for n in range(out["logdet"].shape[0])])
        self.add("forward", np.float64, "logdet-sympy", compare(out["logdet"], reference), LOGDET_TOL)
