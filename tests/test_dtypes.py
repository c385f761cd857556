"""float32 kernels compute in float32: no silent upcast anywhere in a compiled kernel."""

from __future__ import annotations

import types

import numpy as np

from numba import njit, typeof
from numba.core.compiler import CompilerBase, DefaultPassBuilder, Flags, _EarlyPipelineCompletion, compile_extra
from numba.core.compiler_machinery import FunctionPass, PassManager, register_pass
from numba.core.registry import cpu_target

from layergen.verify.harness import KernelCall

from conftest import CATALOG, call_capturing_arguments, derivation, module
from layergen.verify.checks import verifier_for


@register_pass(mutates_CFG=False, analysis_only=True)
class StopAtTypes(FunctionPass):
    """Ends a compilation once its types are inferred, returning them: the typemap and return type."""
    _name = "stop_at_types"

    def __init__(self) -> None:
        FunctionPass.__init__(self)

    def run_pass(self, state) -> bool:  # type: ignore[no-untyped-def]
        raise _EarlyPipelineCompletion((dict(state.typemap), state.return_type))


class TypesOnly(CompilerBase):
    """Numba's nopython pipeline up to and including its typed passes (as ``@njit`` runs them), not
    the lowering to machine code, which is most of a compilation's time and decides no type."""

    def define_pipelines(self) -> list[PassManager]:
        manager = PassManager("types only")
        manager.passes.extend(DefaultPassBuilder.define_untyped_pipeline(self.state).passes)
        manager.passes.extend(DefaultPassBuilder.define_typed_pipeline(self.state).passes)
        manager.add_pass(StopAtTypes, "return the inferred types")
        manager.finalize()
        return [manager]


def float64_variables(call: KernelCall, hypers: set[str], args: tuple) -> dict[str, str]:
    """Variables typed float64 when the kernel's Python source is typed afresh with these float32
    arguments (cached overloads carry no type annotation), except hyperparameter arguments (Python
    floats, cast to the dtype on entry) and literal constants."""
    flags = Flags()
    flags.nrt = True
    flags.error_model = "numpy"
    typemap, return_type = compile_extra(cpu_target.typing_context, cpu_target.target_context, call.function.py_func,
                                         tuple(typeof(a) for a in args), None, flags, {}, pipeline_class=TypesOnly)
    found: dict[str, str] = {}
    if "float64" in str(return_type):  # Numba boxes float32 as a Python float
        found["<return>"] = str(return_type)
    for var, typ in typemap.items():
        base = var.split(".")[-1] if var.startswith("arg.") else var
        if "float64" in str(typ) and base not in hypers and not var.startswith("$const"):
            found[var] = str(typ)
    return found


def test_the_type_check_finds_a_float64_constant() -> None:
    """The measure itself: a float64 constant makes a float32 kernel compute in float64, a float32 one
    does not."""
    @njit
    def upcast(x, out):  # type: ignore[no-untyped-def]
        out[0] = x[0] * np.float64(1.5)

    @njit
    def float32_only(x, out):  # type: ignore[no-untyped-def]
        out[0] = x[0] * np.float32(1.5)

    args = (np.ones(2, np.float32), np.zeros(2, np.float32))
    assert float64_variables(types.SimpleNamespace(function=upcast), set(), args)  # type: ignore[arg-type]
    assert not float64_variables(types.SimpleNamespace(function=float32_only), set(), args)  # type: ignore[arg-type]


def test_no_float64_in_float32_kernels() -> None:
    checked = 0
    for loaded in CATALOG:
        mod = module(loaded.name)
        verifier = verifier_for(derivation(loaded.name), mod, seed=0)
        for name, call in verifier.kernels.items():
            rng = np.random.default_rng(0)
            values = verifier.inputs_for(name, rng, np.float32, awkward=False)
            outputs, _, arguments = call_capturing_arguments(call, values, np.float32)
            assert all(v.dtype == np.float32 for v in outputs.values())
            hypers = {n for n, role, _ in call.args if role == "hyper"}
            upcasts = float64_variables(call, hypers, arguments)
            assert not upcasts, f"{loaded.name}.{name} computes in float64: {upcasts}"
            checked += 1
    assert checked >= 30
