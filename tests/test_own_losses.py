"""Losses of your own: a loss spec comparing one or more predictions (N, D) with one target of that shape, as the
batch mean L = (1/N) Σ ℓ, named in a run's config (``[network] loss``) beside the built-in ones."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from layergen.cli import main
from layergen.errors import LayergenError
from layergen.runtime.config import own_spec_modules
from layergen.runtime.evaluate import loss_value
from layergen.runtime.network import Architecture, Network

from test_own_specs import write_specs

HUBER = textwrap.dedent('''
    """Huber loss: ½r² for |r| ≤ δ, δ(|r| − δ/2) beyond, with r = prediction − target."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise

    p, t, l = sp.symbols("p t l", real=True)
    delta = sp.Symbol("delta", positive=True)
    r = p - t
    SPEC = Elementwise(name="huber", kind="loss", doc=__doc__, inputs={p: (N, D)}, targets={t: (N, D)},
                       hyper={delta: 1.0},
                       forward={l: sp.Piecewise((r**2 / 2, sp.Abs(r) <= delta), (delta * (sp.Abs(r) - delta / 2), True))})
''')

#: a misfit: a loss summed over the batch
SUMMED = HUBER.replace('name="huber"', 'name="summed"').replace("hyper={delta: 1.0},", 'hyper={delta: 1.0}, reduction="sum",')
#: a misfit: a loss that trains a parameter of its own (a network's loss takes predictions and targets only)
WEIGHTED = textwrap.dedent('''
    """A squared error with a learned weight per feature."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise, Param

    p, w, t, l = sp.symbols("p w t l", real=True)
    SPEC = Elementwise(name="weighted", kind="loss", doc=__doc__, inputs={p: (N, D)}, targets={t: (N, D)},
                       params={w: Param((D,), init=1.0)}, forward={l: w**2 * (p - t) ** 2})
''')
#: a loss of two predictions: the Laplace negative log-likelihood with a predicted location m and log-scale b,
#: −log p(y) = log 2 + b + |y − m| e^{−b}; the network's outputs hold [m | b]
LAPLACE = textwrap.dedent('''
    """Laplace negative log-likelihood: a location m and a log-scale b predicted per target."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise

    m, b, y, l = sp.symbols("m b y l", real=True)
    SPEC = Elementwise(name="laplace", kind="loss", doc=__doc__, inputs={m: (N, D), b: (N, D)}, targets={y: (N, D)},
                       forward={l: sp.log(2) + b + sp.Abs(y - m) * sp.exp(-b)})
''')


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    base = tmp_path_factory.mktemp("losses")
    write_specs(base / "my_specs", losses__huber=HUBER, losses__summed=SUMMED, losses__weighted=WEIGHTED,
                losses__laplace=LAPLACE)
    return base, own_spec_modules({"specs": "my_specs"}, "test.toml", base)


def assert_step_equals_sympy(net: Network, symbols: dict[str, sp.Matrix], values: dict[sp.Symbol, float],
                             objective: sp.Expr, loss: float, x: np.ndarray, y: np.ndarray) -> None:
    """The step's ``loss`` and the network's gradients equal SymPy's value and derivatives of ``objective`` (the
    whole network written as one expression of the parameter ``symbols``) at ``values``, evaluated at 30
    digits; and ``loss_value`` of the network's predictions gives the same loss."""
    flat = list(values)
    evaluate = sp.lambdify(flat, [objective, *[sp.diff(objective, s) for s in flat]], modules="mpmath", cse=True)
    with mpmath.workdps(30):
        numbers = [float(v) for v in evaluate(*[mpmath.mpf(values[s]) for s in flat])]
    assert loss == pytest.approx(numbers[0], rel=1e-12)
    assert loss_value(net, net.predict(x), y) == pytest.approx(numbers[0], rel=1e-12)
    gradient = iter(numbers[1:])
    for name, m in symbols.items():
        expected = np.array([next(gradient) for _ in range(m.rows * m.cols)]).reshape(m.shape)
        np.testing.assert_allclose(net.grads[name], expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_step_differentiates_your_loss_through_the_whole_network(own: tuple[Path, tuple[str, ...]]) -> None:
    """The loss and gradients of a regressor trained with the Huber loss, its δ set to 0.5 in the config's
    way ("huber delta=0.5"; the spec's default is 1), equal SymPy's of the network written as one
    expression, L = (1/n) Σ huber(tanh(X W0 + b0) W1 + b1 − Y), with residuals on both sides of δ; and the
    loss a run reports for a data split (``evaluate.loss_value``) runs with the same δ."""
    _, modules = own
    arch = Architecture(inputs=3, widths=(4, 2), activation="tanh", loss="huber delta=0.5", optimizer="sgd",
                        own_modules=modules)
    net = Network(arch, np.float64, seed=3, init="xavier", optimizer_hypers={"lr": 0.0})
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    loss = net.step(x, y)
    symbols = {name: sp.Matrix(*value.shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for name, value in net.params.items()}
    out = (sp.Matrix(x.tolist()) * symbols["W0"] + sp.ones(4, 1) * symbols["b0"]).applyfunc(sp.tanh)
    out = out * symbols["W1"] + sp.ones(4, 1) * symbols["b1"]
    residuals = [out[i, d] - sp.Float(y[i, d], 30) for i in range(4) for d in range(2)]
    values = {s: float(v) for name, m in symbols.items() for s, v in zip(m, net.params[name].ravel())}
    sizes = [abs(float(r.subs(values))) for r in residuals]
    assert min(sizes) < 0.5 < max(sizes)  # both branches of the loss are in the check
    half = sp.Rational(1, 2)
    objective = sum(r**2 / 2 if size <= 0.5 else half * (sp.Abs(r) - half / 2) for r, size in zip(residuals, sizes)) / 4
    assert_step_equals_sympy(net, symbols, values, objective, loss, x, y)


def test_a_loss_of_two_predictions_reads_its_blocks_of_the_output(own: tuple[Path, tuple[str, ...]]) -> None:
    """The Laplace NLL of your own reads two predictions per target, the output columns [m | b]: the step's loss
    and gradients equal SymPy's of the network written as one expression,
    L = (1/n) Σ_{i,d} (log 2 + b_id + |y_id − m_id| e^{−b_id}) with [m | b] = tanh(X W0 + b0) W1 + b1, and
    ``loss_value`` agrees; the sharded step (two shards of 32 rows, each reading its rows' blocks) gives the
    whole-batch step's loss and gradients."""
    _, modules = own
    arch = Architecture(inputs=3, widths=(5, 4), activation="tanh", loss="laplace", optimizer="sgd", own_modules=modules)
    assert arch.predictions() == ["m", "b"] and arch.targets == 2 and arch.prediction_columns() == [(0, 2), (2, 4)]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    net = Network(arch, np.float64, seed=4, init="xavier", optimizer_hypers={"lr": 0.0})
    loss = net.step(x, y)
    symbols = {name: sp.Matrix(*value.shape, lambda i, j, n=name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for name, value in net.params.items()}
    out = (sp.Matrix(x.tolist()) * symbols["W0"] + sp.ones(8, 1) * symbols["b0"]).applyfunc(sp.tanh)
    out = out * symbols["W1"] + sp.ones(8, 1) * symbols["b1"]
    objective = sum(sp.log(2) + out[i, 2 + d] + sp.Abs(sp.Float(y[i, d], 30) - out[i, d]) * sp.exp(-out[i, 2 + d])
                    for i in range(8) for d in range(2)) / 8
    values = {s: float(v) for name, m in symbols.items() for s, v in zip(m, net.params[name].ravel())}
    assert_step_equals_sympy(net, symbols, values, objective, loss, x, y)
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 2))
    whole, sharded = (Network(arch, np.float64, seed=4, optimizer_hypers={"lr": 0.0}, shards=s) for s in (1, 2))
    assert sharded.sharded(64) and not whole.sharded(64)
    assert sharded.step(x, y) == pytest.approx(whole.step(x, y), rel=1e-13)
    for name in whole.params:
        np.testing.assert_allclose(sharded.grads[name], whole.grads[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_a_config_trains_a_regressor_with_a_loss_of_two_predictions(own: tuple[Path, tuple[str, ...]],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A config sizes the last layer for the loss's predictions (2 × the targets), the run reports the RMSE of
    the first prediction (the location), and ``layergen predict`` prints the location in the targets' units
    and the other prediction beside it; class labels with such a loss are refused, naming the valid losses."""
    base, _ = own
    (base / "laplace.toml").write_text('[data]\ndataset = "diabetes"\n[network]\nspecs = "my_specs"\nhidden = [16]\n'
                                       'loss = "laplace"\n[train]\nepochs = 40\nbatch = 32\n')
    assert main(["train", str(base / "laplace.toml"), "--quiet", "--out", str(base / "runs" / "laplace")]) == 0
    printed = capsys.readouterr().out
    assert "10 → 16 → 2 relu/laplace/adam" in printed, printed
    rmse, baseline = (float(v) for v in re.search(r"test RMSE ([\d.]+) \(predicting the training mean: ([\d.]+)\)",
                                                   printed).groups())
    assert rmse < baseline
    np.savez(base / "patients.npz", x=np.zeros((3, 10)))
    assert main(["predict", str(base / "runs" / "laplace"), str(base / "patients.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0].split(","), [[float(v) for v in line.split(",")] for line in lines[1:]]
    assert len(header) == 2 and header[1] == f"{header[0]}_b" and len(rows) == 3 and all(len(r) == 2 for r in rows)
    (base / "digits.toml").write_text('[data]\ndataset = "digits"\n[network]\nspecs = "my_specs"\nloss = "laplace"\n')
    assert main(["train", str(base / "digits.toml"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert re.search(r"digits.toml: \[network\] loss 'laplace' reads 2 predictions per target \(m, b\), a regression "
                     r"loss, but the data has class labels; valid: softmax_cross_entropy, mse, bce_logits, mae$", error.strip()), error


def test_a_config_trains_a_regressor_and_a_classifier_with_your_loss(own: tuple[Path, tuple[str, ...]],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A regression reports the RMSE, a classification the accuracy of the largest output; predictions of a
    classifier trained with your loss give the class, with no probabilities (its outputs are not any)."""
    base, _ = own
    for name, data, loss in (("diabetes", 'dataset = "diabetes"', "huber"), ("digits", 'dataset = "digits"', "huber")):
        (base / f"{name}.toml").write_text(f'[data]\n{data}\n[network]\nspecs = "my_specs"\nhidden = [16]\n'
                                           f'loss = "{loss}"\n[train]\nepochs = 3\nbatch = 32\n')
        assert main(["train", str(base / f"{name}.toml"), "--quiet", "--out", str(base / "runs" / name)]) == 0
        printed = capsys.readouterr().out
        assert f"relu/{loss}/adam, 3 epochs" in printed, printed
        assert ("test RMSE" if name == "diabetes" else "test accuracy") in printed, printed
    np.savez(base / "x.npz", x=np.zeros((2, 64)))
    assert main(["predict", str(base / "runs" / "digits"), str(base / "x.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prediction" and len(lines) == 3 and all(line.isdigit() for line in lines[1:])


def test_losses_a_network_cannot_use_are_named_with_the_reason(own: tuple[Path, tuple[str, ...]]) -> None:
    _, modules = own
    with pytest.raises(LayergenError, match=r"unknown loss 'summed' \(your spec 'summed' is not usable in a network: "
                                            r"it sums over the batch \(reduction = 'sum'\); a network's loss is the "
                                            r"batch mean"):
        Architecture(inputs=3, widths=(4, 2), loss="summed", own_modules=modules)
    with pytest.raises(LayergenError, match=r"your spec 'weighted' is not usable in a network: its loss takes p "
                                            r"\(input, \('N', 'D'\)\), t \(target, \('N', 'D'\)\), w \(param, \('D',\)\); a network's "
                                            r"loss compares one or more predictions of shape \(N, D\)"):
        Architecture(inputs=3, widths=(4, 2), loss="weighted", own_modules=modules)
    with pytest.raises(LayergenError, match=r"loss laplace reads 2 predictions per target \(m, b\), side by side, so "
                                            r"the last dense layer needs a width of 2 × targets; got 3"):
        Architecture(inputs=3, widths=(4, 3), loss="laplace", own_modules=modules)
    with pytest.raises(LayergenError, match=r"unknown activation 'huber' \(your spec 'huber' is a loss, not an "
                                            r"activation\); valid: "):
        Architecture(inputs=3, widths=(4, 2), activation="huber", own_modules=modules)
    with pytest.raises(LayergenError, match=r"loss huber: delta=-1\.0 is outside the domain its spec declares, "
                                            r"positive \(> 0\)"):
        Architecture(inputs=3, widths=(4, 2), loss="huber delta=-1", own_modules=modules)
    with pytest.raises(LayergenError, match=r"loss mse has no hyperparameter 'delta'; it has none"):
        Architecture(inputs=3, widths=(4, 2), loss="mse delta=1", own_modules=modules)
    with pytest.raises(LayergenError, match=r"unknown loss 'nope'; valid: softmax_cross_entropy, .*, huber"):
        Architecture(inputs=3, widths=(4, 2), loss="nope", own_modules=modules)
