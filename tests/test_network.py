"""The fused network step: its gradients equal SymPy's differentiation of the whole network
as one composed expression (issue 3, item 6a), and it learns."""

from __future__ import annotations

import re
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import sympy as sp

from layergen.errors import LayergenError
from layergen.runtime.kernel_catalog import builtin_activations
from layergen.runtime.network import Architecture, Network

from conftest import CATALOG


def symbolic_gradients(net: Network, x: np.ndarray, labels: np.ndarray, l2: float = 0.0, l1: float = 0.0,
                       examples: int = 1, activation: Callable[[sp.Expr], sp.Expr] = sp.tanh) -> dict[str, np.ndarray]:
    """Differentiate L = −(1/n) Σ t log softmax(a(X W0 + b0) W1 + b1) with SymPy (a = tanh unless
    ``activation`` says otherwise), plus the weight penalties l2/(2m) Σ‖W‖² (000 eq. 11, m = ``examples``)
    and l1 Σ|W| (003 §6.1) when they are given."""
    symbols = {name: sp.Matrix(*value.shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for name, value in net.params.items()}
    X = sp.Matrix(x.tolist())
    n = x.shape[0]
    hidden = (X * symbols["W0"] + sp.ones(n, 1) * symbols["b0"]).applyfunc(activation)
    logits = hidden * symbols["W1"] + sp.ones(n, 1) * symbols["b1"]
    loss = 0
    for row in range(n):
        normaliser = sum(sp.exp(logits[row, k]) for k in range(logits.cols))
        loss += -sp.log(sp.exp(logits[row, int(labels[row])]) / normaliser)
    loss = loss / n
    for name in ("W0", "W1"):
        loss += sp.Rational(str(l2)) / (2 * examples) * sum(w**2 for w in symbols[name])
        loss += sp.Rational(str(l1)) * sum(sp.Abs(w) for w in symbols[name])
    flat = [s for m in symbols.values() for s in m]
    values = [float(v) for name in symbols for v in net.params[name].ravel()]
    # one derivative per parameter of the composed expression, evaluated at 30 digits
    gradient = sp.lambdify(flat, [sp.diff(loss, s) for s in flat], modules="mpmath", cse=True)
    with mpmath.workdps(30):
        numbers = iter(float(g) for g in gradient(*[mpmath.mpf(v) for v in values]))
    return {name: np.array([[next(numbers) for _ in range(m.cols)] for _ in range(m.rows)]) for name, m in symbols.items()}


def test_network_gradients_equal_sympy_on_the_composed_expression() -> None:
    arch = Architecture(inputs=3, widths=(4, 2), activation="tanh", loss="softmax_cross_entropy", optimizer="sgd")
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})  # lr 0: gradients only
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3))
    labels = np.array([0, 1, 1])
    net.step(x, np.eye(2)[labels])
    expected = symbolic_gradients(net, x, labels)
    for name, grad in expected.items():
        np.testing.assert_allclose(net.grads[name], grad, rtol=1e-10, atol=1e-12, err_msg=name)


def test_weight_penalties_add_the_gradient_of_the_composed_objective() -> None:
    """L2 and L1 penalties on the weights (not the biases), added in the fused step from the penalty specs'
    kernels: the step's gradients and loss equal SymPy's on the objective with both penalties."""
    arch = Architecture(inputs=3, widths=(4, 2), activation="tanh", loss="softmax_cross_entropy", optimizer="sgd")
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    net.l2, net.l1, net.penalty_examples = 0.3, 0.02, 7
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3))
    labels = np.array([0, 1, 1])
    loss = net.step(x, np.eye(2)[labels])
    expected = symbolic_gradients(net, x, labels, l2=0.3, l1=0.02, examples=7)
    for name, grad in expected.items():
        np.testing.assert_allclose(net.grads[name], grad, rtol=1e-10, atol=1e-12, err_msg=name)
    plain = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    data_loss = plain.step(x, np.eye(2)[labels])
    weights = [net.params["W0"], net.params["W1"]]
    penalty = sum(0.3 / 14 * float(np.sum(w**2)) + 0.02 * float(np.sum(np.abs(w))) for w in weights)
    assert loss == pytest.approx(data_loss + penalty, rel=1e-13)
    assert penalty > 0.01 * data_loss  # the penalties are not negligible in this check


def symbolic_gaussian_gradients(net: Network, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """L = (1/n) Σ_i Σ_d ½ (s + (y − μ)² e^{−s} + log 2π) (001 §3.12) of the composed network
    [μ | s] = tanh(X W0 + b0) W1 + b1, the first k output columns the means, the last k the log-variances;
    its value and its derivative by every parameter, with SymPy, at 30 digits."""
    symbols = {name: sp.Matrix(*value.shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for name, value in net.params.items()}
    n, k = y.shape
    out = (sp.Matrix(x.tolist()) * symbols["W0"] + sp.ones(n, 1) * symbols["b0"]).applyfunc(sp.tanh)
    out = out * symbols["W1"] + sp.ones(n, 1) * symbols["b1"]
    loss = sum((out[i, k + d] + (sp.Float(y[i, d], 30) - out[i, d]) ** 2 * sp.exp(-out[i, k + d]) + sp.log(2 * sp.pi)) / 2
               for i in range(n) for d in range(k)) / n
    flat = [s for m in symbols.values() for s in m]
    values = [mpmath.mpf(float(v)) for name in symbols for v in net.params[name].ravel()]
    evaluate = sp.lambdify(flat, [loss, *[sp.diff(loss, s) for s in flat]], modules="mpmath", cse=True)
    with mpmath.workdps(30):
        numbers = iter(float(g) for g in evaluate(*values))
    value = next(numbers)
    return value, {name: np.array([[next(numbers) for _ in range(m.cols)] for _ in range(m.rows)])
                   for name, m in symbols.items()}


@pytest.mark.parametrize("targets", [1, 2])
def test_gaussian_nll_network_gradients_equal_sympy_on_the_composed_expression(targets: int) -> None:
    """The Gaussian NLL reads the output's first half as μ and its second half as s: the fused step's
    loss and gradients equal SymPy's on the whole network written as one expression."""
    arch = Architecture(inputs=3, widths=(4, 2 * targets), activation="tanh", loss="gaussian_nll", optimizer="sgd")
    assert arch.targets == targets
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 3)), rng.normal(size=(3, targets))
    loss = net.step(x, y)
    value, expected = symbolic_gaussian_gradients(net, x, y)
    assert loss == pytest.approx(value, rel=1e-12)
    for name, grad in expected.items():
        np.testing.assert_allclose(net.grads[name], grad, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_learns_a_separable_problem(dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 5)).astype(dtype)
    labels = (x[:, 0] + x[:, 1] > 0).astype(int)
    net = Network(Architecture(inputs=5, widths=(16, 2)), dtype, seed=0, optimizer_hypers={"lr": 0.01})
    target = np.eye(2, dtype=dtype)[labels]
    first = net.step(x, target)
    for _ in range(300):
        last = net.step(x, target)
    assert last < 0.2 * first
    assert (net.predict(x).argmax(axis=1) == labels).mean() > 0.95
    assert all(p.dtype == dtype for p in net.params.values())


def test_bad_architecture_names_the_field() -> None:
    with pytest.raises(LayergenError, match="unknown activation 'swish'.*valid: .*identity"):
        Architecture(inputs=3, widths=(4,), activation="swish")
    with pytest.raises(LayergenError, match="unknown optimizer"):
        Architecture(inputs=3, widths=(4,), optimizer="lbfgs")
    with pytest.raises(LayergenError, match="positive"):
        Architecture(inputs=0, widths=(4,))


def test_an_architecture_describes_every_layer_it_has() -> None:
    """What ``layergen train`` prints and the fused module's header says: a layer list is shown layer by
    layer (not as dense widths with the default activation, which it may not have)."""
    assert Architecture(5, (16, 3), activation="tanh", loss="mse", optimizer="sgd").describe() == "5 → 16 → 3 tanh/mse/sgd"
    layered = Architecture(5, layers=("dense 16", "batch_norm", "gelu", "dropout 0.1", "dense 3"), loss="mse")
    assert layered.describe() == "5 → dense 16 → batch_norm → gelu → dropout 0.1 → dense 3; mse/adam"


def assert_central_differences(net: Network, x: np.ndarray, target: np.ndarray, analytic: dict[str, np.ndarray],
                               rng: np.random.Generator, per_parameter: int) -> None:
    """Central differences (h = 1e-6) of the loss through the whole compiled step (lr = 0) equal the step's
    gradient ``analytic`` at ``per_parameter`` random entries of every parameter, to 1e-7 relative."""
    for name, grad in analytic.items():
        flat, g = net.params[name].reshape(-1), grad.reshape(-1)
        for idx in rng.choice(flat.size, size=min(per_parameter, flat.size), replace=False):
            keep = flat[idx]
            flat[idx] = keep + 1e-6
            up = net.step(x, target)
            flat[idx] = keep - 1e-6
            down = net.step(x, target)
            flat[idx] = keep
            assert abs((up - down) / 2e-6 - g[idx]) <= 1e-7 * max(1.0, abs(g[idx])), (name, idx)


def test_every_layer_kind_backpropagates_correctly_through_the_fused_step() -> None:
    """Central differences of the loss through the whole compiled step (SGD with lr = 0)."""
    arch = Architecture(inputs=4, layers=("dense 6", "batch_norm", "tanh", "dense 5", "layer_norm", "silu", "dense 3"),
                        optimizer="sgd")
    net = Network(arch, np.float64, seed=1, optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(2)
    x, target = rng.normal(size=(8, 4)), np.eye(3)[rng.integers(0, 3, 8)]
    net.step(x, target)
    analytic = {k: v.copy() for k, v in net.grads.items()}
    assert set(analytic) == {"W0", "b0", "A0", "B0", "W1", "b1", "gamma0", "beta0", "W2", "b2"}
    assert_central_differences(net, x, target, analytic, rng, per_parameter=4)


def test_every_catalog_activation_backpropagates_through_the_fused_step() -> None:
    """Every activation spec of the catalog that a network can use (read off the generated modules, so a new
    spec is checked by being there), one after another in one network: central differences of the loss
    through the whole compiled step against its gradients."""
    activations = builtin_activations()
    assert {"relu", "tanh", "gelu", "softmax"} <= set(activations)
    assert set(activations) == {s.name for s in CATALOG if s.group == "activations"}  # none is left out unsaid
    layers = [word for name in activations for word in ("dense 5", name)]
    net = Network(Architecture(inputs=4, layers=(*layers, "dense 3"), optimizer="sgd"), np.float64, seed=1,
                  init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(2)
    x, target = rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
    net.step(x, target)
    analytic = {k: v.copy() for k, v in net.grads.items()}
    assert max(float(np.max(np.abs(g))) for g in analytic.values()) > 1e-3  # the gradient reaches the check
    assert_central_differences(net, x, target, analytic, rng, per_parameter=3)


def test_dropout_masks_in_training_and_is_the_identity_in_evaluation() -> None:
    arch = Architecture(inputs=3, layers=("dense 200", "dropout 0.5", "dense 2"), optimizer="sgd")
    net = Network(arch, np.float64, seed=0, optimizer_hypers={"lr": 0.0})
    x = np.ones((4, 3))
    net.step(x, np.eye(2)[[0, 1, 0, 1]])
    mask = net._buffers_for(4)["mask1"]
    assert set(np.unique(mask)) == {0.0, 1.0} and 0.3 < mask.mean() < 0.7
    hidden = net._buffers_for(4)["h0"]
    # h1 = hidden · mask / (1 − p) itself is gone after the step (its memory holds the gradient gh0 by then:
    # runtime/liveness.py); the layer after it read it, and its output is kept
    np.testing.assert_allclose(net._buffers_for(4)["h2"], (hidden * mask / 0.5) @ net.params["W1"] + net.params["b1"],
                               rtol=1e-12)
    np.testing.assert_allclose(net.predict(x), hidden @ net.params["W1"] + net.params["b1"], rtol=1e-12)


def test_dropout_masks_follow_the_network_seed_and_step_alone() -> None:
    """Masks are numbered by (network seed, step, node, element), not drawn from a shared generator: a
    network's masks are the same for the same seed whatever other networks draw in between, differ from
    step to step and between seeds, and keep 1 − p of the units (here 0.5 of 8 × 64 per step)."""
    arch = Architecture(inputs=3, layers=("dense 64", "dropout 0.5", "dense 2"), optimizer="sgd")
    x, target = np.ones((8, 3)), np.eye(2)[[0, 1] * 4]
    alone = Network(arch, np.float64, seed=3, optimizer_hypers={"lr": 0.0})
    first = []
    for _ in range(3):
        alone.step(x, target)
        first.append(alone._buffers_for(8)["mask1"].copy())
    again, other = (Network(arch, np.float64, seed=s, optimizer_hypers={"lr": 0.0}) for s in (3, 4))
    for step in range(3):  # interleaved with another network's steps
        other.step(x, target)
        again.step(x, target)
        np.testing.assert_array_equal(again._buffers_for(8)["mask1"], first[step])
        assert not np.array_equal(other._buffers_for(8)["mask1"], first[step])
        assert 0.4 < first[step].mean() < 0.6  # 512 draws: 0.5 ± 4.5 standard deviations
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("rows", [8, 128])  # the serial step, and the sharded one that reads the data by address
def test_a_batch_of_the_wrong_shape_gets_a_clear_error(rows: int) -> None:
    net = Network(Architecture(4, (8, 3)), np.float64, seed=0)
    x, target = np.ones((rows, 4)), np.eye(3)[np.arange(rows) % 3]
    with pytest.raises(LayergenError, match=r"step: x must have shape \(n, 4\).*got \(%d, 5\)" % rows):
        net.step(np.ones((rows, 5)), target)
    with pytest.raises(LayergenError, match=r"step: target must have shape \(%d, 3\).*got \(%d, 2\)" % (rows, rows)):
        net.step(x, target[:, :2])
    with pytest.raises(LayergenError, match=r"step: target must have shape \(%d, 3\)" % rows):
        net.step(x, target[:-1])
    with pytest.raises(LayergenError, match=r"predict: x must have shape \(n, 4\)"):
        net.predict(np.ones((rows, 3)))
    with pytest.raises(LayergenError, match="with n ≥ 1"):
        net.step(np.ones((0, 4)), np.ones((0, 3)))
    with pytest.raises(LayergenError, match=r"step: x is float32, but the network computes in float64; convert "
                                            r"the data once with .astype\(np.float64\)"):
        net.step(x.astype(np.float32), target)
    with pytest.raises(LayergenError, match=r"step: target is int64, but the network computes in float64"):
        net.step(x, target.astype(np.int64))
    assert net.step_count == 0
    assert np.isfinite(net.step(x, target)) and net.step_count == 1
    np.testing.assert_array_equal(net.predict(x.astype(np.float32)), net.predict(x.astype(np.float32).astype(np.float64)))


def test_unknown_layers_get_a_clear_error() -> None:
    with pytest.raises(LayergenError, match=r"unknown layer 'conv 3'; valid: dense <units>, dropout <p>"):
        Architecture(inputs=3, layers=("dense 4", "conv 3", "dense 2"))
    with pytest.raises(LayergenError, match="dropout a probability"):
        Architecture(inputs=3, layers=("dense 4", "dropout 1.5", "dense 2"))
    with pytest.raises(LayergenError, match="last layer must be `dense"):
        Architecture(inputs=3, layers=("dense 4", "relu"))


def test_an_activations_hyperparameter_set_in_the_layer_reaches_its_kernels() -> None:
    """"leaky_relu alpha=0.3" (000 eq. 4 with α = 0.3, not the spec's 0.01): the step's gradient equals
    SymPy's of the composed network with that α, with pre-activations on both sides of the kink, and the
    prediction is the forward map with that α."""
    alpha = 0.3

    def leaky(z: sp.Expr) -> sp.Expr:
        return sp.Piecewise((z, z >= 0), (sp.Float(alpha) * z, True))

    arch = Architecture(inputs=3, widths=(4, 2), activation=f"leaky_relu alpha={alpha}", optimizer="sgd")
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(3, 3)), np.array([0, 1, 1])
    pre = x @ net.params["W0"] + net.params["b0"]
    assert (pre > 0).any() and (pre < 0).any()
    net.step(x, np.eye(2)[labels])
    for name, exact in symbolic_gradients(net, x, labels, activation=leaky).items():
        np.testing.assert_allclose(net.grads[name], exact, rtol=1e-10, atol=1e-12, err_msg=name)
    hidden = np.where(pre >= 0, pre, alpha * pre)
    np.testing.assert_allclose(net.predict(x), hidden @ net.params["W1"] + net.params["b1"], rtol=1e-12)
    layered = Architecture(inputs=3, layers=("dense 4", "leaky_relu alpha = 0.3", "dense 2"), optimizer="sgd")
    assert [layered.activation_hypers(n) for n in layered.nodes() if n.kind == "activation"] == [{"alpha": 0.3}]
    assert [arch.activation_hypers(n) for n in Architecture(3, (4, 2), activation="leaky_relu").nodes()
            if n.kind == "activation"] == [{"alpha": 0.01}]  # unset: the spec's default


@pytest.mark.parametrize("layer, message", [
    ("leaky_relu beta=0.2", "activation leaky_relu has no hyperparameter 'beta'; valid: alpha"),
    ("relu alpha=0.2", "activation relu has no hyperparameter 'alpha'; it has none"),
    ("leaky_relu alpha=-0.1", "alpha=-0.1 is outside the domain its spec declares, nonnegative (≥ 0)"),
    ("leaky_relu alpha=inf", "alpha=inf is outside the domain its spec declares, nonnegative (≥ 0)"),
    ("leaky_relu alpha=big", "bad layer 'leaky_relu alpha=big': an activation's hyperparameters follow its name as "
                             "name=number pairs"),
    ("leaky_relu alpha", "bad layer 'leaky_relu alpha'"),
    ("leaky_relu alpha=0.1 alpha=0.2", "each name once"),
])
def test_bad_activation_settings_get_a_clear_error(layer: str, message: str) -> None:
    for arch in ({"layers": ("dense 4", layer, "dense 2")}, {"widths": (4, 2), "activation": layer}):
        with pytest.raises(LayergenError, match=re.escape(message)):
            Architecture(inputs=3, **arch)  # type: ignore[arg-type]


def test_bad_optimizer_hyperparameters_get_a_clear_error() -> None:
    arch = Architecture(inputs=3, widths=(4, 2), optimizer="adam")
    for value in (float("nan"), "0.1", True, 1.0, -0.1):  # the range the spec declares: a decay rate below 1
        with pytest.raises(LayergenError, match=r"optimizer adam: hyperparameter beta1 must be in \[0, 1\), got"):
            Network(arch, np.float64, optimizer_hypers={"beta1": value})  # type: ignore[dict-item]
    with pytest.raises(LayergenError, match=r"bad layer 'dropout 1': dense needs a positive integer, dropout a "
                                            r"probability in \[0, 1\)"):
        Architecture(inputs=3, layers=("dense 4", "dropout 1", "dense 2"))
    with pytest.raises(LayergenError, match=r"unknown hyperparameter\(s\) \['momentum'\]; valid: "):
        Network(arch, np.float64, optimizer_hypers={"momentum": 0.9})


BATCH_NORM_DROPOUT = Architecture(5, layers=("dense 16", "batch_norm", "relu", "dropout 0.3", "dense 3"))


@pytest.mark.parametrize("arch, regularised", [(BATCH_NORM_DROPOUT, True),  # the whole-batch step
                                               (Architecture(5, (16, 16, 3), activation="tanh"), False)])  # sharded
def test_warm_up_compiles_without_changing_the_network(arch: Architecture, regularised: bool) -> None:
    """``warm_up`` (what `layergen train` times as compiling) leaves every array and the step count (which
    numbers dropout's masks) as they were: a warmed network's next steps equal an unwarmed twin's bit for
    bit. Max-norm rescales columns even at lr = 0, so the regularised case shows the restore is needed."""
    rng = np.random.default_rng(0)
    x, target = rng.normal(size=(70, 5)), np.eye(3)[rng.integers(0, 3, 70)]
    nets = []
    for warm in (True, False):
        net = Network(arch, np.float64, seed=1, optimizer_hypers={"lr": 0.05})
        net.max_norm, net.l2 = (0.5, 1.0) if regularised else (0.0, 0.0)
        assert net.sharded(64) == (arch is not BATCH_NORM_DROPOUT)
        net.step(x, target)
        before = [a.copy() for a in (net.theta, net.fixed, *net._states)], net.step_count
        if warm:
            net.warm_up(64)
            after = [net.theta, net.fixed, *net._states]
            assert all(np.array_equal(a, b) for a, b in zip(before[0], after)) and net.step_count == before[1]
        nets.append((net, [net.step(x, target) for _ in range(2)], net.theta.copy()))
    (_, warm_losses, warm_theta), (_, cold_losses, cold_theta) = nets
    assert warm_losses == cold_losses
    np.testing.assert_array_equal(warm_theta, cold_theta)


def test_predict_runs_in_blocks_in_one_buffer() -> None:
    """``predict`` over blocks of ``rows`` samples equals one pass over all of them (batch norm evaluates
    with running averages, so rows are independent); a shorter input reuses the buffer of a longer one."""
    net = Network(BATCH_NORM_DROPOUT, np.float64, seed=2)  # dropout is the identity in predict
    net.step(*(lambda r: (r.normal(size=(40, 5)), np.eye(3)[r.integers(0, 3, 40)]))(np.random.default_rng(1)))
    x = np.random.default_rng(3).normal(size=(103, 5))
    whole = net.predict(x)
    buffers = len(net._work)
    np.testing.assert_allclose(net.predict(x, rows=10), whole, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net.predict(x[:37]), whole[:37], rtol=1e-13, atol=1e-13)
    assert len(net._work) == buffers, "a shorter input allocated a buffer of its own"
    with pytest.raises(LayergenError, match="predict: rows must be a positive integer, got 0"):
        net.predict(x, rows=0)


@pytest.mark.parametrize("scheme", ["lecun", "xavier", "he"])
def test_initialisers_draw_from_the_distributions_of_003_section_7(scheme: str) -> None:
    """Each weight matrix, n_i inputs to n_{i+1} outputs, against the exact distribution of 003 §7 by a
    Kolmogorov–Smirnov test: LeCun U(±√(3/n_i)), Glorot U(±√(6/(n_i + n_{i+1}))), He N(0, √(2/n_i)) (a
    standard deviation: Var = 2/n_i). Biases start at 0, batch norm's scales at 1; a seed reproduces the
    draw and another seed changes it."""
    from scipy import stats

    from layergen.runtime.initialise import initialise

    arch = Architecture(300, layers=("dense 200", "batch_norm", "relu", "dense 40"))
    params = initialise(arch, seed=7, dtype=np.float64, scheme=scheme)
    for name, (n_in, n_out) in (("W0", (300, 200)), ("W1", (200, 40))):
        weights = params[name].ravel()
        if scheme == "he":
            exact = stats.norm(0.0, np.sqrt(2.0 / n_in))
        else:
            bound = np.sqrt(3.0 / n_in) if scheme == "lecun" else np.sqrt(6.0 / (n_in + n_out))
            exact = stats.uniform(-bound, 2 * bound)
            assert np.abs(weights).max() <= bound
        assert stats.kstest(weights, exact.cdf).pvalue > 1e-3, (name, scheme)
    assert not params["b0"].any() and not params["b1"].any() and (params["A0"] == 1).all() and not params["B0"].any()
    again, other = initialise(arch, 7, np.float64, scheme), initialise(arch, 8, np.float64, scheme)
    assert all(np.array_equal(again[k], v) for k, v in params.items()) and not np.array_equal(other["W0"], params["W0"])
