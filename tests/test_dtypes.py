"""float32 kernels compute in float32: no silent upcast anywhere in a compiled kernel."""

from __future__ import annotations

import numpy as np

from numba import njit

from layergen.verify.harness import KernelCall

from conftest import CATALOG, derivation, module
from layergen.verify.checks import verifier_for


def float64_variables(call: KernelCall, hypers: set[str], args: tuple) -> dict[str, str]:
    """Variables typed float64 in a fresh float32 compilation (cached overloads carry no
    type annotation), except hyperparameter arguments (Python floats, cast to the dtype
    on entry) and literal constants."""
    fresh = njit(error_model="numpy")(call.function.py_func)
    fresh(*args)
    found: dict[str, str] = {}
    for signature, overload in fresh.overloads.items():
        if "float32" not in str(signature):
            continue
        if "float64" in str(overload.signature.return_type):  # Numba boxes float32 as a Python float
            found["<return>"] = str(overload.signature.return_type)
        for var, typ in overload.type_annotation.typemap.items():
            base = var.split(".")[-1] if var.startswith("arg.") else var
            if "float64" in str(typ) and base not in hypers and not var.startswith("$const"):
                found[var] = str(typ)
    return found


def test_no_float64_in_float32_kernels() -> None:
    checked = 0
    for loaded in CATALOG:
        mod = module(loaded.name)
        verifier = verifier_for(derivation(loaded.name), mod, seed=0)
        for name, call in verifier.kernels.items():
            rng = np.random.default_rng(0)
            values = verifier.inputs_for(name, rng, np.float32, awkward=False)
            captured: list[tuple] = []
            original = call.function
            call.function = lambda *a: captured.append(a) or original(*a)  # type: ignore[method-assign]
            outputs, result = call(values, np.float32)
            call.function = original
            assert all(v.dtype == np.float32 for v in outputs.values())
            hypers = {n for n, role, _ in call.args if role == "hyper"}
            upcasts = float64_variables(call, hypers, captured[0])
            assert not upcasts, f"{loaded.name}.{name} computes in float64: {upcasts}"
            checked += 1
    assert checked >= 30
