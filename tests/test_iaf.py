"""The inverse autoregressive flow: its density through the incremental inverse against an
independent Jacobian and the change of measure, round trips, and the reverse-KL gradient of
the fused guided step against finite differences of the KL estimate."""

from __future__ import annotations

import numpy as np
import pytest

from layergen.errors import LayergenError
from layergen.runtime.flow import EVALUATION_ROWS, Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.iaf import InverseAutoregressiveFlow, standard_normal_log_density
from layergen.runtime.regularise import weigh_and_clip_rows

SMALL = FlowArchitecture(dim=3, couplings=2, hidden=4, depth=1, activation="tanh", transform="maf")


def randomised(arch: FlowArchitecture, seed: int, scale: float = 0.5) -> InverseAutoregressiveFlow:
    iaf = InverseAutoregressiveFlow(arch, np.float64, seed)
    rng = np.random.default_rng(seed)
    for view in iaf.maf.params.values():
        view[...] = rng.normal(0.0, scale, view.shape)
    return iaf


def test_density_against_a_finite_difference_jacobian_of_the_sampling_map() -> None:
    """log q(x) from the incremental inverse equals log N(ε) − log|det ∂x/∂ε| with the Jacobian of
    the one-pass sampling map taken by central differences (NumPy's slogdet), knowing nothing of
    the MADE's triangular structure."""
    iaf = randomised(SMALL, seed=1)
    eps = np.random.default_rng(2).normal(size=(6, 3))
    x = iaf.transform(eps)
    h = 1e-6
    for row in range(len(eps)):
        columns = []
        for j in range(3):
            step = np.zeros((1, 3))
            step[0, j] = h
            columns.append((iaf.transform(eps[row:row + 1] + step) - iaf.transform(eps[row:row + 1] - step))[0] / (2 * h))
        _, logdet = np.linalg.slogdet(np.column_stack(columns))
        expected = standard_normal_log_density(eps[row:row + 1])[0] - logdet
        assert iaf.log_prob(x[row:row + 1])[0] == pytest.approx(expected, abs=1e-7)
    np.testing.assert_allclose(iaf.maf.inverse(x), eps, atol=1e-12)  # the incremental inverse undoes the one pass


def test_blocks_of_rows_give_the_one_block_results_and_bound_the_buffers() -> None:
    """``transform`` and ``log_prob`` in row blocks (a short last one) equal one block of every row; by
    default no work buffer is taller than ``EVALUATION_ROWS``, whatever the number of rows."""
    iaf = randomised(SMALL, seed=4)
    eps = np.random.default_rng(5).normal(size=(1001, 3))
    x = iaf.transform(eps, batch=1001)
    np.testing.assert_allclose(iaf.transform(eps, batch=300), x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(iaf.log_prob(x, batch=300), iaf.log_prob(x, batch=1001), rtol=1e-13, atol=1e-13)
    fresh = randomised(SMALL, seed=4)
    fresh.log_prob(fresh.sample(3 * EVALUATION_ROWS + 1))
    assert max(fresh._buffers) == EVALUATION_ROWS
    assert max([*fresh.maf._work, *(height for height, _ in fresh.maf._evaluation_work)]) <= EVALUATION_ROWS


def test_density_integrates_to_one() -> None:
    # the MAF of the checkpoint and distillation tests: one compilation of its passes for the file
    iaf = randomised(FlowArchitecture(dim=2, couplings=2, hidden=4, transform="maf"), seed=3, scale=0.3)
    grid = np.linspace(-9.0, 9.0, 601)
    gx, gy = np.meshgrid(grid, grid)
    mass = np.exp(iaf.log_prob(np.column_stack([gx.ravel(), gy.ravel()]))).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)


def kl_estimate(iaf: InverseAutoregressiveFlow, teacher: Flow, eps: np.ndarray) -> float:
    """The reverse KL estimate from densities alone: mean log q(x) − mean log p(x) at x = F(ε)."""
    x = iaf.transform(eps)
    return float(np.mean(iaf.log_prob(x)) - np.mean(teacher.log_prob(x)))


def test_guided_step_is_the_gradient_of_the_reverse_kl() -> None:
    iaf = randomised(SMALL, seed=4, scale=0.4)
    teacher = Flow(FlowArchitecture(dim=3, couplings=3, hidden=5, depth=1, activation="tanh"), np.float64, seed=5)
    rng = np.random.default_rng(6)
    for view in teacher.params.values():
        view[...] = rng.normal(0.0, 0.4, view.shape)
    eps = rng.normal(size=(12, 3))
    iaf.hypers["lr"] = 0.0  # fills the gradient, leaves the parameters
    estimate = iaf.distill_step(teacher, eps)
    assert estimate == pytest.approx(kl_estimate(iaf, teacher, eps), rel=1e-10)
    h = 1e-6
    for name, view in iaf.maf.params.items():
        grad = iaf.maf.grads[name]
        for index in np.ndindex(view.shape):
            keep = view[index]
            view[index] = keep + h
            up = kl_estimate(iaf, teacher, eps)
            view[index] = keep - h
            down = kl_estimate(iaf, teacher, eps)
            view[index] = keep
            assert grad[index] == pytest.approx((up - down) / (2 * h), abs=2e-7), f"{name}{index}"


def test_tempered_and_clipped_steps() -> None:
    """β weighs the teacher's part of the gradient (KL(q‖p^β/Z) is linear in β); clipping bounds each
    sample's teacher gradient by norm; the estimate returned stays the plain KL."""
    iaf = randomised(SMALL, seed=4, scale=0.4)
    teacher = Flow(FlowArchitecture(dim=3, couplings=3, hidden=5, depth=1, activation="tanh"), np.float64, seed=5)
    eps = np.random.default_rng(6).normal(size=(12, 3))
    iaf.hypers["lr"] = 0.0
    plain = iaf.distill_step(teacher, eps)
    grads = {}
    for weight in (0.0, 0.3, 1.0):
        assert iaf.distill_step(teacher, eps, weight=weight) == pytest.approx(plain, rel=1e-13)
        grads[weight] = iaf.maf.grad.copy()
    np.testing.assert_allclose(grads[0.3], grads[0.0] + 0.3 * (grads[1.0] - grads[0.0]), rtol=1e-10, atol=1e-14)
    assert not np.allclose(grads[0.0], grads[1.0])
    g = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    weigh_and_clip_rows(g, 0.5, 1.0)  # norms 5, 0.5, 0: the first is clipped to norm 1, then all are halved
    np.testing.assert_allclose(g, [[0.3, 0.4], [0.15, 0.2], [0.0, 0.0]], rtol=1e-15)


def test_teacher_gradient_changes_nothing_of_the_teacher() -> None:
    teacher = Flow(FlowArchitecture(dim=2, couplings=2, hidden=4), np.float64, seed=7)
    before = teacher.theta.copy(), teacher._m.copy(), teacher._v.copy(), teacher.step_count
    x = np.random.default_rng(8).normal(size=(10, 2))
    nll, grad = teacher.input_gradient(x)
    assert nll == pytest.approx(-teacher.log_prob(x).mean(), rel=1e-12)
    np.testing.assert_allclose(grad, x / 10, rtol=1e-12)  # couplings at the identity: ∂(½|x|²)/∂x / N
    for old, new in zip(before, (teacher.theta, teacher._m, teacher._v, teacher.step_count)):
        np.testing.assert_array_equal(old, new)


def test_only_a_plain_maf_architecture_is_an_iaf() -> None:
    with pytest.raises(LayergenError, match="must be a plain MAF"):
        InverseAutoregressiveFlow(FlowArchitecture(dim=2))
    with pytest.raises(LayergenError, match="must be a plain MAF"):
        InverseAutoregressiveFlow(FlowArchitecture(dim=2, transform="maf", actnorm=True))


def test_an_iaf_checkpoint_loads_as_an_iaf(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from layergen.runtime.flow_data import two_moons
    from layergen.runtime.flow_checkpoint import load_flow
    from layergen.runtime.iaf_train import DistillConfig, DistillProgress, save_iaf

    iaf = randomised(FlowArchitecture(dim=2, couplings=2, hidden=4, transform="maf"), seed=9)
    save_iaf(tmp_path, iaf, two_moons(n=100), DistillConfig(), DistillProgress(step=50, best_kl=0.5, best_step=50))
    loaded, meta = load_flow(tmp_path)
    assert isinstance(loaded, InverseAutoregressiveFlow) and meta["kind"] == "iaf"
    np.testing.assert_array_equal(loaded.sample(20, seed=1), iaf.sample(20, seed=1))  # the one-pass direction


def test_a_distillation_stopped_and_resumed_ends_bit_for_bit_where_the_whole_run_ends(
        tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C during the distillation keeps the student as it was at its best held-out KL so far, with Adam's
    moments, the step and the ε generator's state; `--resume` loads the teacher saved beside it and repeats
    the steps after the checkpoint, ending with the parameters, moments and KL of the run never stopped. (A
    small teacher and student stand in for the example's, so the test takes seconds.)"""
    import json

    from layergen.cli import main
    from layergen.runtime.flow_settings import FlowConfig
    from layergen.runtime.flow_train import FLOW_EXAMPLES
    from layergen.runtime.iaf_train import IAF_EXAMPLES, DistillConfig

    monkeypatch.chdir(tmp_path)
    # the architectures of the tests above, whose modules this process has compiled already
    monkeypatch.setitem(FLOW_EXAMPLES, "two-moons", (FlowArchitecture(dim=2, couplings=2, hidden=4),
                                                     FlowConfig(steps=100, eval_every=50)))
    monkeypatch.setitem(IAF_EXAMPLES, "two-moons-iaf", (FlowArchitecture(dim=2, couplings=2, hidden=4, transform="maf"),
                                                        DistillConfig(steps=200, eval_every=25, anneal=100)))
    assert main(["train", "--example", "two-moons-iaf", "--out", "whole", "--quiet"]) == 0
    real_step, calls = InverseAutoregressiveFlow.distill_step, []

    def stopped_at_the_121st_step(self, *args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 121:
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(InverseAutoregressiveFlow, "distill_step", stopped_at_the_121st_step)
    assert main(["train", "--example", "two-moons-iaf", "--out", "parts", "--quiet"]) == 130
    held = json.loads((tmp_path / "parts" / "checkpoint.json").read_text())["step"]
    assert held in (25, 50, 75, 100)  # the best held-out KL before the stop: evaluated every 25 steps
    assert f"the checkpoint in parts holds the best flow so far (step {held})" in capsys.readouterr().err
    monkeypatch.setattr(InverseAutoregressiveFlow, "distill_step", real_step)
    assert main(["train", "--resume", "parts", "--steps", str(held)]) == 2
    assert "argument --steps: the checkpoint in parts holds step" in capsys.readouterr().err
    # continued in another folder, which gets the teacher's checkpoint too
    assert main(["train", "--resume", "parts", "--out", "resumed", "--quiet"]) == 0
    assert "teacher two-moons loaded" in capsys.readouterr().out
    assert (tmp_path / "resumed" / "teacher" / "checkpoint.npz").is_file()
    with np.load("whole/checkpoint.npz") as whole, np.load("resumed/checkpoint.npz") as resumed:
        for key in ("theta", "const", "adam_m", "adam_v"):
            assert np.array_equal(whole[key], resumed[key]), key
    descriptions = [json.loads((tmp_path / run / "checkpoint.json").read_text()) for run in ("whole", "resumed")]
    assert descriptions[0]["distill"] == descriptions[1]["distill"] and descriptions[0]["distill"]["best_step"] > 0
    assert descriptions[0]["history"] == descriptions[1]["history"]
