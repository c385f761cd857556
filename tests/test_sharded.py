"""The sharded training step (runtime/sharded.py): the batch split into shards, one per thread,
gives the gradient, loss and update of the whole batch, for networks and flows, with even and
uneven shards; it is used where it applies and nowhere else; the BLAS's thread count is restored."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit

import layergen.runtime.sharded as sharded_module
from layergen.errors import LayergenError
from layergen.runtime.blas import CONTROLLABLE, blas_threads, set_blas_threads
from layergen.runtime.flow import EVALUATION_ROWS, Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.network import Architecture, Network
from layergen.runtime.sharded import MIN_SHARD_ROWS, TWO_CORE_ROWS

pytestmark = pytest.mark.skipif(not CONTROLLABLE, reason="SciPy's BLAS is not OpenBLAS: the runtime never shards")

MLP = Architecture(5, (16, 16, 3), activation="tanh", loss="softmax_cross_entropy", optimizer="adam")
REGRESSOR = Architecture(4, (12, 2), activation="relu", loss="mse", optimizer="rmsprop")
#: dropout's masks are numbered by row, so a shard draws exactly its rows of the whole batch's masks
DROPOUT = Architecture(5, layers=("dense 16", "tanh", "dropout 0.3", "dense 16", "relu", "dropout 0.5", "dense 3"))


def batches(rows: int, inputs: int, classes: int, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(rows, inputs)), np.eye(classes)[rng.integers(0, classes, rows)]) for _ in range(count)]


def same_start(sharded: Network | Flow, whole: Network | Flow) -> None:
    """Each step starts both from the same parameters and optimizer state: Adam's first steps turn
    a gradient's last-bit differences into parameter differences of up to lr/ε times their size
    (10⁵ at the defaults), so states compared after several steps would say nothing about one step."""
    sharded.theta[...] = whole.theta
    states = (sharded._states, whole._states) if isinstance(whole, Network) else ((sharded._m, sharded._v),
                                                                                     (whole._m, whole._v))
    for mine, theirs in zip(*states):
        mine[...] = theirs


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("arch", [MLP, REGRESSOR, DROPOUT], ids=["classifier-adam", "regressor-rmsprop", "dropout"])
@pytest.mark.parametrize("shards, rows", [(2, 64), (2, 131), (3, 100)], ids=["even", "uneven", "three"])
def test_sharded_network_step_equals_the_whole_batch_step(arch: Architecture, dtype: type, rtol: float, shards: int,
                                                          rows: int) -> None:
    sharded = Network(arch, dtype, seed=1, shards=shards)
    whole = Network(arch, dtype, seed=1, shards=1)
    assert sharded.sharded(rows) and not whole.sharded(rows)
    for x, t in batches(rows, arch.inputs, arch.sizes[-1], 4):
        x, t = x.astype(dtype), t.astype(dtype)
        same_start(sharded, whole)
        assert sharded.step(x, t) == pytest.approx(whole.step(x, t), rel=rtol)
        scale = np.abs(whole.grad).max()
        np.testing.assert_allclose(sharded.grad, whole.grad, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(sharded.theta, whole.theta, rtol=rtol, atol=1e3 * rtol)
    assert sharded.step_count == whole.step_count == 4


def test_gradient_after_a_sharded_step_then_a_whole_batch_step_is_the_whole_batch_gradient() -> None:
    """After a sharded step the gradient lies in blocks, one per shard's buffer, and is gathered into
    ``grad`` when read; a whole-batch step after it must leave its own gradient there, not the
    gathered blocks of the earlier step, whether or not ``grad`` was read in between."""
    (x_big, t_big), (x_small, t_small) = batches(3 * MIN_SHARD_ROWS, MLP.inputs, 3, 1)[0], batches(8, MLP.inputs, 3, 1)[0]
    for read_between in (False, True):
        net, reference = Network(MLP, np.float64, seed=2), Network(MLP, np.float64, seed=2, shards=1)
        assert net.sharded(len(x_big)) and not net.sharded(len(x_small))
        net.step(x_big, t_big)
        if read_between:
            net.grads["W0"].copy()
        same_start(net, reference)
        reference.step_count = net.step_count
        net.step(x_small, t_small)
        reference.step(x_small, t_small)
        np.testing.assert_array_equal(net.grad, reference.grad)
        for name, grad in reference.grads.items():
            np.testing.assert_array_equal(net.grads[name], grad, err_msg=name)


def test_each_step_takes_its_path_from_its_own_inputs_and_settings() -> None:
    """``Network.step`` keeps the arrays it passes per batch size, but the path is chosen at every call:
    at one batch size, a C-ordered batch is sharded (with clipping by norm or a weight penalty, by the
    regularised sharded step), a Fortran-ordered one runs the whole-batch step (bit-identical to an
    unsharded network), with or without a penalty, and the next C-ordered batch is sharded again."""
    (x, t), = batches(2 * MIN_SHARD_ROWS, MLP.inputs, 3, 1, seed=5)
    net, reference = Network(MLP, np.float64, seed=3), Network(MLP, np.float64, seed=3, shards=1)
    calls: list[str] = []
    original_run, original_regularised = net._shards.run, net._shards.run_regularised
    net._shards.run = lambda *args: calls.append("sharded") or original_run(*args)  # type: ignore[method-assign]
    net._shards.run_regularised = (  # type: ignore[method-assign]
        lambda *args: calls.append("regularised") or original_regularised(*args))
    settings = (("C", 0.0, 0.0), ("F", 0.0, 0.0), ("C", 1e3, 0.0), ("C", 0.0, 0.5), ("F", 0.0, 0.5), ("C", 0.0, 0.0))
    for order, clip_norm, l2 in settings:
        net.clip_norm = reference.clip_norm = clip_norm
        net.l2 = reference.l2 = l2
        same_start(net, reference)
        reference.step_count = net.step_count
        expected = reference.step(x, t)
        calls.append("step")
        loss = net.step(np.asarray(x, order=order), np.asarray(t, order=order))
        if calls[-1] == "step":  # the whole-batch path: the same arithmetic as the unsharded network
            assert loss == expected
            np.testing.assert_array_equal(net.grad, reference.grad)
        else:
            assert loss == pytest.approx(expected, rel=1e-12)
            np.testing.assert_allclose(net.grad, reference.grad, rtol=1e-12, atol=1e-15)
    assert calls == ["step", "sharded", "step", "step", "regularised", "step", "regularised", "step", "step",
                     "sharded"]


REGULARISERS = {"l2": {"l2": 0.5}, "l1": {"l1": 0.02}, "clip_value": {"clip_value": 0.01},
                "clip_norm": {"clip_norm": 0.05}, "max_norm": {"max_norm": 0.5},
                "all": {"l2": 0.3, "l1": 0.01, "clip_value": 0.02, "clip_norm": 0.1, "max_norm": 0.8}}


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("regulariser", REGULARISERS)
@pytest.mark.parametrize("shards, rows", [(2, 131), (3, 100)], ids=["uneven", "three"])
def test_regularised_sharded_step_equals_the_whole_batch_regularised_step(dtype: type, rtol: float, regulariser: str,
                                                                          shards: int, rows: int) -> None:
    """Penalties, clipping and max-norm in the sharded step (``runtime/sharded_regularised.py``): loss,
    gradient and update equal the whole-batch regularised step's, each regulariser alone and all at once,
    with the blocks' boundaries inside the weights; and each regulariser did act (the gradient differs
    from the unregularised one, or the clipped norm and the columns' norms are at their limits)."""
    settings = REGULARISERS[regulariser]
    sharded = Network(MLP, dtype, seed=1, shards=shards)
    whole = Network(MLP, dtype, seed=1, shards=1)
    plain = Network(MLP, dtype, seed=1, shards=1)
    for net in (sharded, whole):
        for name, value in settings.items():
            setattr(net, name, value)
        net.penalty_examples = 40
    for x, t in batches(rows, MLP.inputs, 3, 3, seed=7):
        x, t = x.astype(dtype), t.astype(dtype)
        same_start(sharded, whole)
        same_start(plain, whole)
        assert sharded.step(x, t) == pytest.approx(whole.step(x, t), rel=rtol)
        scale = np.abs(whole.grad).max()
        np.testing.assert_allclose(sharded.grad, whole.grad, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(sharded.theta, whole.theta, rtol=rtol, atol=1e3 * rtol)
        plain.step(x, t)
        acted = sharded.theta if settings.keys() == {"max_norm"} else sharded.grad  # max-norm acts on the weights
        assert np.abs(acted - (plain.theta if acted is sharded.theta else plain.grad)).max() > 100 * rtol * scale
        if "clip_norm" in settings:
            assert np.linalg.norm(sharded.grad.astype(np.float64)) == pytest.approx(settings["clip_norm"], rel=10 * rtol)
        if "max_norm" in settings:
            norms = [np.linalg.norm(sharded.params[name], axis=0).max() for name in ("W0", "W1", "W2")]
            assert max(norms) <= settings["max_norm"] * (1 + 10 * rtol)
    assert sharded.sharded(rows) and sharded.step_count == 3


def test_sharded_gradient_equals_sympy_on_the_composed_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three samples of the SymPy test split into shards of one and two rows."""
    from test_network import symbolic_gradients  # tests/ is on the path, not a package

    monkeypatch.setattr(sharded_module, "MIN_SHARD_ROWS", 1)
    arch = Architecture(inputs=3, widths=(4, 2), activation="tanh", loss="softmax_cross_entropy", optimizer="sgd")
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3))
    labels = np.array([0, 1, 1])
    assert net.sharded(3)
    net.step(x, np.eye(2)[labels])
    for name, exact in symbolic_gradients(net, x, labels).items():
        np.testing.assert_allclose(net.grads[name], exact, rtol=1e-10, atol=1e-13)


def test_sharded_gaussian_nll_gradient_equals_sympy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression target narrower than the output (μ and s per target), split into shards: each shard
    reads its rows of the two target columns, and the merged gradient is the composed expression's."""
    from test_network import symbolic_gaussian_gradients

    monkeypatch.setattr(sharded_module, "MIN_SHARD_ROWS", 1)
    arch = Architecture(inputs=3, widths=(4, 4), activation="tanh", loss="gaussian_nll", optimizer="sgd")
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    assert net.sharded(3)
    loss = net.step(x, y)
    value, expected = symbolic_gaussian_gradients(net, x, y)
    assert loss == pytest.approx(value, rel=1e-12)
    for name, exact in expected.items():
        np.testing.assert_allclose(net.grads[name], exact, rtol=1e-10, atol=1e-13)


FLOWS = {
    "realnvp": FlowArchitecture(dim=3, couplings=3, hidden=8),
    "maf": FlowArchitecture(dim=3, couplings=2, hidden=8, transform="maf"),
    "actnorm-lu-diagonal": FlowArchitecture(dim=3, couplings=3, hidden=8, actnorm=True, mixing="lu", base="diagonal"),
    "nice-mixture": FlowArchitecture(dim=2, couplings=2, hidden=8, transform="nice", base="mixture", components=3),
    # test_flow's SMALL_SOS: the whole-batch step its SymPy test compiles, loaded from the session's cache
    "sos": FlowArchitecture(dim=2, couplings=2, hidden=2, depth=1, activation="tanh", transform="sos"),
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_sharded_flow_step_equals_the_whole_batch_step(name: str) -> None:
    arch = FLOWS[name]
    sharded = Flow(arch, np.float64, seed=2)
    whole = Flow(arch, np.float64, seed=2, shards=1)
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4, 97, arch.dim))  # 97 rows: shards of 48 and 49
    if arch.actnorm:
        sharded.initialise_actnorm(data[0])
        whole.initialise_actnorm(data[0])
    assert sharded.sharded(97)
    for x in data:
        same_start(sharded, whole)
        assert sharded.step(x) == pytest.approx(whole.step(x), rel=1e-12)
        np.testing.assert_allclose(sharded.grad, whole.grad, rtol=1e-10, atol=1e-12 * np.abs(whole.grad).max())
        np.testing.assert_allclose(sharded.theta, whole.theta, rtol=1e-10, atol=1e-9)


def test_sharded_step_gives_the_same_numbers_with_one_thread() -> None:
    """The shard count, not the machine's core count, fixes the arithmetic: a seeded run is reproducible."""
    arch = FLOWS["realnvp"]
    x = np.random.default_rng(5).normal(size=(128, 3))
    results = []
    threads = numba.get_num_threads()
    for count in (threads, 1):
        numba.set_num_threads(count)
        try:
            flow = Flow(arch, np.float64, seed=2)
            losses = [flow.step(x) for _ in range(3)]
        finally:
            numba.set_num_threads(threads)
        results.append((losses, flow.theta.copy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_sharding_applies_only_where_the_samples_are_independent() -> None:
    net = Network(MLP, np.float64)
    assert net.shards == 2 and net.sharded(2 * MIN_SHARD_ROWS) and not net.sharded(2 * MIN_SHARD_ROWS - 1)
    net.clip_norm, net.l1 = 1.0, 1e-4  # clipping and penalties run in the regularised sharded step
    assert net.sharded(1024)
    assert Network(Architecture(5, layers=("dense 16", "batch_norm", "relu", "dense 3")), np.float64).shards == 1
    assert Network(DROPOUT, np.float64).shards == 2
    assert Flow(FlowArchitecture(dim=2, couplings=2, hidden=4, batchnorm=True), np.float64).shards == 1
    with pytest.raises(LayergenError, match="shards"):
        Network(MLP, np.float64, shards=0)
    with pytest.raises(LayergenError, match="shards"):
        Flow(FLOWS["realnvp"], np.float64, shards=-1)


@njit(cache=False)
def _threads_inside(count: int) -> tuple[int, int]:
    before = blas_threads()
    set_blas_threads(count)
    inside = blas_threads()
    set_blas_threads(before)
    return before, inside


@njit(cache=False)
def _swap_threads(count: int) -> int:
    before = blas_threads()
    set_blas_threads(count)
    return before


def test_blas_thread_count_is_set_and_restored() -> None:
    from threadpoolctl import threadpool_info

    def scipy_blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if "scipy.libs" in i["filepath"] or "/scipy/" in i["filepath"]]

    before = scipy_blas_threads()
    assert _threads_inside(1) == (before[0], 1)
    flow = Flow(FLOWS["realnvp"], np.float64)
    flow.step(np.random.default_rng(0).normal(size=(128, 3)))
    assert scipy_blas_threads() == before


def test_a_serial_step_on_a_small_batch_restores_the_blas_thread_count() -> None:
    """Below ``TWO_CORE_ROWS`` rows the serial steps (plain and regularised) run their BLAS on one
    thread (``sharded_source.one_core_below``); the caller's count must be back after each."""
    original = _swap_threads(2)
    try:
        for clip_norm in (0.0, 1.0):
            net = Network(MLP, np.float64, seed=0)
            net.clip_norm = clip_norm
            (x, y), = batches(TWO_CORE_ROWS - 1, 5, 3, 1)
            assert not net.sharded(len(x))
            net.step(x, y)
            assert _threads_inside(2)[0] == 2, f"clip_norm={clip_norm}"
    finally:
        _swap_threads(original)


@pytest.mark.parametrize("arch", [MLP, DROPOUT], ids=["mlp", "dropout"])
def test_sharded_predict_equals_the_serial_one(arch: Architecture) -> None:
    """A sharded network's prediction runs its row blocks on the evaluation threads, several blocks per
    thread and a short last one, and a block of one thread may be shorter than the other's; dropout is the
    identity there. Below ``TWO_CORE_ROWS`` rows it runs on the calling thread."""
    sharded, whole = Network(arch, np.float64, seed=4), Network(arch, np.float64, seed=4, shards=1)
    assert sharded.shards == 2 and whole.shards == 1
    x = np.random.default_rng(7).normal(size=(5003, 5))
    expected = whole.predict(x, rows=1000)
    for rows in (1000, 64, 5003, 10_000):
        np.testing.assert_allclose(sharded.predict(x, rows=rows), expected, rtol=1e-13, atol=1e-13)
    for n in (TWO_CORE_ROWS - 1, TWO_CORE_ROWS, TWO_CORE_ROWS + 1):
        np.testing.assert_allclose(sharded.predict(x[:n]), expected[:n], rtol=1e-13, atol=1e-13)


def test_row_blocks_cover_every_row_once_and_raise_a_workers_error() -> None:
    from layergen.runtime.row_blocks import in_row_blocks

    seen: list[tuple[int, int, int]] = []
    in_row_blocks(10, 3, 2, lambda worker, start, stop: seen.append((worker, start, stop)))
    assert sorted(seen) == [(0, 0, 3), (0, 6, 9), (1, 3, 6), (1, 9, 10)]

    def failing(worker: int, start: int, stop: int) -> None:
        if start == 3:
            raise ValueError("block 3")

    with pytest.raises(ValueError, match="block 3"):
        in_row_blocks(10, 3, 2, failing)


def sharded_and_whole(arch: FlowArchitecture) -> tuple[Flow, Flow, np.ndarray]:
    """The flow sharded and on one shard, with the same random parameters, and 5003 points to evaluate."""
    sharded, whole = Flow(arch, np.float64, seed=4), Flow(arch, np.float64, seed=4, shards=1)
    rng = np.random.default_rng(7)
    for view in sharded.params.values():
        view[...] = rng.normal(0.0, 0.3, view.shape)
    whole.theta[...] = sharded.theta
    return sharded, whole, rng.normal(size=(5003, arch.dim))


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_latent_and_inverse_in_row_blocks_equal_one_block(name: str) -> None:
    """``latent`` and ``inverse`` run in row blocks, on the evaluation threads when sharded, and give what
    one block of every row gives; sampling many rows allocates no work buffer taller than a block."""
    sharded, whole, x = sharded_and_whole(FLOWS[name])
    z = whole.latent(x, batch=len(x))
    back = whole.inverse(z, batch=len(z))
    np.testing.assert_allclose(back, x, atol=1e-10)
    for flow, batch in ((sharded, 1000), (whole, 700)):
        np.testing.assert_allclose(flow.latent(x, batch=batch), z, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(flow.inverse(z, batch=batch), back, rtol=1e-13, atol=1e-13)
    fresh = Flow(FLOWS[name], np.float64, seed=4)
    fresh.sample(4 * EVALUATION_ROWS + 3)
    assert max([*fresh._work, *(height for height, _ in fresh._evaluation_work)]) <= EVALUATION_ROWS
    with pytest.raises(LayergenError, match="batch must be a positive integer, got 0"):
        fresh.inverse(z, batch=0)


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_sharded_log_prob_equals_the_serial_one(name: str) -> None:
    """Row blocks spread over the evaluation threads, several blocks per thread and a short last one."""
    sharded, whole, x = sharded_and_whole(FLOWS[name])
    np.testing.assert_allclose(sharded.log_prob(x, batch=1000), whole.log_prob(x, batch=1000), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(sharded.log_prob(x[:5]), whole.log_prob(x[:5]), rtol=1e-13, atol=1e-13)
