"""Optional oracle for the MAF runtime: zuko's MAF on identical weights (skipped without zuko, which
is never a dependency of layergen).

zuko's ``MonotonicAffineTransform`` bounds the log-scale by the soft clip s = a/(1 + |a|/B) with
B = −ln(slope) = ln 1000, which is layergen's ``clamp="softclip"`` (the generated
``softclip_affine_coupling`` spec). The two MADEs agree up to relabelling: zuko assigns hidden units
to degrees cyclically and interleaves each feature's (shift, log-scale) outputs, layergen sorts hidden
units by degree and puts all log-scales before all shifts. Both are permutations of units, under
which an MLP is the same function, so the test maps zuko's weights through them and first checks
that zuko's masks land exactly on layergen's own (the mapping is right only if they do).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.maf import made_masks

torch = pytest.importorskip("torch")
zuko = pytest.importorskip("zuko")

ARCH = FlowArchitecture(dim=3, couplings=3, hidden=8, depth=2, activation="relu", transform="maf",
                        clamp="softclip", bound=-math.log(1e-3))


def unit_orders(masks: list[np.ndarray], dim: int) -> list[np.ndarray]:
    """Per layer boundary, the order taking zuko's units to layergen's: inputs as they are, hidden units
    stably sorted by degree (how many inputs reach them), outputs as (log-scales, shifts)."""
    reach, orders = np.eye(dim), [np.arange(dim)]
    for mask in masks[:-1]:
        reach = (reach @ mask > 0).astype(float)
        orders.append(np.argsort(reach.sum(axis=0), kind="stable"))
    return orders + [np.concatenate([2 * np.arange(dim) + 1, 2 * np.arange(dim)])]


def zuko_layers(flow):  # type: ignore[no-untyped-def]
    """Each block's masked linear layers, in order."""
    return [[m for m in block.hyper if isinstance(m, zuko.nn.MaskedLinear)] for block in flow.transform.transforms]


def copy_zuko_weights(arch: FlowArchitecture, ours: Flow, theirs) -> list[list[np.ndarray]]:  # type: ignore[no-untyped-def]
    """Write zuko's weights into layergen's parameters; return each block's unit orders."""
    orders = []
    for k, layers in enumerate(zuko_layers(theirs)):
        masks = [layer.mask.numpy().T.astype(float) for layer in layers]  # (in, out), like layergen's
        order = unit_orders(masks, arch.dim)
        expected = made_masks(arch.dim, arch.hidden, arch.depth, k % 2)
        for l, layer in enumerate(layers):
            np.testing.assert_array_equal(masks[l][order[l]][:, order[l + 1]], expected[l], err_msg=f"block {k} layer {l}")
            weight, bias = (f"W{k}_{l}", f"b{k}_{l}") if l < arch.depth else (f"Wh{k}", f"bh{k}")
            ours.params[weight][...] = layer.weight.detach().numpy().T[order[l]][:, order[l + 1]]
            ours.params[bias][...] = layer.bias.detach().numpy()[order[l + 1]]
        orders.append(order)
    return orders


@pytest.fixture(scope="module")
def pair():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    theirs = zuko.flows.MAF(ARCH.dim, transforms=ARCH.couplings, hidden_features=(ARCH.hidden,) * ARCH.depth)
    theirs = theirs.to(torch.float64)
    with torch.no_grad():  # well away from zuko's near-zero initial head, so every weight matters
        for parameter in theirs.parameters():
            parameter.normal_(0.0, 0.5)
    ours = Flow(ARCH, np.float64, seed=0, lr=1e-2)
    orders = copy_zuko_weights(ARCH, ours, theirs)
    return ours, theirs, orders


def test_log_prob_and_sampling_match_zuko(pair) -> None:  # type: ignore[no-untyped-def]
    ours, theirs, _ = pair
    x = np.random.default_rng(1).normal(size=(256, ARCH.dim)) * 2.0
    np.testing.assert_allclose(ours.log_prob(x), theirs().log_prob(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    # zuko inverts a block by D full passes of its MADE, layergen by its generated incremental inverse
    z = np.random.default_rng(2).normal(size=(256, ARCH.dim))
    with torch.no_grad():
        theirs_x = theirs().transform.inv(torch.tensor(z)).numpy()
    np.testing.assert_allclose(ours.inverse(z), theirs_x, rtol=1e-10, atol=1e-12)


def test_gradients_and_adam_steps_match_zuko(pair) -> None:  # type: ignore[no-untyped-def]
    ours, theirs, orders = pair
    beta1, beta2, epsilon = ours.hypers["beta1"], ours.hypers["beta2"], ours.hypers["epsilon"]
    optimiser = torch.optim.Adam(theirs.parameters(), lr=1e-2, betas=(beta1, beta2), eps=epsilon)
    rng = np.random.default_rng(3)
    for step in range(50):
        x = rng.normal(size=(32, ARCH.dim)) * 2.0
        loss = ours.step(x)
        optimiser.zero_grad()
        nll = -theirs().log_prob(torch.tensor(x)).mean()
        nll.backward()
        assert loss == pytest.approx(nll.item(), rel=1e-12), f"step {step}"
        if step == 0:
            for k, layers in enumerate(zuko_layers(theirs)):
                for l, layer in enumerate(layers):
                    order = orders[k]
                    weight, bias = (f"W{k}_{l}", f"b{k}_{l}") if l < ARCH.depth else (f"Wh{k}", f"bh{k}")
                    np.testing.assert_allclose(ours.grads[weight], layer.weight.grad.numpy().T[order[l]][:, order[l + 1]],
                                               rtol=1e-10, atol=1e-13, err_msg=weight)
                    np.testing.assert_allclose(ours.grads[bias].reshape(-1), layer.bias.grad.numpy()[order[l + 1]],
                                               rtol=1e-10, atol=1e-13, err_msg=bias)
        optimiser.step()
    x = rng.normal(size=(256, ARCH.dim))
    np.testing.assert_allclose(ours.log_prob(x), theirs().log_prob(torch.tensor(x)).detach().numpy(), rtol=1e-9)
