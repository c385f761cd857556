"""Optional oracle: PyTorch autograd and torch.optim.Adam on identical weights (skipped
without torch; torch is never a dependency of layergen)."""

from __future__ import annotations

import numpy as np
import pytest

from layergen.runtime.network import Architecture, Network

torch = pytest.importorskip("torch")


def torch_model(net: Network):  # type: ignore[no-untyped-def]
    layers = []
    n = len(net.arch.widths)
    for i in range(n):
        linear = torch.nn.Linear(net.arch.sizes[i], net.arch.sizes[i + 1]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(net.params[f"W{i}"].T))
            linear.bias.copy_(torch.tensor(net.params[f"b{i}"][0]))
        layers.append(linear)
        if i < n - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def assert_steps_match(net: Network, model, opt, steps: int, x: np.ndarray, target: np.ndarray,  # type: ignore[no-untyped-def]
                       torch_loss) -> None:
    """``steps`` training steps of both on one batch: the gradients before the first update, every loss, and
    the weights and biases at the end agree to 1e-12 (float64)."""
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    xt = torch.tensor(x)
    for step in range(steps):
        loss_ours = net.step(x, target)
        opt.zero_grad()
        loss_torch = torch_loss(model(xt))
        loss_torch.backward()
        if step == 0:  # gradients before any update
            for i, layer in enumerate(linears):
                np.testing.assert_allclose(net.grads[f"W{i}"], layer.weight.grad.numpy().T, rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(net.grads[f"b{i}"][0], layer.bias.grad.numpy(), rtol=1e-12, atol=1e-15)
        opt.step()
        assert abs(loss_ours - loss_torch.item()) <= 1e-12 * max(1.0, abs(loss_torch.item()))
    for i, layer in enumerate(linears):
        np.testing.assert_allclose(net.params[f"W{i}"], layer.weight.detach().numpy().T, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.params[f"b{i}"][0], layer.bias.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_gradients_and_200_adam_steps_match_torch() -> None:
    torch.set_num_threads(1)
    arch = Architecture(inputs=6, widths=(16, 16, 4), activation="relu", loss="softmax_cross_entropy", optimizer="adam")
    net = Network(arch, np.float64, seed=4, init="he", optimizer_hypers={"lr": 1e-3})
    model = torch_model(net)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6))
    labels = rng.integers(0, 4, 32)
    lt = torch.tensor(labels)
    assert_steps_match(net, model, opt, 200, x, np.eye(4)[labels],
                       lambda logits: torch.nn.functional.cross_entropy(logits, lt))


@pytest.mark.parametrize("rows", [32, 128], ids=["whole-batch", "sharded"])
def test_the_l2_penalty_is_torchs_weight_decay_on_the_weights(rows: int) -> None:
    """λ/(2m) Σ‖W‖² (000 eq. 11) adds (λ/m) W to the weights' gradient: torch.optim.Adam's
    ``weight_decay = λ/m`` on the weights, none on the biases (their own parameter group); in the
    whole-batch regularised step and in the sharded one (128 rows)."""
    torch.set_num_threads(1)
    arch = Architecture(inputs=6, widths=(16, 16, 4), activation="relu", loss="softmax_cross_entropy", optimizer="adam")
    net = Network(arch, np.float64, seed=4, init="he", optimizer_hypers={"lr": 1e-3})
    net.l2, net.penalty_examples = 2.0, 50
    model = torch_model(net)
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    opt = torch.optim.Adam([{"params": [l.weight for l in linears], "weight_decay": 2.0 / 50},
                            {"params": [l.bias for l in linears], "weight_decay": 0.0}],
                           lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 6))
    labels = rng.integers(0, 4, rows)
    xt, lt = torch.tensor(x), torch.tensor(labels)
    assert net.sharded(rows) == (rows == 128)
    for _ in range(200):
        net.step(x, np.eye(4)[labels])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), lt).backward()
        opt.step()
    for i, layer in enumerate(linears):
        np.testing.assert_allclose(net.params[f"W{i}"], layer.weight.detach().numpy().T, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.params[f"b{i}"][0], layer.bias.detach().numpy(), rtol=1e-12, atol=1e-14)
    unpenalised = Network(arch, np.float64, seed=4, init="he", optimizer_hypers={"lr": 1e-3})
    for _ in range(200):
        unpenalised.step(x, np.eye(4)[labels])
    assert np.abs(unpenalised.params["W0"] - net.params["W0"]).max() > 1e-6  # the decay changed the weights


def test_gaussian_nll_regressor_matches_torchs_gaussian_nll_loss() -> None:
    """The Gaussian NLL (001 §3.12) with the output's columns read as [μ | s], against
    ``torch.nn.functional.gaussian_nll_loss(μ, y, exp(s), full=True)``: gradients, losses and 100
    Adam steps."""
    torch.set_num_threads(1)
    arch = Architecture(inputs=5, widths=(16, 2), activation="relu", loss="gaussian_nll", optimizer="adam")
    net = Network(arch, np.float64, seed=2, init="he", optimizer_hypers={"lr": 1e-3})
    model = torch_model(net)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 5)), rng.normal(size=(32, 1))
    yt = torch.tensor(y)
    assert_steps_match(net, model, opt, 100, x, y, lambda out: torch.nn.functional.gaussian_nll_loss(
        out[:, :1], yt, torch.exp(out[:, 1:]), full=True))
