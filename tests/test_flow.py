"""The Real NVP and NICE runtime: its NLL gradient against SymPy's differentiation of the whole composed
flow, round trips, the change-of-measure check (the density integrates to 1), training on two
moons, checkpoints, sampling and bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.utilities.lambdify import implemented_function

from layergen.cli import main
from layergen.errors import LayergenError
from layergen.runtime.flow import Flow, allocate_views
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import DATASETS, FlowData, two_moons
from layergen.runtime.flow_checkpoint import load_flow
from layergen.runtime.flow_train import FlowConfig, train_flow

SMALL = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", bound=2.0)
SMALL_NORMED = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", bound=2.0, actnorm=True,
                                base="diagonal")
SMALL_NICE = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", transform="nice", base="diagonal")
SMALL_SOS = FlowArchitecture(dim=2, couplings=2, hidden=2, depth=1, activation="tanh", transform="sos")
SMALL_LU = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", bound=2.0, actnorm=True, mixing="lu")
SMALL_SOFTCLIP = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", bound=2.0, clamp="softclip")
SMALL_BN = FlowArchitecture(dim=2, couplings=2, hidden=2, depth=1, activation="tanh", bound=2.0, batchnorm=True)
SMALL_MIXTURE = FlowArchitecture(dim=2, couplings=2, hidden=3, depth=1, activation="tanh", bound=2.0, base="mixture",
                                 components=3)


def sos_transformer(x: sp.Expr, coefficients: list[sp.Expr]) -> tuple[sp.Expr, sp.Expr]:
    """y = b + ∫_0^x Σ_j (Σ_i a_ij u^i)² du (000 eq. 86) and log ∂y/∂x (eq. 89), from the notes;
    ``coefficients`` = a_01, a_11, a_21, a_02, a_12, a_22, b."""
    a = [[coefficients[3 * j + i] for i in range(3)] for j in range(2)]
    # ∫_0^x u^{i+i'} du = x^{i+i'+1}/(i+i'+1), term by term (SymPy's integrate chokes on nested couplings)
    integral = sum(a[j][i] * a[j][k] * x ** (i + k + 1) / (i + k + 1) for j in range(2) for i in range(3) for k in range(3))
    slope = sum(sum(a[j][i] * x**i for i in range(3)) ** 2 for j in range(2))
    return coefficients[6] + integral, sp.log(slope)


def randomised(arch: FlowArchitecture, seed: int = 0) -> Flow:
    flow = Flow(arch, np.float64, seed)
    rng = np.random.default_rng(seed)
    for view in flow.params.values():  # heads start at 0; give every parameter a generic value
        view[...] = rng.normal(0.0, 0.7, view.shape)
    return flow


def symbolic_nll(arch: FlowArchitecture, x: np.ndarray, flow: Flow | None = None) -> tuple[sp.Expr, dict[str, sp.Matrix]]:
    """The whole flow's NLL (000 eq. 73) as one SymPy expression of the parameters, written
    from the forward map only: couplings y = x e^{B tanh(ŝ/B)} + t (or e^{ŝ/(1 + |ŝ|/B)}), conditioners tanh MLPs; LU
    mixing y = P·L·U·x with log|det| = ½ log det(W)² from SymPy's det of the whole 2×2 W
    (``flow`` supplies the permutations P)."""
    shapes = {name: (stack.rows, stack.cols) if stack.cols else (1, stack.rows) for stack in arch.layout().trainable
              for name, stack_name, _ in arch.parameter_names() if stack_name == stack.name}
    if arch.base == "mixture":  # components × dim means and log-scales, a row of logits
        shapes.update(mix_mu=(arch.components, 2), mix_s=(arch.components, 2), mix_w=(1, arch.components))
    # real symbols: without the assumption SymPy's automatic simplification asks is_real of nested
    # tanh expressions over and over (27 s instead of 0.2 s for the LU-mixing flow)
    params = {name: sp.Matrix(*shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True)) for name, shape in shapes.items()}
    rows = [[sp.Float(v, 30) for v in row] for row in x]
    logdets = [sp.S.Zero for _ in rows]
    for k in range(arch.couplings):
        for r, u in enumerate(rows):
            rows[r], logdet = _coupling(arch, params, k, u)
            logdets[r] += logdet
        if arch.actnorm:  # y = e^α ⊙ u + β (000 §10.3)
            alpha, beta = params[f"act_alpha{k}"], params[f"act_beta{k}"]
            rows = [[u[i] * sp.exp(alpha[0, i]) + beta[0, i] for i in range(2)] for u in rows]
            logdets = [logdet + sum(alpha) for logdet in logdets]
        if arch.batchnorm:  # 000 eq. 75, 77 with the batch's mean and biased variance: couples the samples
            alpha, beta, eps = params[f"bn_alpha{k}"], params[f"bn_beta{k}"], sp.Float(1e-5, 30)
            mean = [sum(u[i] for u in rows) / len(rows) for i in range(2)]
            var = [sum((u[i] - mean[i]) ** 2 for u in rows) / len(rows) for i in range(2)]
            rows = [[(u[i] - mean[i]) / sp.sqrt(var[i] + eps) * sp.exp(alpha[0, i]) + beta[0, i] for i in range(2)]
                    for u in rows]
            logdets = [logdet + sum(alpha[0, i] - sp.log(var[i] + eps) / 2 for i in range(2)) for logdet in logdets]
        if arch.mixing == "lu":
            L, U = params[f"lu_L{k}"], params[f"lu_U{k}"]
            lower = sp.Matrix(2, 2, lambda i, j: L[i, j] if i > j else int(i == j))
            upper = sp.Matrix(2, 2, lambda i, j: U[i, j] if i <= j else 0)
            mixing = sp.Matrix(lu_permutation(flow, k)) * lower * upper
            rows = [[sum(mixing[i, j] * u[j] for j in range(2)) for i in range(2)] for u in rows]  # as sums (see above)
            logdets = [logdet + sp.log(mixing.det() ** 2) / 2 for logdet in logdets]
    if arch.base == "diagonal":
        rows = [[u[i] * sp.exp(params["base_alpha"][0, i]) + params["base_beta"][0, i] for i in range(2)] for u in rows]
        logdets = [logdet + sum(params["base_alpha"]) for logdet in logdets]
    if arch.base == "mixture":  # −log Σ_c π_c Π_d N(u_d; μ_cd, e^{2 s_cd}), π = softmax(w), written directly
        mu, s, w = params["mix_mu"], params["mix_s"], params["mix_w"]
        weights = [sp.exp(w[0, c]) / sum(sp.exp(w[0, k]) for k in range(arch.components)) for c in range(arch.components)]

        def density(u: list[sp.Expr]) -> sp.Expr:
            return sum(weights[c] * sp.Mul(*[sp.exp(-((u[d] - mu[c, d]) * sp.exp(-s[c, d])) ** 2 / 2 - s[c, d])
                                              / sp.sqrt(2 * sp.pi) for d in range(2)]) for c in range(arch.components))
        total = sum(-sp.log(density(u)) - logdet for u, logdet in zip(rows, logdets))
    else:
        total = sum(sum((v**2 + sp.log(2 * sp.pi)) / 2 for v in u) - logdet for u, logdet in zip(rows, logdets))
    return total / len(x), params


#: tanh as a function SymPy knows only numerically: after a batch norm, every sample's expression holds
#: the batch's square roots, and SymPy's automatic evaluation of tanh asks their real and imaginary
#: parts again and again (14 s to build the NLL); lambdify still evaluates it with mpmath's tanh
OPAQUE_TANH = implemented_function("tanh_opaque", mpmath.tanh)


def _coupling(arch: FlowArchitecture, params: dict[str, sp.Matrix], k: int, u: list[sp.Expr]) -> tuple[list[sp.Expr], sp.Expr]:
    """Coupling k of one sample: its output and log|det J|."""
    u = list(u)
    kept, moved = arch.kept(k), 1 - arch.kept(k)
    # products written as sums: SymPy's Matrix product converts to polynomials, which recurses
    # without end on the nested expressions of SOS couplings
    W, b, Wh, bh = params[f"W{k}_0"], params[f"b{k}_0"], params[f"Wh{k}"], params[f"bh{k}"]
    tanh = OPAQUE_TANH if arch.batchnorm else sp.tanh
    hidden = [tanh(u[kept] * W[0, h] + b[0, h]) for h in range(W.cols)]
    out = [sum(hidden[h] * Wh[h, c] for h in range(Wh.rows)) + bh[0, c] for c in range(Wh.cols)]
    if arch.transform == "nice":  # additive coupling y = x + t: volume-preserving
        u[moved] = u[moved] + out[0]
        return u, sp.S.Zero
    if arch.transform == "sos":
        u[moved], log_slope = sos_transformer(u[moved], out)
        return u, log_slope
    if arch.clamp == "softclip":  # s = ŝ/(1 + |ŝ|/B), zuko's soft clip
        scale = out[0] / (1 + sp.Abs(out[0]) / arch.bound)
    else:
        scale = arch.bound * tanh(out[0] / arch.bound)
    u[moved] = u[moved] * sp.exp(scale) + out[1]
    return u, scale


def lu_permutation(flow: Flow | None, k: int) -> np.ndarray:
    from layergen.runtime.layout import views

    assert flow is not None, "an LU flow's NLL needs the flow's permutations"
    return views(flow.const, flow.layout.fixed, 1)[f"luP{k % 2}"][k // 2].astype(int)


@pytest.mark.parametrize("arch", [SMALL, SMALL_NORMED, SMALL_NICE, SMALL_SOS, SMALL_LU, SMALL_BN, SMALL_MIXTURE,
                                  SMALL_SOFTCLIP],
                         ids=["couplings", "actnorm-diagonal-base", "nice", "sos", "actnorm-lu-mixing", "batch-norm",
                              "mixture-base", "softclip"])
def test_nll_gradient_matches_sympy_of_the_whole_flow(arch: FlowArchitecture) -> None:
    flow = randomised(arch, seed=3)
    x = np.random.default_rng(4).normal(size=(3, 2))
    nll, symbols = symbolic_nll(arch, x, flow)
    names = [name for name in flow.params]
    flat_symbols = [symbols[name][i, j] for name in names
                    for i in range(symbols[name].rows) for j in range(symbols[name].cols)]
    values = [float(v) for name in names for v in flow.params[name].ravel()]
    if arch != SMALL:
        # SymPy's diff of nested quintics takes minutes (113 s at hidden 1), 33 s through two LU
        # mixings and 10 s for the plain couplings, so the other flows' NLL expressions (the same
        # SymPy expressions) are differentiated numerically: mpmath.diff at 40 digits, error ≪ 1e-20.
        # The plain couplings keep SymPy's diff of the whole flow.
        nll_at = sp.lambdify(flat_symbols, nll, modules="mpmath", cse=True)
        with mpmath.workdps(40):
            point = [mpmath.mpf(v) for v in values]
            exact = [float(nll_at(*point))] + [
                float(mpmath.diff(lambda t, i=i: nll_at(*point[:i], t, *point[i + 1:]), point[i])) for i in range(len(point))]
    else:  # mpmath at 30 digits: substitution into the raw expression, without SymPy's simplification
        evaluate = sp.lambdify(flat_symbols, [nll] + [sp.diff(nll, s) for s in flat_symbols], modules="mpmath",
                               cse=True)
        with mpmath.workdps(30):
            exact = [float(v) for v in evaluate(*values)]
    flow.hypers["lr"] = 0.0  # the step then fills the gradient and leaves the parameters as they are
    loss = flow.step(x)
    assert loss == pytest.approx(exact[0], rel=1e-12)
    derived = np.concatenate([flow.grads[name].ravel() for name in names])
    np.testing.assert_allclose(derived, exact[1:], rtol=1e-10, atol=1e-12)


def test_identity_at_initialisation_and_round_trips() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    fresh = Flow(FlowArchitecture(dim=3, couplings=3, hidden=8), np.float64)
    expected = -0.5 * (x**2).sum(axis=1) - 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(fresh.log_prob(x), expected, rtol=1e-14)  # heads at 0: every coupling is the identity
    # LU mixing starts as a permutation, ActNorm and the diagonal base as the identity. One architecture with
    # all three (test_sharded's too): each distinct architecture costs its own compilation of the passes
    combined = FlowArchitecture(dim=3, couplings=3, hidden=8, actnorm=True, mixing="lu", base="diagonal")
    np.testing.assert_allclose(Flow(combined, np.float64).log_prob(x), expected, rtol=1e-14)
    for arch in (FlowArchitecture(dim=3, couplings=3, hidden=8), combined,
                 FlowArchitecture(3, 3, 8, transform="nice", base="diagonal"), FlowArchitecture(3, 3, 8, transform="sos")):
        flow = randomised(arch, seed=1)
        if arch.transform == "sos":  # keep the composed quintics moderate, so float64 can round-trip them
            for view in flow.params.values():
                view *= 0.3
        # |U_ii| ≥ 1: a random diagonal near 0 makes W ill-conditioned, and the round trip would then
        # lose digits to W's condition number rather than to the kernels
        for k in range(arch.couplings if arch.mixing == "lu" else 0):
            view = flow.params[f"lu_U{k}"]
            np.fill_diagonal(view, 1.0 + np.abs(np.diag(view)))
        np.testing.assert_allclose(flow.inverse(flow.latent(x)), x, atol=1e-12)
        np.testing.assert_allclose(flow.latent(flow.inverse(x)), x, atol=1e-12)


def test_actnorm_initialisation_standardises_every_actnorm_input() -> None:
    flow = randomised(FlowArchitecture(dim=3, couplings=3, hidden=8, actnorm=True), seed=5)
    x = np.random.default_rng(6).normal(size=(500, 3)) * np.array([0.1, 3.0, 20.0]) + np.array([5.0, -2.0, 0.0])
    flow.initialise_actnorm(x)
    # the whole batch's forward pass, into the step's work buffer of 500 rows, whose views are read below
    flow.module.log_prob(x, flow.theta, flow.const, flow._work_for(len(x)), np.empty(len(x)))
    views = allocate_views(flow, len(x))
    for k in range(3):  # the output of ActNorm k is the input of coupling k + 1 (or the latent)
        np.testing.assert_allclose(views["u"][k + 1].mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(views["u"][k + 1].std(axis=0), 1.0, rtol=1e-12)
    with pytest.raises(LayergenError, match="no ActNorm layers"):
        Flow(SMALL, np.float64).initialise_actnorm(x[:, :2])


def test_density_integrates_to_one() -> None:
    """Change of measure: with correct log-determinants the pushed-forward density has mass 1."""
    flow = randomised(FlowArchitecture(dim=2, couplings=4, hidden=8), seed=2)
    for view in flow.params.values():
        view *= 0.5  # a moderately curved map, so a grid resolves the density
    grid = np.linspace(-9.0, 9.0, 601)
    gx, gy = np.meshgrid(grid, grid)
    density = np.exp(flow.log_prob(np.column_stack([gx.ravel(), gy.ravel()])))
    mass = density.sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_two_moons_training_reaches_the_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's configuration (8 couplings, hidden 64, batch 256, 2000 steps), seed 0: ≥ −1.25 nats."""
    data = two_moons()
    flow = Flow(FlowArchitecture(2, 8, 64, 2), np.float64, seed=0)
    history = train_flow(flow, data, FlowConfig(steps=2000), tmp_path)
    assert not history.stopped
    test_ll = float(flow.log_prob(data.test).mean())
    assert test_ll >= -1.25
    restored, meta = load_flow(tmp_path)
    assert meta["history"]["best_step"] == history.best_step
    np.testing.assert_array_equal(restored.theta, flow.theta)  # the best parameters were the ones checkpointed


def test_train_and_sample_commands(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["train", "--example", "two-moons-2000", "--steps", "300", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test log-likelihood" in printed
    assert (tmp_path / "density.png").stat().st_size > 10_000 and (tmp_path / "samples.png").stat().st_size > 10_000
    assert main(["sample", str(tmp_path), "-n", "500", "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert samples.shape == (500, 2)
    assert np.abs(samples.mean(axis=0) - np.array(meta["data"]["mean"])).max() < 0.3  # in data units
    assert main(["sample", str(tmp_path / "missing"), "-n", "5"]) == 2
    assert "no checkpoint.json" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "-n", "0"]) == 2
    assert "-n must be a positive integer" in capsys.readouterr().err


def test_ctrl_c_in_a_flow_example_says_what_its_checkpoint_holds(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A flow's training writes its best state at each better validation NLL; Ctrl-C says which step that
    is, or that the run stopped before its first (an earlier run's checkpoint in the folder does not count)."""
    from dataclasses import replace

    import layergen.runtime.flow_run as flow_run

    real = flow_run.train_flow

    def stopped_after(steps: int):  # type: ignore[no-untyped-def]
        def train(flow, data, config, out=None, progress=False, resumed=None):  # type: ignore[no-untyped-def]
            if steps:
                real(flow, data, replace(config, steps=steps, eval_every=100), out, progress, resumed)
            raise KeyboardInterrupt
        return train

    for steps, message in ((200, f"interrupted; the checkpoint in {tmp_path} holds the best flow so far (step "),
                           (0, "interrupted before the flow's first checkpoint")):
        monkeypatch.setattr(flow_run, "train_flow", stopped_after(steps))
        assert main(["train", "--example", "two-moons-2000", "--out", str(tmp_path), "--quiet"]) == 130
        assert message in capsys.readouterr().err
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] in (100, 200)


def test_bad_data_is_rejected_with_the_field_named() -> None:
    flow = Flow(SMALL, np.float64)
    data = two_moons(n=600)
    broken = data.train.copy()
    broken[7, 1] = np.nan
    with pytest.raises(LayergenError, match="non-finite value.*row 7"):
        train_flow(flow, FlowData("moons", broken, data.val, data.test, data.mean, data.std), FlowConfig(steps=5))
    with pytest.raises(LayergenError, match=r"expected shape \(n, 2\)"):
        train_flow(flow, FlowData("moons", data.train[:, :1], data.val, data.test, data.mean, data.std), FlowConfig(steps=5))
    with pytest.raises(LayergenError, match=r"log_prob: expected an array of shape \(n, 2\)"):
        flow.log_prob(np.zeros((4, 3)))
    for rows in (8, 256):  # the serial step and the sharded one, which reads the data by address
        with pytest.raises(LayergenError, match=r"step: expected an array of shape \(n, 2\), got \(%d, 3\)" % rows):
            flow.step(np.zeros((rows, 3)))
    with pytest.raises(LayergenError, match="step: the array is empty"):
        flow.step(np.zeros((0, 2)))
    with pytest.raises(LayergenError, match=r"input_gradient: expected an array of shape \(n, 2\)"):
        flow.input_gradient(np.zeros((8, 1)))
    assert flow.step_count == 0
    with pytest.raises(LayergenError, match="batch: must be a positive integer"):
        FlowConfig(batch=0)
    with pytest.raises(LayergenError, match="couplings must be an integer"):
        FlowArchitecture(couplings=0)


def test_a_diverging_run_stops_and_keeps_the_last_good_parameters() -> None:
    flow = Flow(SMALL, np.float64)
    data = two_moons(n=600)
    history = train_flow(flow, data, FlowConfig(steps=400, batch=64, lr=1e300, lr_final=1e300, eval_every=1, patience=1000))
    assert "became" in history.stopped and "kept the last good parameters" in history.stopped
    assert np.all(np.isfinite(flow.theta))
    assert np.all(np.isfinite(flow.log_prob(data.test)))


@pytest.mark.parametrize("name", ["eight-gaussians", "checkerboard", "rings"])
def test_toy_generators_match_their_exact_densities(name: str) -> None:
    """The optimum each toy example reports is the generator's own density: it has mass 1 and
    the generator's samples score the published optimum (eight Gaussians ≈ 2.83, checkerboard
    log 32 ≈ 3.466 nats)."""
    generate, exact = DATASETS[name]
    edges = np.linspace(-4.5, 4.5, 361)  # spacing 0.025, below a third of the narrowest σ (rings: 0.08)
    grid = (edges[1:] + edges[:-1]) / 2  # cell midpoints: the checkerboard's edges fall between them
    gx, gy = np.meshgrid(grid, grid)
    with np.errstate(divide="ignore"):  # log 0 outside the checkerboard
        mass = np.exp(exact(np.column_stack([gx.ravel(), gy.ravel()]))).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=5e-3)
    data = generate(seed=0, n=6000)
    nll = -float(exact(data.test * data.std + data.mean).mean())
    expected = {"eight-gaussians": 1 + math.log(2 * math.pi * 0.125) + math.log(8), "checkerboard": math.log(32)}
    if name in expected:
        assert nll == pytest.approx(expected[name], abs=0.06)
    if name == "rings":  # its closed form (SciPy's i0e) against quadrature over each ring's angle, 720 nodes
        from layergen.runtime.flow_data import RING_RADII, RING_SIGMA

        points = np.random.default_rng(1).uniform(-3.0, 3.0, size=(500, 2))
        theta = np.linspace(0.0, 2 * np.pi, 720, endpoint=False)
        density = np.zeros(len(points))
        for radius, weight in zip(RING_RADII, np.asarray(RING_RADII) / sum(RING_RADII)):
            squared = ((points[:, None, :] - radius * np.column_stack([np.cos(theta), np.sin(theta)])[None]) ** 2).sum(axis=2)
            density += weight * np.exp(-squared / (2 * RING_SIGMA**2)).mean(axis=1) / (2 * np.pi * RING_SIGMA**2)
        near = density > 1e-300  # where the quadrature's density has not underflowed
        assert near.sum() > 400
        np.testing.assert_allclose(exact(points)[near], np.log(density[near]), rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch", [SMALL, SMALL_BN], ids=["couplings", "batch-norm"])
def test_warm_up_compiles_without_changing_the_training(arch: FlowArchitecture) -> None:
    x = np.random.default_rng(9).normal(size=(16, 2))
    warmed, cold = randomised(arch, seed=4), randomised(arch, seed=4)
    warmed.step(x)
    cold.step(x)  # both have taken one step: Adam's state is non-zero
    before = warmed.theta.copy(), warmed.const.copy(), warmed._m.copy(), warmed._v.copy(), warmed.step_count
    warmed.warm_up(8)  # its step on zeros must not move a batch norm's running moments either
    after = warmed.theta, warmed.const, warmed._m, warmed._v, warmed.step_count
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert warmed.step(x) == cold.step(x)
    np.testing.assert_array_equal(warmed.theta, cold.theta)
    np.testing.assert_array_equal(warmed.const, cold.const)


def test_batch_norm_evaluation_uses_the_running_averages_of_the_training_statistics() -> None:
    """Training steps at lr = 0 on one batch move the running moments geometrically to that batch's
    statistics (ρ = 0.05: 0.95^700 ≈ 2e-16), after which evaluation mode (running averages, eq. 76-77)
    and training mode (batch statistics, eq. 75) give the same NLL; before that they differ."""
    flow = randomised(SMALL_BN, seed=2)  # the batch-norm flow the other tests compile
    x = np.random.default_rng(3).normal(size=(40, 2)) * [4.0, 0.2] + [3.0, -1.0]
    flow.hypers["lr"] = 0.0
    loss = flow.step(x)
    assert abs(-flow.log_prob(x).mean() - loss) > 0.1  # running moments still near (0, 1)
    for _ in range(700):
        flow.step(x)
    assert -flow.log_prob(x).mean() == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(flow.inverse(flow.latent(x)), x, atol=1e-12)  # eq. 76 through every block
    np.testing.assert_allclose(flow.latent(flow.inverse(x)), x, atol=1e-12)


def test_actnorm_and_batchnorm_are_exclusive_and_named() -> None:
    with pytest.raises(LayergenError, match="actnorm and batchnorm"):
        FlowArchitecture(dim=2, actnorm=True, batchnorm=True)
    with pytest.raises(LayergenError, match="batchnorm must be true or false"):
        FlowArchitecture(dim=2, batchnorm="yes")  # type: ignore[arg-type]


def test_a_clamp_is_named_and_only_for_affine_transformers() -> None:
    with pytest.raises(LayergenError, match="unknown clamp 'hard'; valid: tanh, softclip"):
        FlowArchitecture(dim=2, clamp="hard")
    with pytest.raises(LayergenError, match="clamp 'softclip' bounds an affine log-scale, but transform 'nice'"):
        FlowArchitecture(dim=2, transform="nice", clamp="softclip")
    assert FlowArchitecture(dim=2, transform="maf", clamp="softclip").transformer == "softclip_affine_coupling"


def assert_same_flow(mine: Flow, reference: Flow, x: np.ndarray) -> None:
    """Two flows on the same parameters give the same log-density, NLL gradient (lr = 0) and inverse."""
    mine.theta[...] = reference.theta
    results = []
    for flow in (mine, reference):
        flow.hypers["lr"] = 0.0
        flow.step(x)
        results.append((flow.log_prob(x), flow.grad.copy(), flow.inverse(x)))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


def test_conditioner_activation_settings_reach_every_pass() -> None:
    """Leaky ReLU with α = 0 is ReLU, so conditioners of "leaky_relu alpha=0" must give the ReLU flow
    (compiled for the identity test above) on the same parameters. A pass that kept the spec's default
    α = 0.01 would differ wherever a pre-activation is negative, as about half are at these random
    parameters. ``test_maf.py`` checks the MAF's passes the same way."""
    relu = FlowArchitecture(dim=3, couplings=3, hidden=8)
    leaky = dataclasses.replace(relu, activation="leaky_relu alpha=0")
    assert leaky.activation_hypers() == {"alpha": 0.0}
    assert_same_flow(randomised(leaky, seed=3), randomised(relu, seed=3), np.random.default_rng(4).normal(size=(16, 3)))


def test_a_maf_refuses_an_activation_that_mixes_its_hidden_units() -> None:
    """Softmax normalises over the hidden units, which would let output d see inputs ≥ d through the MADE
    masks: the flow would not invert. A Real NVP conditioner may use it."""
    with pytest.raises(LayergenError, match="a MAF's MADE conditioners need an activation that acts element by element; "
                                            "softmax mixes the hidden units.*Valid: gelu, .*tanh"):
        FlowArchitecture(dim=3, hidden=4, transform="maf", activation="softmax")
    assert FlowArchitecture(dim=3, hidden=4, activation="softmax").activation_name == "softmax"
    with pytest.raises(LayergenError, match=r"flow architecture: activation leaky_relu: alpha=-1\.0 is outside"):
        FlowArchitecture(dim=3, hidden=4, activation="leaky_relu alpha=-1")
    with pytest.raises(LayergenError, match="flow architecture: activation tanh has no hyperparameter 'alpha'"):
        FlowArchitecture(dim=3, hidden=4, activation="tanh alpha=1")


def test_mixture_base_density_far_tails_and_samples() -> None:
    """With the couplings at the identity (heads at 0), log_prob is the mixture's log-density, here
    against NumPy's own stable log-sum-exp; at 80 standard deviations every component's density
    underflows to 0 in float64, and the stable form (000 eq. 95) still gives the finite value.
    Samples follow the mixture: their mean and covariance match its moments."""
    arch = FlowArchitecture(dim=3, couplings=2, hidden=8, base="mixture", components=4)
    flow = Flow(arch, np.float64, seed=1)
    rng = np.random.default_rng(2)
    mu, s, w = flow.params["mix_mu"], flow.params["mix_s"], flow.params["mix_w"]
    mu[...], s[...], w[...] = rng.normal(0, 2, mu.shape), rng.normal(0, 0.3, s.shape), rng.normal(0, 1, w.shape)
    x = np.concatenate([rng.normal(0, 2, (200, 3)), [[80.0, -80.0, 80.0]]])
    log_pi = w - np.logaddexp.reduce(w)
    per_component = -0.5 * (((x[:, None, :] - mu) * np.exp(-s)) ** 2).sum(-1) - s.sum(-1) - 1.5 * math.log(2 * math.pi)
    expected = np.logaddexp.reduce(log_pi + per_component, axis=1)
    assert np.exp(per_component[-1]).max() == 0.0  # the naive sum would take log(0)
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-13)
    samples = flow.sample(200_000, seed=3)
    pi = np.exp(log_pi)
    mean = pi @ mu
    covariance = sum(pi[c] * (np.diag(np.exp(2 * s[c])) + np.outer(mu[c] - mean, mu[c] - mean)) for c in range(4))
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(samples.T), covariance, atol=0.08)
