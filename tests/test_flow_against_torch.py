"""Optional oracle for the flow runtime: a Real NVP written with PyTorch autograd, on identical
weights, gives the same NLL, gradients and 100 Adam steps (skipped without torch; torch is
never a dependency of layergen)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture

torch = pytest.importorskip("torch")

ARCH = FlowArchitecture(dim=3, couplings=3, hidden=8, depth=2, activation="tanh", bound=2.0)


def torch_nll(arch: FlowArchitecture, weights: dict, x):  # type: ignore[no-untyped-def]
    """000 eq. 73 for couplings u[moved] ← u[moved]·exp(B tanh(ŝ/B)) + t, kept columns k % 2 :: 2."""
    u, logdet = x, 0.0
    for k in range(arch.couplings):
        kept, moved = k % 2, 1 - k % 2
        h = u[:, kept::2]
        for layer in range(arch.depth):
            h = torch.tanh(h @ weights[f"W{k}_{layer}"] + weights[f"b{k}_{layer}"])
        out = h @ weights[f"Wh{k}"] + weights[f"bh{k}"]
        half = out.shape[1] // 2
        s = arch.bound * torch.tanh(out[:, :half] / arch.bound)
        moved_out = u[:, moved::2] * torch.exp(s) + out[:, half:]
        u = u.clone()
        u[:, moved::2] = moved_out
        logdet = logdet + s.sum(dim=1)
    return (0.5 * (u * u).sum(dim=1) + 0.5 * arch.dim * math.log(2 * math.pi) - logdet).mean()


def test_nll_gradients_and_adam_steps_match_torch() -> None:
    torch.set_num_threads(1)
    flow = Flow(ARCH, np.float64, seed=0, lr=1e-2)
    rng = np.random.default_rng(0)
    for view in flow.params.values():
        view[...] = rng.normal(0.0, 0.5, view.shape)
    weights = {name: torch.tensor(view.copy(), requires_grad=True) for name, view in flow.params.items()}
    opt = torch.optim.Adam(list(weights.values()), lr=1e-2, betas=(flow.hypers["beta1"], flow.hypers["beta2"]),
                           eps=flow.hypers["epsilon"])
    batches = [rng.normal(size=(16, ARCH.dim)) for _ in range(100)]
    for i, x in enumerate(batches):
        ours = flow.step(x)
        opt.zero_grad()
        loss = torch_nll(ARCH, weights, torch.tensor(x))
        loss.backward()
        assert ours == pytest.approx(loss.item(), rel=1e-12), f"step {i}"
        if i == 0:
            for name, grad in flow.grads.items():
                np.testing.assert_allclose(grad, weights[name].grad.numpy(), rtol=1e-11, atol=1e-13, err_msg=name)
        opt.step()
    for name, view in flow.params.items():
        np.testing.assert_allclose(view, weights[name].detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
