"""Kernels and compiled steps allocate nothing per call: buffers are allocated once, by the caller, and a
kernel writes into its output arguments (issue 3: "buffers allocated once, not per step"; the project's
standard: no per-step allocation in hot loops).

Counted by Numba's runtime (NRT) allocation statistics, the counters ``NUMBA_NRT_STATS=1`` turns on: every
array a compiled function creates (a temporary such as ``c * A``, ``np.empty``, a copy) is one allocation.
Passing an array in from Python costs one too (its MemInfo), so each call is measured beside a compiled
function that only receives the same arguments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numba import njit
from numba.core.registry import CPUDispatcher
from numba.core.runtime import _nrt_python, rtsys

from layergen.codegen import generate
from layergen.derive import derive
from layergen.runtime.architecture import Architecture
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.modules import import_generated
from layergen.runtime.network import Network
from layergen.spec.loader import LoadedSpec, discover
from layergen.verify.checks import verifier_for

from conftest import CATALOG, call_capturing_arguments, derivation, module

SPECS = Path(__file__).parent / "specs"
TEST_SPECS: list[LoadedSpec] = [s for s in discover([SPECS]) if s.path.is_relative_to(SPECS)]


@njit(cache=True)
def _receive(*args):  # type: ignore[no-untyped-def]
    """Takes the arguments and does nothing: what passing them in costs."""
    return None


@contextmanager
def _counting() -> Iterator[Callable[[], int]]:
    _nrt_python.memsys_enable_stats()
    try:
        yield lambda: rtsys.get_allocation_stats().alloc
    finally:
        _nrt_python.memsys_disable_stats()


def allocations_per_call(function: Callable[..., object], args: tuple) -> int:
    """NRT allocations of one call of the compiled ``function`` on ``args``, beyond passing them in (both
    compiled beforehand, so compilation allocates nothing inside the count)."""
    function(*args)
    _receive(*args)
    with _counting() as allocated:
        start = allocated()
        _receive(*args)
        passing = allocated() - start
        start = allocated()
        function(*args)
        return allocated() - start - passing


def test_the_counter_sees_a_temporary_array() -> None:
    """The measure itself: a kernel that builds ``2 * x`` allocates once a call, one that writes into its
    output does not."""
    @njit
    def scaled(x, out):  # type: ignore[no-untyped-def]
        out[:] = 2.0 * x

    @njit
    def scaled_in_place(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            out[i] = 2.0 * x[i]

    x, out = np.ones(5), np.empty(5)
    assert allocations_per_call(scaled, (x, out)) == 1
    assert allocations_per_call(scaled_in_place, (x, out)) == 0


def kernel_allocations(mod: ModuleType, der: object) -> list[str]:
    """Each kernel of the module, in both dtypes, on the verification's inputs: those that allocate."""
    verifier = verifier_for(der, mod, seed=0)
    found = []
    for name, call in verifier.kernels.items():
        for dtype in (np.float32, np.float64):
            values = verifier.inputs_for(name, np.random.default_rng(0), dtype, awkward=False)
            _, _, arguments = call_capturing_arguments(call, values, dtype)
            count = allocations_per_call(call.function, arguments)
            if count:
                found.append(f"{mod.SPEC_NAME}.{name} ({np.dtype(dtype).name}): {count} per call")
    return found


def test_no_catalog_kernel_allocates() -> None:
    found = [line for loaded in CATALOG for line in kernel_allocations(module(loaded.name), derivation(loaded.name))]
    assert not found, "kernels that allocate per call:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def test_spec_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test specs' generated modules, in the folder returned (one generation for the module's tests)."""
    folder = tmp_path_factory.mktemp("test_specs")
    generate(TEST_SPECS, folder)
    return folder


def test_matrix_specs_with_scalars_and_sums_allocate_nothing(test_spec_modules: Path) -> None:
    """The test specs cover what the catalog's matrix specs do not: a scalar times a product (scaled_dense:
    A = c·X·W), whose lowering once built ``c * scratch`` as a temporary."""
    found = []
    for loaded in TEST_SPECS:
        mod = import_generated(test_spec_modules / loaded.group / f"{loaded.name}.py")
        found += kernel_allocations(mod, derive(loaded))
    assert not found, "kernels that allocate per call:\n" + "\n".join(found)


@contextmanager
def recording(model: Network | Flow) -> Iterator[list[tuple[CPUDispatcher, tuple]]]:
    """Every call the model makes into its fused module's own compiled functions (and into the sharded
    steps, which its shard buffers hold once called), with its arguments. Run the same calls once before:
    a function compiled while its module's names are patched would bind the recorder (Numba reads a
    global when it compiles)."""
    calls: list[tuple[CPUDispatcher, tuple]] = []
    mod = model.module
    targets = [(mod, name, f) for name, f in vars(mod).items()
               if isinstance(f, CPUDispatcher) and f.py_func.__module__ == mod.__name__]
    targets += [(model._shards, name, getattr(model._shards, name)) for name in ("_step", "_regularised_step")
                if getattr(model._shards, name, None) is not None]

    def recorder(function: CPUDispatcher) -> Callable[..., object]:
        def call(*args: object) -> object:
            calls.append((function, args))
            return function(*args)
        return call

    for owner, name, function in targets:
        setattr(owner, name, recorder(function))
    try:
        yield calls
    finally:
        for owner, name, function in targets:
            setattr(owner, name, function)


def compiled_allocations(calls: list[tuple[CPUDispatcher, tuple]]) -> dict[str, int]:
    assert calls, "the model made no call into its compiled module"
    return {function.py_func.__name__: allocations_per_call(function, args) for function, args in calls}


MLP = Architecture(5, (16, 16, 3), activation="tanh", loss="softmax_cross_entropy", optimizer="adam")
DROPOUT = Architecture(5, layers=("dense 16", "tanh", "dropout 0.3", "dense 16", "relu", "dropout 0.5", "dense 3"))


@pytest.mark.parametrize("arch", [MLP, DROPOUT], ids=["mlp", "dropout"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_network_step_and_prediction_allocate_nothing(arch: Architecture, dtype: type) -> None:
    """The whole-batch step (a small batch), the sharded one (its C entries run inside the call), the
    regularised steps (penalties and clipping) and the prediction."""
    assert_network_allocates_nothing(Network(arch, dtype, seed=0))


def test_a_network_with_a_layer_of_your_own_allocates_nothing(test_spec_modules: Path) -> None:
    """A test spec's PReLU, whose slope is a parameter of shape () (a 0-d view into the parameters)."""
    own = (str(test_spec_modules / "layers" / "prelu.py"),)
    arch = Architecture(5, layers=("dense 16", "prelu", "dense 3"), own_modules=own)
    assert_network_allocates_nothing(Network(arch, np.float32, seed=0))


def assert_network_allocates_nothing(net: Network) -> None:
    dtype = net.dtype
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    x, y = rng.normal(size=(200, 5)).astype(dtype), np.eye(3, dtype=dtype)[labels]

    def plain() -> None:
        net.l2 = net.clip_norm = 0.0
        net.step(x[:8], y[:8])
        net.step(x, y)
        net.predict(x)

    def regularised() -> None:
        net.l2, net.clip_norm = 1e-3, 1.0
        net.step(x[:8], y[:8])
        net.step(x, y)

    plain()
    regularised()
    with recording(net) as calls:
        plain()
        regularised()
    counts = compiled_allocations(calls)
    assert {"train_step", "predict", "train_step_regularised"} <= set(counts)
    assert any(name.startswith("train_step_sharded_regularised") for name in counts)
    assert not any(counts.values()), counts


@pytest.mark.parametrize("arch", [FlowArchitecture(dim=3, couplings=3, hidden=8),
                                  FlowArchitecture(dim=3, couplings=2, hidden=8, transform="maf")], ids=["realnvp", "maf"])
def test_a_flow_step_density_and_sampling_allocate_nothing(arch: FlowArchitecture) -> None:
    flow = Flow(arch, np.float64, seed=0)
    x = np.random.default_rng(2).normal(size=(200, arch.dim))

    def run() -> None:
        flow.step(x[:8])
        flow.step(x)
        flow.log_prob(x)
        flow.sample(50)

    run()
    with recording(flow) as calls:
        run()
    counts = compiled_allocations(calls)
    assert {"train_step", "log_prob", "sample"} <= set(counts)
    assert any(name.startswith("train_step_sharded") for name in counts)
    assert not any(counts.values()), counts
