"""MAF with MADE conditioners: the NLL gradient against SymPy's differentiation of the whole
flow, the autoregressive (triangular) Jacobian, log|det J| against a finite-difference slogdet,
the incremental inverse (round trips, its cost), change of measure, masks that break the order."""

from __future__ import annotations

import dataclasses
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from layergen.errors import LayergenError
from layergen.runtime.flow import Flow, allocate_views
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.maf import check_autoregressive, input_degrees, made_masks

SMALL_MAF = FlowArchitecture(dim=3, couplings=2, hidden=2, depth=2, activation="tanh", bound=2.0, transform="maf")
SMALL_MAF_NORMED = FlowArchitecture(dim=3, couplings=2, hidden=2, depth=1, activation="tanh", bound=2.0,
                                    transform="maf", actnorm=True, base="diagonal")
#: Every distinct architecture costs a cold Numba compile per test session: few, shared.
MID_MAF = FlowArchitecture(dim=5, couplings=2, hidden=12, depth=2, transform="maf")


def randomised(arch: FlowArchitecture, seed: int = 0, scale: float = 0.7) -> Flow:
    flow = Flow(arch, np.float64, seed)
    rng = np.random.default_rng(seed)
    for view in flow.params.values():  # heads start at 0 (identity blocks); make every block generic
        view[...] = rng.normal(0.0, scale, view.shape)
    return flow


def symbolic_nll(arch: FlowArchitecture, x: np.ndarray) -> tuple[sp.Expr, dict[str, sp.Matrix]]:
    """The whole MAF's NLL (000 eq. 73) as one SymPy expression of the parameters, from the forward
    map: u ← u e^{B tanh(ŝ/B)} + t with (ŝ, t) = MADE(u), a tanh MLP with weights W ⊙ M."""
    shapes = {name: (stack.rows, stack.cols) if stack.cols else (1, stack.rows) for stack in arch.layout().trainable
              for name, stack_name, _ in arch.parameter_names() if stack_name == stack.name}
    # real symbols and products written as sums (not sp.Matrix products): SymPy's automatic simplification
    # would otherwise ask is_zero of nested tanh expressions through polynomial arithmetic (15 s a flow)
    params = {name: sp.Matrix(*shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
              for name, shape in shapes.items()}

    def masked_affine(h: list[sp.Expr], weights: sp.Matrix, bias: sp.Matrix, mask: np.ndarray) -> list[sp.Expr]:
        """h·(W ⊙ M) + b, a row."""
        return [sum((h[i] * weights[i, j] for i in range(len(h)) if mask[i, j]), sp.S.Zero) + bias[0, j]
                for j in range(weights.cols)]

    D = arch.dim
    total = sp.S.Zero
    for row in x:
        u = [sp.Float(v, 30) for v in row]
        logdet = sp.S.Zero
        for k in range(arch.couplings):
            masks = made_masks(D, arch.hidden, arch.depth, k)
            h = u
            for layer in range(arch.depth):
                h = [sp.tanh(a) for a in masked_affine(h, params[f"W{k}_{layer}"], params[f"b{k}_{layer}"], masks[layer])]
            out = masked_affine(h, params[f"Wh{k}"], params[f"bh{k}"], masks[-1])
            scale = [arch.bound * sp.tanh(out[i] / arch.bound) for i in range(D)]
            u = [u[i] * sp.exp(scale[i]) + out[D + i] for i in range(D)]
            logdet += sum(scale)
            if arch.actnorm:
                u = [u[i] * sp.exp(params[f"act_alpha{k}"][0, i]) + params[f"act_beta{k}"][0, i] for i in range(D)]
                logdet += sum(params[f"act_alpha{k}"])
        if arch.base == "diagonal":
            u = [u[i] * sp.exp(params["base_alpha"][0, i]) + params["base_beta"][0, i] for i in range(D)]
            logdet += sum(params["base_alpha"])
        total += sum((v**2 + sp.log(2 * sp.pi)) / 2 for v in u) - logdet
    return total / len(x), params


@pytest.mark.parametrize("arch", [SMALL_MAF, SMALL_MAF_NORMED], ids=["made-2-layers", "actnorm-diagonal-base"])
def test_maf_nll_gradient_matches_sympy_of_the_whole_flow(arch: FlowArchitecture) -> None:
    flow = randomised(arch, seed=3)
    x = np.random.default_rng(4).normal(size=(2, arch.dim))
    nll, symbols = symbolic_nll(arch, x)
    names = list(flow.params)
    flat = [symbols[n][i, j] for n in names for i in range(symbols[n].rows) for j in range(symbols[n].cols)]
    values = [float(v) for n in names for v in flow.params[n].ravel()]
    evaluate = sp.lambdify(flat, [nll] + [sp.diff(nll, s) for s in flat], modules="mpmath", cse=True)
    with mpmath.workdps(30):
        exact = [float(v) for v in evaluate(*values)]
    flow.hypers["lr"] = 0.0
    assert flow.step(x) == pytest.approx(exact[0], rel=1e-12)
    derived = np.concatenate([flow.grads[n].ravel() for n in names])
    np.testing.assert_allclose(derived, exact[1:], rtol=1e-10, atol=1e-12)
    masked = np.concatenate([(1 - m).ravel() for k in range(arch.couplings)
                             for m in made_masks(arch.dim, arch.hidden, arch.depth, k)])
    assert masked.any()


def _jacobian(function, x: np.ndarray, h: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Central differences of a map of one point (a row) to a row."""
    columns = []
    for j in range(x.shape[1]):
        step = np.zeros_like(x)
        step[0, j] = h
        columns.append((function(x + step) - function(x - step))[0] / (2 * h))
    return np.array(columns).T


def test_each_block_is_autoregressive_in_its_order_and_its_logdet_is_exact() -> None:
    """Block 0 (identity order) has a lower-triangular Jacobian, block 1 (reversed order) an upper
    one, both read off finite differences of the runtime; log p(x) = log N(f(x); 0, I) + log|det|
    of a finite-difference Jacobian of the whole flow (slogdet), an oracle independent of eq. 82."""
    flow = randomised(MID_MAF, seed=7, scale=0.4)
    x = np.random.default_rng(8).normal(size=(1, 5))

    def block_output(k: int):  # type: ignore[no-untyped-def]
        def run(point: np.ndarray) -> np.ndarray:
            flow.log_prob(point)
            return allocate_views(flow, 1)["u"][k + 1].copy()
        return run

    first = _jacobian(block_output(0), x)
    second = _jacobian(block_output(1), x) @ np.linalg.inv(first)  # ∂u2/∂u1 by the chain rule
    assert np.abs(np.triu(first, 1)).max() == 0.0 and np.abs(np.diag(first)).min() > 0.05
    assert np.abs(np.tril(second, -1)).max() < 1e-8 and np.abs(np.diag(second)).min() > 0.05
    whole = _jacobian(flow.latent, x)
    sign, logdet = np.linalg.slogdet(whole)
    z = flow.latent(x)[0]
    expected = -0.5 * (z @ z) - 2.5 * math.log(2 * math.pi) + logdet
    assert sign != 0 and flow.log_prob(x)[0] == pytest.approx(expected, abs=1e-7)


def test_incremental_inverse_round_trips_in_both_directions_and_dtypes() -> None:
    x = np.random.default_rng(0).normal(size=(200, 5))
    for arch in (MID_MAF, SMALL_MAF, SMALL_MAF_NORMED):
        flow = randomised(arch, seed=1, scale=0.3)
        points = x[:, :arch.dim]
        np.testing.assert_allclose(flow.inverse(flow.latent(points)), points, atol=1e-11)
        np.testing.assert_allclose(flow.latent(flow.inverse(points)), points, atol=1e-11)
    single = Flow(MID_MAF, np.float32, seed=2)
    for view in single.params.values():
        view[...] = np.random.default_rng(3).normal(0.0, 0.3, view.shape)
    back = single.inverse(single.latent(x))
    assert back.dtype == np.float32 and np.abs(back - x).max() < 1e-4


def test_conditioner_activation_settings_reach_the_made_passes() -> None:
    """"leaky_relu alpha=0" is ReLU: the MAF's training, density and incremental inverse (``maf_fused``)
    with it equal the ReLU MAF's on the same parameters (``test_flow.py`` checks Real NVP's passes)."""
    from test_flow import assert_same_flow

    leaky = dataclasses.replace(MID_MAF, activation="leaky_relu alpha=0")
    x = np.random.default_rng(8).normal(size=(16, MID_MAF.dim))
    assert_same_flow(randomised(leaky, seed=7, scale=0.4), randomised(MID_MAF, seed=7, scale=0.4), x)


def test_fresh_maf_is_the_identity_and_its_density_integrates_to_one() -> None:
    x = np.random.default_rng(0).normal(size=(20, 5))
    fresh = Flow(MID_MAF, np.float64)
    np.testing.assert_allclose(fresh.log_prob(x), -0.5 * (x**2).sum(axis=1) - 2.5 * math.log(2 * math.pi), rtol=1e-14)
    flow = randomised(FlowArchitecture(dim=2, couplings=3, hidden=8, transform="maf"), seed=2, scale=0.2)
    grid = np.linspace(-9.0, 9.0, 601)
    gx, gy = np.meshgrid(grid, grid)
    mass = np.exp(flow.log_prob(np.column_stack([gx.ravel(), gy.ravel()]))).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_masks_that_break_the_autoregressive_order_are_rejected() -> None:
    masks = made_masks(4, 6, 2, 0)
    check_autoregressive(masks, input_degrees(4, 0), "good masks")  # does not raise
    broken = [m.copy() for m in masks]
    broken[0][3, 5] = 1.0  # the last input now reaches a unit every later layer feeds to outputs
    with pytest.raises(LayergenError, match="autoregressive order"):
        check_autoregressive(broken, input_degrees(4, 0), "MADE block 0")
    with pytest.raises(LayergenError, match="hidden ≥ dim − 1"):
        FlowArchitecture(dim=6, couplings=2, hidden=4, transform="maf")
    with pytest.raises(LayergenError, match="unknown transform .iaf-ish.*realnvp, nice, maf"):
        FlowArchitecture(transform="iaf-ish")


def test_samples_plot_of_a_higher_dimensional_flow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from layergen.runtime.flow_data import FlowData
    from layergen.runtime.flow_plots import plot_samples

    x = np.random.default_rng(0).normal(size=(300, 5))
    data = FlowData("gauss5", x, x, x, np.zeros(5), np.ones(5))
    path = plot_samples(randomised(MID_MAF, seed=1, scale=0.2), data, tmp_path, samples=300)
    assert path == tmp_path / "samples.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("dim,hidden", [(2, 8), (3, 2), (5, 12), (6, 100), (64, 256), (7, 6)])
def test_hidden_units_of_each_degree_are_one_contiguous_block(dim: int, hidden: int) -> None:
    """The incremental inverse finalises the rows degree_block(m) after x_m: they must be exactly
    the units of degree m, every degree 1..D−1 must have one, and together they cover every unit."""
    from layergen.runtime.maf import degree_block, hidden_degrees

    degrees = hidden_degrees(dim, hidden)
    covered = []
    for m in range(1, dim):
        lo, hi = degree_block(m, dim, hidden)
        assert hi > lo and np.all(degrees[lo:hi] == m)
        covered += list(range(lo, hi))
    assert covered == list(range(hidden))
