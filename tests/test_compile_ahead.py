"""The cold start's helper process (``runtime/compile_ahead.py``): on a cold start it compiles the sharded
step's update entry and the model's later functions into Numba's cache while this process compiles the
gradients entry (or, before a whole-batch step, the later functions while this process compiles the
step); this process then loads them from the cache, and trains and evaluates as without it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from layergen.runtime import compile_ahead, sharded
from layergen.runtime.compile_ahead import Job, njit_job
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.network import Architecture, Network

# architectures of this file alone, so that their modules start cold in every test session
FLOW = FlowArchitecture(dim=3, couplings=2, hidden=5, depth=1, activation="tanh", bound=2.5)
NETWORK = Architecture(6, (9, 4), activation="tanh", loss="softmax_cross_entropy", optimizer="adam")


@pytest.fixture
def helpers_on(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[compile_ahead.Helper]:  # type: ignore[no-untyped-def]
    """The helper turned on, and every helper started (the suite turns it off in ``conftest.py``); the
    models' modules in a cache folder of the test's own, so they start cold even where the caller chose
    a lasting ``LAYERGEN_CACHE_DIR``."""
    monkeypatch.setenv(compile_ahead.ENVIRONMENT, "1")
    monkeypatch.setenv("LAYERGEN_CACHE_DIR", str(tmp_path))
    started: list[compile_ahead.Helper] = []
    original = compile_ahead.Helper.__init__

    def recording(self, module, jobs):  # type: ignore[no-untyped-def]
        original(self, module, jobs)
        started.append(self)

    monkeypatch.setattr(compile_ahead.Helper, "__init__", recording)
    return started


def test_a_cold_flow_loads_what_the_helper_compiled_and_computes_with_it(helpers_on) -> None:  # type: ignore[no-untyped-def]
    flow = Flow(FLOW, np.float64, seed=1, lr=1e-2)
    x = np.random.default_rng(2).normal(size=(96, 3))
    before = flow.theta.copy()
    loss = flow.step(x)
    assert len(helpers_on) == 1 and helpers_on[0].reported == {"_shard_update_float64"}
    # the update entry (the helper's): Adam's first step moves θ by lr·g/(|g| + ε), m̂ = g and v̂ = g²
    gradient = flow.grad.copy()
    np.testing.assert_allclose(flow.theta, before - 1e-2 * gradient / (np.abs(gradient) + 1e-8), rtol=1e-12, atol=1e-15)
    # log_prob (the helper's) at the step's parameters gives the step's NLL (the gradients entry's, this process's)
    flow.theta[...] = before
    assert -flow.log_prob(x).mean() == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(flow.inverse(flow.latent(x)), x, atol=1e-12)  # sample (the helper's) inverts it
    assert helpers_on[0].reported == {"_shard_update_float64", "log_prob", "sample"}
    assert helpers_on[0].process.wait(timeout=60) == 0
    entries = {entry.__wrapped__: entry for entry in sharded._registered.values()}
    assert entries[flow.module._shard_update_float64].cache_hits == 1  # loaded, not compiled here
    assert entries[flow.module._shard_gradients_float64].cache_hits == 0  # compiled here meanwhile
    for name in ("log_prob", "sample"):
        stats = getattr(flow.module, name).stats
        assert sum(stats.cache_hits.values()) == 1 and not stats.cache_misses, (name, stats)
    # a warm start (the entries in Numba's cache) starts no helper
    Flow(FLOW, np.float64, seed=1).step(x)
    assert len(helpers_on) == 1


def test_a_cold_network_predicts_with_the_helpers_compile(helpers_on) -> None:  # type: ignore[no-untyped-def]
    net, whole = Network(NETWORK, np.float32, seed=3), Network(NETWORK, np.float32, seed=3, shards=1)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 80)]
    assert net.step(x, y) == pytest.approx(whole.step(x, y), rel=2e-5)
    assert len(helpers_on) == 1
    np.testing.assert_allclose(net.predict(x), whole.predict(x), rtol=2e-5, atol=1e-6)
    assert helpers_on[0].reported == {"_shard_update_float32", "predict"}
    stats = net.module.predict.stats
    assert sum(stats.cache_hits.values()) == 1 and not stats.cache_misses


def test_a_helper_that_fails_leaves_the_compile_to_this_process(helpers_on) -> None:  # type: ignore[no-untyped-def]
    module = Flow(FLOW, np.float64).module
    compile_ahead.start(module, [Job("no_such_function"), Job("log_prob")])
    assert compile_ahead.wait_for(module, "no_such_function") is False  # the helper raised and ended
    assert compile_ahead.wait_for(module, "log_prob") is False
    assert helpers_on[0].process.returncode not in (0, None)
    assert compile_ahead.wait_for(module, "log_prob") is False  # nothing pending any more


def test_the_helper_is_off_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compile_ahead.ENVIRONMENT, "0")
    module = Flow(FLOW, np.float64).module
    compile_ahead.start(module, [Job("log_prob")])
    assert not compile_ahead.wait_for(module, "log_prob")


def test_the_helper_is_off_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compile_ahead.ENVIRONMENT, "1")
    assert compile_ahead.enabled() is (len(os.sched_getaffinity(0)) > 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # a process bound to one core
    assert not compile_ahead.enabled()


def test_jobs_name_the_types_the_dispatcher_specialises_on() -> None:
    c = np.zeros((3, 2), np.float32)
    job = njit_job("f", (c, np.asfortranarray(c), c[:, ::2], np.zeros(4), 0.5, np.float64(2.0)))
    assert job.arguments == (("float32", 2, "C"), ("float32", 2, "F"), ("float32", 2, "A"), ("float64", 1, "C"),
                             ("float64", 0, ""), ("float64", 0, ""))
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable arrays only"):
        njit_job("f", (frozen,))
    with pytest.raises(ValueError, match="no helper job for an argument of type int"):
        njit_job("f", (3,))


def test_a_cold_whole_batch_step_has_the_helper_compile_predict(helpers_on) -> None:  # type: ignore[no-untyped-def]
    # below 64 rows the step is not sharded: the helper compiles predict while this process compiles the step
    net, other = Network(NETWORK, np.float64, seed=5), Network(NETWORK, np.float64, seed=5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(24, 6))
    labels = rng.integers(0, 4, 24)
    y = np.eye(4)[labels]
    before = net.theta.copy()
    loss = net.step(x, y)
    assert len(helpers_on) == 1 and helpers_on[0].process.args[-1].count('"predict"') == 1
    assert not net._shards.later  # asked once: later steps, of any size, ask no more
    other.step(x, y)  # the same module: no second helper for a function the first one compiles
    assert len(helpers_on) == 1
    net.theta[...] = before
    logits = net.predict(x)
    assert helpers_on[0].reported == {"predict"} and helpers_on[0].process.wait(timeout=60) == 0
    stats = net.module.predict.stats
    assert sum(stats.cache_hits.values()) == 1 and not stats.cache_misses  # loaded, not compiled here
    # predict (the helper's) at the step's parameters gives the step's loss (this process's): the mean
    # softmax cross-entropy of its logits
    top = logits.max(axis=1)
    cross_entropy = top + np.log(np.exp(logits - top[:, None]).sum(axis=1)) - logits[np.arange(24), labels]
    assert cross_entropy.mean() == pytest.approx(loss, rel=1e-12)


def test_a_cold_batch_norm_flow_has_the_helper_compile_log_prob_and_sample(helpers_on) -> None:  # type: ignore[no-untyped-def]
    # batch norm couples the samples, so the step is never sharded; log_prob and sample compile meanwhile
    flow = Flow(FlowArchitecture(dim=3, couplings=2, hidden=5, depth=1, activation="tanh", bound=2.5, batchnorm=True),
                np.float64, seed=1)
    assert flow.shards == 1
    x = np.random.default_rng(7).normal(size=(40, 3))
    flow.hypers["lr"] = 0.0  # heads stay at 0: every coupling the identity
    moments = flow.const.copy()  # batch norm's running moments, (0, 1), which the step moves
    flow.step(x)
    assert len(helpers_on) == 1
    flow.const[...] = moments
    # two batch norms in evaluation, running moments (0, 1): each scales x by 1/√(1 + ε), ε = 1e-5 (its spec's)
    z, log_det = x / (1 + 1e-5), -3 * np.log(1 + 1e-5)
    expected = -0.5 * (z**2).sum(axis=1) - 1.5 * np.log(2 * np.pi) + log_det
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-12)
    np.testing.assert_allclose(flow.inverse(flow.latent(x)), x, atol=1e-12)
    assert helpers_on[0].reported == {"log_prob", "sample"} and helpers_on[0].process.wait(timeout=60) == 0
    for name in ("log_prob", "sample"):
        stats = getattr(flow.module, name).stats
        assert sum(stats.cache_hits.values()) == 1 and not stats.cache_misses, (name, stats)
