"""The four checks of DESIGN.md's verification, run on one spec's generated module.

(a) each kernel vs its symbolic source at 50 digits, at random and awkward points, in
    float32 and float64: pass when |kernel − ref| ≤ tol · max(1, |ref|) + 2·spread, where
    spread is how far the exact result moves when the inputs move by one ulp of the dtype
    (the rounding the inputs already carry; it matters only where the map is ill-conditioned,
    e.g. the cancellation y₁ − b·y₀² of shear2d's inverse in float32);
(b) every VJP vs central finite differences of the forward kernel (float64), entry by
    entry, plus the dot-product test ⟨J v, w⟩ = ⟨v, Jᵀ w⟩ in a random direction v;
(c) log|det J| vs slogdet of a Jacobian formed by finite differences (and, for expanded
    maps, SymPy's own ``jacobian``);
(d) inverse round trips both ways, and logdet(inverse) = −logdet(forward).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from layergen.derive.derivation import DerivationBase
from layergen.spec.domains import moved_value
from layergen.verify.harness import KernelCall, resolve

#: Tolerances bound what is left of an error after the rounding it is allowed (the spread, the differences'
#: and the halfway result's rounding). Over seeds 0-24 of the catalog the worst of each check lies 6-160x
#: below them, the float32 round trip 1.3x (`layergen verify --seeds 0-24`; the README has the table).
#: (a) oracle tolerance per dtype, relative to max(1, |ref|), beyond the rounding spread
ORACLE_TOL = {np.float64: 1e-13, np.float32: 1e-5}
#: (b) finite-difference step and tolerance (float64), relative to max(1, |value|)
FD_STEP, FD_TOL = 1e-6, 2e-8
#: (c) log-determinant tolerance against a finite-difference Jacobian
LOGDET_TOL = 1e-8
#: (d) round-trip tolerance per dtype, relative to max(1, |x|)
ROUNDTRIP_TOL = {np.float64: 1e-13, np.float32: 5e-6}
DTYPES = (np.float64, np.float32)


@dataclass
class Row:
    spec: str
    kernel: str
    dtype: str
    check: str
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""
    scaled: float = 0.0  # the pass criterion: error beyond the rounding spread, over max(1, |ref|)
    tol: float = 0.0  # the bound ``scaled`` is held to


def compare(got: np.ndarray, ref: np.ndarray, allowance: np.ndarray | float = 0.0) -> tuple[float, float, float]:
    """(max abs error, max rel error, max (error − allowance)/max(1,|ref|)).

    ``allowance`` is an absolute error already explained by the inputs' rounding.
    """
    got = np.asarray(got, dtype=float).ravel()
    ref = np.asarray(ref, dtype=float).ravel()
    allowance = np.broadcast_to(np.asarray(allowance, dtype=float).ravel(), ref.shape) if np.ndim(allowance) else allowance
    if got.size == 0:
        return 0.0, 0.0, 0.0
    err = np.abs(got - ref)
    both_inf = np.isinf(got) & np.isinf(ref) & (np.sign(got) == np.sign(ref))
    err = np.where(both_inf, 0.0, err)
    err = np.where(np.isnan(err), np.inf, err)
    # relative error where the reference is not (nearly) zero; absolute error elsewhere
    rel = np.where(np.abs(ref) > 1e-8, err / np.maximum(np.abs(ref), 1e-300), err)
    scaled = np.maximum(err - allowance, 0.0) / np.maximum(1.0, np.abs(ref))
    return float(err.max()), float(rel.max()), float(scaled.max())


class Verifier:
    """Level-specific parts (sampling, oracle, how kernels pair up) are in subclasses."""

    def __init__(self, der: DerivationBase, module: ModuleType, seed: int = 0) -> None:
        self.der = der
        self.module = module
        self.seed = seed
        self.kernels = {name: KernelCall(module, name) for name in module.KERNELS}
        self.rows: list[Row] = []

    # -- to be provided by each level ---------------------------------------------------
    def sample(self, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def reference(self, kernel: str, values: Mapping[str, np.ndarray], outputs: Mapping[str, tuple[int, ...]]
                  ) -> tuple[dict[str, np.ndarray], object]:
        raise NotImplementedError

    def fd_pairs(self) -> list[tuple[str, str]]:
        """(forward kernel, vjp kernel) pairs for the finite-difference check."""
        kinds = {"map": [("forward", "vjp"), ("forward", "vjp_params")], "bijection": [("forward", "forward_vjp")],
                 "loss": [("loss", "loss_grad")]}
        return [p for p in kinds.get(self.der.kind, []) if p[0] in self.kernels and p[1] in self.kernels]

    def jacobian_slices(self) -> list[tuple[str, str]]:
        return []

    # -- the checks ---------------------------------------------------------------------
    def run(self) -> list[Row]:
        for dtype in DTYPES:
            for name in self.kernels:
                self.check_oracle(name, dtype)
        for fwd, vjp in self.fd_pairs():
            self.check_fd(fwd, vjp)
        if self.der.kind == "bijection":
            self.check_logdet()
            if "inverse" in self.kernels:  # absent with batch statistics: the eval-mode spec has the inverse
                for dtype in DTYPES:
                    self.check_roundtrip(dtype)
        return self.rows

    def add(self, kernel: str, dtype: type, check: str, errors: tuple[float, float, float], tol: float, note: str = "") -> None:
        abs_err, rel_err, scaled = errors
        self.rows.append(Row(self.der.name, kernel, np.dtype(dtype).name, check, abs_err, rel_err, scaled <= tol, note, scaled,
                             tol))

    def inputs_for(self, name: str, rng: np.random.Generator, dtype: type, awkward: bool) -> dict[str, np.ndarray]:
        values = self.sample(rng, dtype, awkward)
        call = self.kernels[name]
        for arg in call.names("grad_output"):
            values[arg] = rng.uniform(-1, 1, resolve(call.shape(arg)))
        if name == "inverse":
            fwd_out, _ = self.kernels["forward"](values, dtype)
            values.update({k: v for k, v in fwd_out.items() if k != "logdet"})
        return values

    def moved_hypers(self) -> dict[str, float]:
        """Every hyperparameter away from its default and inside its domain (``spec.domains.moved_value``):
        ¾ of the default, or ±¼ for a default of 0, the sign the domain admits. Kernels take their
        hyperparameters at run time (a network's layer may set them: "leaky_relu alpha=0.1"), so each
        check also runs at these values, where a default baked into the code would show."""
        return {a.name: moved_value(float(a.default or 0.0), a.domain) for a in self.der.args_with_role("hyper")}

    def hyper_settings(self) -> list[dict[str, float]]:
        """The hyperparameter values each check runs at: the defaults ({}), and ``moved_hypers`` if any."""
        moved = self.moved_hypers()
        return [{}, moved] if moved else [{}]

    def check_oracle(self, name: str, dtype: type) -> None:
        call = self.kernels[name]
        worst = (0.0, 0.0, 0.0)
        # random and awkward points at the default hyperparameters, then random points at moved ones
        passes = [(False, {}), (True, {})] + [(False, h) for h in self.hyper_settings() if h]
        for awkward, hypers in passes:
            rng = np.random.default_rng(self.seed + (7 if awkward else 0) + (11 if hypers else 0))
            values = {**self.inputs_for(name, rng, dtype, awkward), **hypers}
            # the oracle sees exactly the (rounded) values the kernel sees
            seen = {k: (np.asarray(v, dtype=dtype).astype(np.float64) if isinstance(v, np.ndarray) else v)
                    for k, v in values.items()}
            got, result = call(values, dtype)
            shapes = {k: v.shape for k, v in got.items()}
            ref, ref_result = self.flat_reference(name, seen, shapes)
            spread = self.rounding_spread(name, seen, shapes, ref, ref_result, dtype, rng)
            names = list(got) + (["<return>"] if ref_result is not None else [])
            outs = dict(got)
            if ref_result is not None:  # a loss returns its value; other kernels return their outputs
                outs["<return>"] = np.asarray(result, dtype=float)
            for k in names:
                errs = compare(outs[k], ref[k], 2.0 * spread[k])
                worst = tuple(max(a, b) for a, b in zip(worst, errs))  # type: ignore[assignment]
        self.add(name, dtype, "oracle", worst, ORACLE_TOL[dtype])

    def flat_reference(self, name: str, values: Mapping[str, object], shapes: Mapping[str, tuple[int, ...]]
                       ) -> tuple[dict[str, np.ndarray], object]:
        ref, result = self.reference(name, values, shapes)
        out = {k: np.asarray(np.asarray(v, dtype=object).astype(float)) for k, v in ref.items()}
        if result is not None:
            out["<return>"] = np.asarray(float(result))
        return out, result

    def rounding_spread(self, name: str, values: Mapping[str, object], shapes: Mapping[str, tuple[int, ...]],
                        ref: Mapping[str, np.ndarray], ref_result: object, dtype: type, rng: np.random.Generator
                        ) -> dict[str, np.ndarray]:
        """|Δ exact result| when every input moves by ±1 ulp of ``dtype`` (max of two draws)."""
        eps = float(np.finfo(dtype).eps)
        spread = {k: np.zeros(np.shape(v)) for k, v in ref.items()}
        for _ in range(2):
            moved = {k: (v * (1 + eps * rng.choice([-1.0, 1.0], np.shape(v))) if isinstance(v, np.ndarray) else v)
                     for k, v in values.items()}
            other, _ = self.flat_reference(name, moved, shapes)
            for k in spread:
                spread[k] = np.maximum(spread[k], np.abs(np.nan_to_num(other[k] - ref[k], nan=0.0, posinf=0.0, neginf=0.0)))
        return spread

    def objective(self, fwd: str, values: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> float:
        return self._objective(fwd, values, weights)[0]

    def _objective(self, fwd: str, values: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]
                   ) -> tuple[float, float]:
        """Σ_o ⟨w_o, y_o⟩ (a loss: its value) and its magnitude Σ_o ⟨|w_o|, |y_o|⟩, which bounds the
        rounding error of the sum: about one ulp of it."""
        out, result = self.kernels[fwd](values, np.float64)
        if self.der.kind == "loss":
            return float(result), abs(float(result))
        total, magnitude = 0.0, 0.0
        for name, arr in out.items():
            total += float(np.sum(arr * weights[name]))
            magnitude += float(np.sum(np.abs(arr * weights[name])))
        return total, magnitude

    @staticmethod
    def fd_rounding(magnitude: float, h: float) -> float:
        """What rounding alone can put into a central difference (f(x+h) − f(x−h))/(2h) of an objective of
        this magnitude: each evaluation within about one ulp of ``magnitude``, so eps·magnitude/h; twice that.
        The sum-of-squares flow's quintics reach magnitudes of 740 at the verification's points, where
        this is 3e-7 and differences with errors of 3e-8 against a correct VJP failed the plain tolerance."""
        return 2.0 * float(np.finfo(np.float64).eps) * magnitude / h

    def check_fd(self, fwd: str, vjp: str) -> None:
        """(b) at the default hyperparameters and at ``moved_hypers``; a row each for the worst of both."""
        worst, dot = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        for hypers in self.hyper_settings():
            entries, directional = self._fd_errors(fwd, vjp, hypers)
            worst = tuple(max(a, b) for a, b in zip(worst, entries))  # type: ignore[assignment]
            dot = tuple(max(a, b) for a, b in zip(dot, directional))  # type: ignore[assignment]
        self.add(vjp, np.float64, "finite-diff", worst, FD_TOL)
        self.add(vjp, np.float64, "dot-product", dot, FD_TOL)

    def _fd_errors(self, fwd: str, vjp: str, hypers: Mapping[str, float]
                   ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The VJP against central differences of the forward kernel, entry by entry and in one random
        direction (the dot-product test), at hyperparameters ``hypers`` (defaults for those not given)."""
        rng = np.random.default_rng(self.seed + 1)
        values = {**self.sample(rng, np.float64, awkward=False), **hypers}
        vcall = self.kernels[vjp]
        weights = {g[len("grad_"):]: rng.uniform(-1, 1, resolve(vcall.shape(g))) for g in vcall.names("grad_output")}
        call_values = dict(values)
        call_values.update({f"grad_{k}": w for k, w in weights.items()})
        grads, _ = vcall(call_values, np.float64)
        magnitude = self._objective(fwd, values, weights)[1]
        worst = (0.0, 0.0, 0.0)
        directional_fd, directional_vjp = 0.0, 0.0
        for gname, analytic in grads.items():
            name = gname[len("grad_"):]
            base = np.array(values[name], dtype=np.float64)
            numeric, rounding = np.zeros_like(base), np.zeros_like(base)
            direction = rng.uniform(-1, 1, base.shape)
            for idx in np.ndindex(base.shape):
                h = FD_STEP * max(1.0, abs(base[idx]))
                plus, minus = base.copy(), base.copy()
                plus[idx] += h
                minus[idx] -= h
                numeric[idx] = (self.objective(fwd, {**values, name: plus}, weights)
                                - self.objective(fwd, {**values, name: minus}, weights)) / (2 * h)
                rounding[idx] = self.fd_rounding(magnitude, h)
            errors = compare(analytic, numeric, rounding)
            worst = tuple(max(a, b) for a, b in zip(worst, errors))  # type: ignore[assignment]
            h = FD_STEP
            directional_fd += (self.objective(fwd, {**values, name: base + h * direction}, weights)
                               - self.objective(fwd, {**values, name: base - h * direction}, weights)) / (2 * h)
            directional_vjp += float(np.sum(direction * analytic))
        # the directional difference sums one difference per argument, each with its own rounding
        allowance = len(grads) * self.fd_rounding(magnitude, FD_STEP)
        return worst, compare(np.array([directional_vjp]), np.array([directional_fd]), allowance)

    def check_logdet(self) -> None:
        rng = np.random.default_rng(self.seed + 2)
        values = self.sample(rng, np.float64, awkward=False)
        (x_name,) = self.kernels["forward"].names("input")[:1]
        out, _ = self.kernels["forward"](values, np.float64)
        y_name = next(k for k in out if k != "logdet")
        x = np.array(values[x_name])
        reference = np.zeros(x.shape[0])
        for n in range(x.shape[0]):
            cols = x.shape[1]
            jac = np.zeros((cols, cols))
            for j in range(cols):
                h = FD_STEP * max(1.0, abs(x[n, j]))
                plus, minus = x.copy(), x.copy()
                plus[n, j] += h
                minus[n, j] -= h
                yp = self.kernels["forward"]({**values, x_name: plus}, np.float64)[0][y_name][n]
                ym = self.kernels["forward"]({**values, x_name: minus}, np.float64)[0][y_name][n]
                jac[:, j] = (yp - ym) / (2 * h)
            reference[n] = np.linalg.slogdet(jac)[1]
        self.add("forward", np.float64, "logdet-fd", compare(out["logdet"], reference), LOGDET_TOL)

    def check_roundtrip(self, dtype: type) -> None:
        rng = np.random.default_rng(self.seed + 3)
        values = self.sample(rng, dtype, awkward=False)
        fwd, inv = self.kernels["forward"], self.kernels["inverse"]
        x_name = fwd.names("input")[0]
        out, _ = fwd(values, dtype)
        y_name = next(k for k in out if k != "logdet")
        back, _ = inv({**values, y_name: out[y_name]}, dtype)
        moved = self.ulp_spread(inv, {**values, y_name: out[y_name]}, y_name, x_name, dtype)
        errs = compare(back[x_name], np.asarray(values[x_name], dtype=dtype), 2.0 * moved)
        ld = compare(back["logdet"], -out["logdet"].astype(np.float64))
        self.add("inverse∘forward", dtype, "round-trip", tuple(max(a, b) for a, b in zip(errs, ld)), ROUNDTRIP_TOL[dtype])
        y = self.sample(np.random.default_rng(self.seed + 4), dtype, awkward=False)[x_name]
        y = np.asarray(out[y_name], dtype=np.float64) + 0.1 * np.asarray(y)  # points in the map's range
        xs, _ = inv({**values, y_name: y}, dtype)
        again, _ = fwd({**values, x_name: xs[x_name]}, dtype)
        moved = self.ulp_spread(fwd, {**values, x_name: xs[x_name]}, x_name, y_name, dtype)
        self.add("forward∘inverse", dtype, "round-trip", compare(again[y_name], np.asarray(y, dtype=dtype), 2.0 * moved),
                 ROUNDTRIP_TOL[dtype])

    @staticmethod
    def ulp_spread(kernel: KernelCall, values: Mapping[str, object], name: str, out_name: str, dtype: type
                   ) -> np.ndarray:
        """|Δ out_name| of the float64 ``kernel`` when its input ``name`` moves by ±1 ulp of ``dtype``: how far
        a round trip can land from where it started through the rounding of its halfway result alone (the
        round trip's counterpart of the oracle's spread). The sum-of-squares flow's forward∘inverse in float32
        came to 4.7e-6 of the 5e-6 tolerance at seed 9: its quintic maps one ulp of x to several of y."""
        eps = float(np.finfo(dtype).eps)
        base = np.asarray(values[name], dtype=np.float64)
        start, _ = kernel({**values, name: base}, np.float64)
        spread = np.zeros(np.shape(start[out_name]))
        for sign in (1.0, -1.0):
            moved, _ = kernel({**values, name: base * (1.0 + sign * eps)}, np.float64)
            spread = np.maximum(spread, np.abs(np.nan_to_num(moved[out_name] - start[out_name], nan=0.0, posinf=0.0,
                                                             neginf=0.0)))
        return spread


def verifier_for(der: DerivationBase, module: ModuleType, seed: int = 0) -> Verifier:
    from layergen.derive.derivation import ElementwiseDerivation, ExpandedDerivation, MatrixDerivation

    if isinstance(der, ElementwiseDerivation):
        from layergen.verify.elementwise import ElementwiseVerifier

        return ElementwiseVerifier(der, module, seed)
    if isinstance(der, MatrixDerivation):
        from layergen.verify.matrix import MatrixVerifier

        return MatrixVerifier(der, module, seed)
    if isinstance(der, ExpandedDerivation):
        from layergen.verify.expanded import ExpandedVerifier

        return ExpandedVerifier(der, module, seed)
    raise TypeError(type(der))


