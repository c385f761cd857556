"""Layers of your own that train parameters of their own: a map spec whose parameters are one value per
feature (D,) or one for the layer (), each declared with the value a network starts it at
(``Param(shape, init=v)``), called by the fused steps like a built-in layer, its parameters updated by the
optimizer with the rest."""

from __future__ import annotations

import textwrap
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from layergen.cli import main
from layergen.errors import LayergenError, SpecError
from layergen.runtime.checkpoint import load_checkpoint
from layergen.runtime.config import own_spec_modules
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.network import Architecture, Network
from layergen.spec.loader import load_spec_file

from test_own_specs import write_specs

PRELU = textwrap.dedent('''
    """Parametric ReLU: x for x > 0, a·x otherwise, with a learned slope a per feature."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise, Param

    x, y, a = sp.symbols("x y a", real=True)
    SPEC = Elementwise(name="prelu", kind="map", doc=__doc__, inputs={x: (N, D)},
                       params={a: Param((D,), init=0.25)}, forward={y: sp.Piecewise((x, x > 0), (a * x, True))})
''')

SCALED_TANH = textwrap.dedent('''
    """c·tanh(x/s), with a learned scale c shared by the layer and a fixed s."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise, Param

    x, y, c = sp.symbols("x y c", real=True)
    s = sp.Symbol("s", positive=True)
    SPEC = Elementwise(name="scaled_tanh", kind="map", doc=__doc__, inputs={x: (N, D)},
                       params={c: Param((), init=1.5)}, hyper={s: 1.0}, forward={y: c * sp.tanh(x / s)})
''')

#: misfits: a parameter without a starting value, and one training would not update
NO_INIT = PRELU.replace('name="prelu"', 'name="bare"').replace("Param((D,), init=0.25)", "(D,)")
FROZEN = PRELU.replace('name="prelu"', 'name="frozen"').replace("init=0.25", "trainable=False, init=0.25")
#: a misfit of another kind: RMS normalisation over the batch instead of over a sample's features
BATCH_RMS = textwrap.dedent('''
    """g·x/√(mean over the batch of x² + ε): a statistic of the batch, like batch norm's."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise, Mean, Param

    x, y, ms, g = sp.symbols("x y ms g", real=True)
    SPEC = Elementwise(name="batch_rms", kind="map", doc=__doc__, inputs={x: (N, D)},
                       params={g: Param((D,), init=1.0)}, reductions={ms: Mean(x**2, axis=0)},
                       forward={y: g * x / sp.sqrt(ms + sp.Rational(1, 10**6))})
''')


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    base = tmp_path_factory.mktemp("layers")
    write_specs(base / "my_specs", layers__prelu=PRELU, layers__scaled_tanh=SCALED_TANH, layers__bare=NO_INIT,
                layers__frozen=FROZEN, layers__batch_rms=BATCH_RMS)
    return base, own_spec_modules({"specs": "my_specs"}, "test.toml", base)


def composed_gradients(net: Network, x: np.ndarray, labels: np.ndarray, s: float) -> dict[str, np.ndarray]:
    """SymPy's derivative, at 30 digits, of L = −(1/n) Σ log softmax(c·tanh((prelu_a(X) W0 + b0)/s) W1 + b1)_t
    by every parameter: the network written as one expression, PReLU's slopes a and the scale c included."""
    symbols = {name: sp.Matrix(*(value.shape if value.ndim == 2 else (1, max(value.size, 1))),
                               lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for name, value in net.params.items()}
    slopes, scale = symbols["prelu0_a"], symbols["scaled_tanh0_c"][0, 0]
    n = x.shape[0]
    hidden = sp.Matrix(n, x.shape[1], lambda i, j: sp.Piecewise((x[i, j], x[i, j] > 0), (slopes[0, j] * x[i, j], True)))
    hidden = (hidden * symbols["W0"] + sp.ones(n, 1) * symbols["b0"]).applyfunc(lambda z: scale * sp.tanh(z / s))
    logits = hidden * symbols["W1"] + sp.ones(n, 1) * symbols["b1"]
    loss = sum(-logits[i, int(labels[i])] + sp.log(sum(sp.exp(logits[i, k]) for k in range(logits.cols)))
               for i in range(n)) / n
    flat = [v for m in symbols.values() for v in m]
    values = [mpmath.mpf(float(v)) for name in symbols for v in net.params[name].ravel()]
    gradient = sp.lambdify(flat, [sp.diff(loss, v) for v in flat], modules="mpmath", cse=True)
    with mpmath.workdps(30):
        numbers = iter(float(g) for g in gradient(*values))
    return {name: np.array([next(numbers) for _ in range(m.rows * m.cols)]).reshape(net.params[name].shape)
            for name, m in symbols.items()}


def test_a_layers_parameters_start_where_its_spec_says_and_get_the_composed_networks_gradient(
        modules: tuple[Path, tuple[str, ...]]) -> None:
    """PReLU first (its slopes' gradient reaches back to the data's layer) and a scaled tanh with its scale
    c of shape () and s set to 0.8 in the layer: the step's gradients equal SymPy's of the whole network
    (to 1e-10, float64), and a step of SGD moves a and c by −lr times them, as it moves the weights."""
    _, own = modules
    arch = Architecture(inputs=3, layers=("prelu", "dense 4", "scaled_tanh s=0.8", "dense 2"), optimizer="sgd",
                        own_modules=own)
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    assert set(net.params) == {"prelu0_a", "W0", "b0", "scaled_tanh0_c", "W1", "b1"}
    np.testing.assert_array_equal(net.params["prelu0_a"], np.full(3, 0.25))
    assert net.params["scaled_tanh0_c"].shape == () and net.params["scaled_tanh0_c"] == 1.5
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    assert (x < 0).any(axis=0).all()  # every slope is in the check
    before = {k: v.copy() for k, v in net.params.items()}
    net.step(x, np.eye(2)[labels])
    expected = composed_gradients(net, x, labels, s=0.8)
    for name, grad in expected.items():
        np.testing.assert_allclose(net.grads[name], grad, rtol=1e-10, atol=1e-12, err_msg=name)
    assert abs(expected["scaled_tanh0_c"]) > 1e-3 and np.abs(expected["prelu0_a"]).min() > 1e-4
    net.set_learning_rate(0.1)
    net.step(x, np.eye(2)[labels])
    for name, grad in expected.items():
        np.testing.assert_allclose(net.params[name], before[name] - 0.1 * grad, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_sharded_step_trains_a_layers_parameters_as_the_whole_batch_step_does(
        modules: tuple[Path, tuple[str, ...]], dtype: type) -> None:
    """From batch 64 up the step runs in two shards, each writing its own gradient of a and c, merged before
    the update: ten Adam steps end where ten whole-batch steps do."""
    _, own = modules
    arch = Architecture(inputs=5, layers=("dense 8", "prelu", "dense 8", "scaled_tanh", "dense 3"), own_modules=own)
    sharded, whole = (Network(arch, dtype, seed=1, shards=shards) for shards in (2, 1))
    assert sharded._shards.applies(96) and not whole._shards.applies(96)
    rng = np.random.default_rng(4)
    for _ in range(10):
        x, target = rng.normal(size=(96, 5)).astype(dtype), np.eye(3, dtype=dtype)[rng.integers(0, 3, 96)]
        assert sharded.step(x, target) == pytest.approx(whole.step(x, target), rel=1e-5 if dtype == np.float32 else 1e-12)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name in ("prelu0_a", "scaled_tanh0_c"):
        assert not np.array_equal(sharded.params[name], np.full_like(sharded.params[name], 0.25 if "prelu" in name else 1.5))
        np.testing.assert_allclose(sharded.params[name], whole.params[name], rtol=tol, atol=tol, err_msg=name)


def test_a_config_trains_resumes_and_predicts_with_your_layer(modules: tuple[Path, tuple[str, ...]],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = modules
    config = base / "run.toml"
    config.write_text('[network]\nspecs = "my_specs"\nlayers = ["dense 32", "prelu", "dense 10"]\n'
                      '[train]\nepochs = 3\nbatch = 64\n')
    run = base / "runs" / "prelu"
    assert main(["train", str(config), "--quiet", "--out", str(run)]) == 0
    assert "64 → dense 32 → prelu → dense 10; softmax_cross_entropy/adam" in capsys.readouterr().out
    net = load_checkpoint(run).net
    slopes = net.params["prelu0_a"]
    assert slopes.shape == (32,) and not np.allclose(slopes, 0.25)  # trained, and saved with the weights
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    assert "4 epochs" in capsys.readouterr().out
    np.savez(base / "x.npz", x=np.zeros((2, 64)))
    assert main(["predict", str(run), str(base / "x.npz")]) == 0
    assert capsys.readouterr().out.startswith("prediction,p_0,")


def test_layers_a_network_cannot_train_are_named_with_the_reason(modules: tuple[Path, tuple[str, ...]]) -> None:
    _, own = modules
    with pytest.raises(LayergenError, match=r"unknown activation 'bare' \(your spec 'bare' is "
                                            r"not usable in a network: its parameter a declares no starting value; "
                                            r"declare it as Param\(\(D,\), init=\.\.\.\)"):
        Architecture(inputs=3, widths=(4, 2), activation="bare", own_modules=own)
    with pytest.raises(LayergenError, match=r"unknown layer 'bare' \(your spec 'bare' is not usable in a network: "
                                            r"its parameter a declares no starting value"):
        Architecture(inputs=3, layers=("dense 4", "bare", "dense 2"), own_modules=own)  # a layer list says why too
    with pytest.raises(LayergenError, match=r"your spec 'frozen' is not usable in a network: its parameter a is not "
                                            r"trainable; a network trains every parameter of a layer"):
        Architecture(inputs=3, widths=(4, 2), activation="frozen", own_modules=own)
    with pytest.raises(LayergenError, match=r"flow architecture: unknown activation 'prelu' \(your spec 'prelu' is not "
                                            r"usable in a flow's conditioner: it trains parameters of its own"):
        FlowArchitecture(dim=3, activation="prelu", own_modules=own)
    # a prediction in blocks, or a step split over the cores, would see other statistics than the whole batch's
    with pytest.raises(LayergenError, match=r"unknown layer 'batch_rms' \(your spec 'batch_rms' is not usable in a "
                                            r"network: it mixes the samples of a batch \(a statistic over the batch, "
                                            r"axis=0\).*a layer may reduce over a sample's features \(axis=1"):
        Architecture(inputs=3, layers=("dense 4", "batch_rms", "dense 2"), own_modules=own)


@pytest.mark.parametrize("init", ["float('nan')", "'0.25'", "True"])
def test_a_starting_value_that_is_not_a_finite_number_is_a_spec_error(tmp_path: Path, init: str) -> None:
    write_specs(tmp_path, layers__prelu=PRELU.replace("init=0.25", f"init={init}"))
    with pytest.raises(SpecError, match=r"prelu\.py: field 'params': a's init must be a finite number"):
        load_spec_file(tmp_path / "layers" / "prelu.py", "layers")


def test_the_starting_value_is_in_the_derivation_and_its_documents(modules: tuple[Path, tuple[str, ...]],
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    base, _ = modules
    assert main(["derive", "prelu", "--specs", str(base / "my_specs")]) == 0
    assert "a            param         shape ('D',) trainable, starts at 0.25" in capsys.readouterr().out
    assert main(["latex", "prelu", "--specs", str(base / "my_specs"), "--format", "md", "--out", str(tmp_path)]) == 0
    assert "| $a$ | param | $d$ | trainable, initially 0.25 |" in (tmp_path / "prelu.md").read_text()


def test_a_layer_added_to_the_packages_catalog_is_found_by_being_there(modules: tuple[Path, tuple[str, ...]],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec with declared starting values added to the package's specs/layers (or specs/activations) is a
    layer a network may name, as a user's is: found by reading the generated modules, the misfits left out.
    Here the package's generated folder is stood in for by one holding this module's four layer specs."""
    import layergen.runtime.kernel_catalog as catalog
    from layergen.runtime.modules import import_generated

    base, _ = modules
    monkeypatch.setattr(catalog, "builtin_root", lambda: base / "generated")
    monkeypatch.setattr(catalog, "load_builtin",
                        lambda name, group=None: import_generated(base / "generated" / str(group) / f"{name}.py"))
    catalog.builtin_layers.cache_clear()
    try:
        assert catalog.builtin_layers() == ("prelu", "scaled_tanh")  # not bare (no init), not frozen
    finally:
        catalog.builtin_layers.cache_clear()
