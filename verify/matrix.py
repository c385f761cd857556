"""Verification of matrix specs: the oracle substitutes explicit 50-digit matrices.

For a linear bijection Y = X·M the declared structures are applied here independently of the
generated code (``np.tril``/``np.triu``, a random permutation), the references evaluate the
derivation's expressions at 50 digits, and log|det J| is also compared with the determinant of
the explicit M computed by mpmath (``logdet-det``), which knows nothing of triangles.
"""

from __future__ import annotations

from collections.abc import Mapping

import mpmath
import numpy as np
import sympy as sp

from layergen.derive.linear import DIAGONAL_ENTRY
from layergen.derive.matrix import grad_matrix
from layergen.verify.checks import LOGDET_TOL, Verifier, compare
from layergen.verify.harness import SIZES, resolve
from layergen.verify.oracle import DPS, mp_ready


def effective(kind: str | None, raw: np.ndarray) -> np.ndarray:
    """The matrix a structured factor stands for, built from its raw entries."""
    if kind == "lower":
        return np.tril(raw)
    if kind == "upper":
        return np.triu(raw)
    if kind == "unit_lower":
        return np.tril(raw, -1) + np.eye(len(raw))
    if kind == "unit_upper":
        return np.triu(raw, 1) + np.eye(len(raw))
    return raw


def free_entries(kind: str | None, n: int) -> np.ndarray:
    """1 where a structured factor's raw entries are parameters, 0 elsewhere."""
    ones = np.ones((n, n))
    return {"lower": np.tril(ones), "upper": np.triu(ones), "unit_lower": np.tril(ones, -1),
            "unit_upper": np.triu(ones, 1)}.get(kind, ones)


def _explicit(arr: np.ndarray) -> sp.ImmutableMatrix:
    arr = np.atleast_2d(np.asarray(arr, dtype=float))
    return sp.ImmutableMatrix(arr.shape[0], arr.shape[1], [sp.Float(v, DPS) for v in arr.ravel()])


class MatrixVerifier(Verifier):
    def sample(self, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        structure = self.der.structure
        values = {}
        for a in self.der.args:
            if a.role == "hyper":
                continue
            shape = resolve(a.shape)
            kind = structure.get(a.name)
            if kind == "permutation":
                values[a.name] = np.eye(shape[0])[rng.permutation(shape[0])]
            elif kind in ("lower", "upper"):  # a diagonal away from 0, with both signs: invertible
                # and well conditioned: with off-diagonal entries up to ±1 and diagonals down to 0.5, W = P·L·U
                # reached condition numbers of several hundred at some seeds (2, 6, 8 and 18 of 0–24), and
                # float32's inverse lost digits to W, not to the kernels (round trips 6e-6 off)
                raw = rng.uniform(-0.5, 0.5, shape)
                np.fill_diagonal(raw, rng.uniform(1.0, 2.0, shape[0]) * rng.choice([-1.0, 1.0], shape[0]))
                values[a.name] = raw
            else:
                values[a.name] = rng.uniform(-2, 2, shape)
        if awkward:  # large and tiny magnitudes in the first input
            first = next(iter(values.values())).reshape(-1)
            special = [0.0, 1e-7, -1e-7, 30.0, -30.0, 1.0]
            first[: min(len(special), first.size)] = special[: first.size]
        return values

    def explicit_matrices(self, values: Mapping[str, np.ndarray]) -> tuple[dict[sp.Basic, sp.Basic], dict[sp.Symbol, int]]:
        der = self.der
        matrices: dict[sp.Basic, sp.Basic] = {}
        sizes: dict[sp.Symbol, int] = {}
        for a in der.args:
            if a.role == "hyper":
                continue
            sym = der.symbols[a.name]
            arr = effective(der.structure.get(a.name), np.asarray(values[a.name], dtype=float))
            matrices[sym] = _explicit(arr)
            sizes.update({s: n for s, n in zip(sym.shape, arr.shape) if isinstance(s, sp.Symbol)})
        for name in der.outputs:  # the inverse's input
            if name in values:
                matrices[der.symbols[name]] = _explicit(values[name])
        for name, kind in der.structure.items():
            if kind == "reversal":  # no argument: fixed by its size
                sym = der.symbols[name]
                n = sizes.get(sym.shape[0], SIZES.get(str(sym.shape[0])))
                matrices[sym] = _explicit(np.eye(n)[::-1])
        for name in list(der.outputs) + [a.name for a in der.args_with_role("input")]:
            if f"grad_{name}" in values:
                matrices[grad_matrix(der.symbols[name])] = _explicit(values[f"grad_{name}"])
        for symbol in self.hyper_symbols():  # scalars: the value given, else the default, at 50 digits
            default = next(a.default for a in der.args_with_role("hyper") if a.name == symbol.name)
            matrices[symbol] = sp.Float(float(values.get(symbol.name, default)), DPS)  # type: ignore[arg-type]
        return matrices, sizes

    def hyper_symbols(self) -> set[sp.Symbol]:
        """The hyperparameters' symbols, with their assumptions, as the derived expressions hold them (a matrix
        derivation's ``symbols`` has the matrices only)."""
        der = self.der
        names = {a.name for a in der.args_with_role("hyper")}
        if not names:  # the catalog's matrix specs: nothing to look for
            return set()
        expressions = [*der.outputs.values(), *der.vjps.values(), *(der.inverse or {}).values(), sp.sympify(der.logdet or 0)]
        return {s for e in expressions for s in e.free_symbols if isinstance(s, sp.Symbol) and s.name in names}

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]
                  ) -> tuple[dict[str, np.ndarray], object]:
        der = self.der
        matrices, sizes = self.explicit_matrices(values)

        def evaluate(expr: sp.Basic) -> np.ndarray:
            explicit = expr.xreplace(matrices).subs(sizes).doit()
            explicit = sp.Matrix(explicit).applyfunc(lambda e: mp_ready(e).evalf(DPS))
            return np.array(explicit.tolist(), dtype=object)

        if der.kind != "bijection":
            exprs = der.outputs if kernel == "forward" else {f"grad_{k}": v for k, v in der.vjps.items() if f"grad_{k}" in outputs}
            return {name: evaluate(e).reshape(outputs[name]) for name, e in exprs.items()}, None
        (x_name,) = [a.name for a in der.args_with_role("input")]
        (y_name,) = der.outputs
        logdet = sp.sympify(der.logdet).xreplace(matrices).subs(sizes).doit()
        logdet = sp.Float(mp_ready(logdet).evalf(DPS), DPS) if logdet != 0 else sp.Float(0)
        rows = outputs["logdet"][0] if "logdet" in outputs else None
        if kernel == "forward":
            return {y_name: evaluate(der.outputs[y_name]), "logdet": np.array([logdet] * rows, dtype=object)}, None
        if kernel == "inverse":
            return {x_name: evaluate(der.inverse[x_name]), "logdet": np.array([-logdet] * rows, dtype=object)}, None
        ref = {}
        weight = sum(sp.Float(float(v), DPS) for v in np.ravel(values["grad_logdet"]))
        for name, expr in der.vjps.items():
            grad = evaluate(expr)
            kind = der.structure.get(name)
            grad = grad * free_entries(kind, grad.shape[0]).astype(object) if kind else grad
            if name in der.logdet_diagonals:
                diag = matrices[der.symbols[name]]
                for i in range(grad.shape[0]):
                    grad[i, i] += weight * der.logdet_element_partial.subs(DIAGONAL_ENTRY, diag[i, i])
            ref[f"grad_{name}"] = grad
        return ref, None

    def check_logdet(self) -> None:
        """(c) twice: finite differences (``Verifier``) and log|det M| of the explicit M at 50
        digits (mpmath), with M built from the structured factors' effective matrices."""
        super().check_logdet()
        if self.der.factor is None:
            return
        values = self.sample(np.random.default_rng(self.seed + 5), np.float64, awkward=False)
        out, _ = self.kernels["forward"](values, np.float64)
        matrices, sizes = self.explicit_matrices(values)
        explicit = sp.Matrix(self.der.factor.xreplace(matrices).subs(sizes).doit())
        with mpmath.workdps(DPS):
            reference = float(mpmath.log(abs(mpmath.det(mpmath.matrix(explicit.tolist())))))
        self.add("forward", np.float64, "logdet-det", compare(out["logdet"], np.full(out["logdet"].shape, reference)),
                 LOGDET_TOL)
