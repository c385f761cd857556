"""Losses of your own: a loss spec comparing one prediction (N, D) with one target of that shape, as the
batch mean L = (1/N) Σ ℓ, named in a run's config (``[network] loss``) beside the built-in ones."""

from __future__ import annotations

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

#: misfits: a loss summed over the batch, and one reading two predictions
SUMMED = HUBER.replace('name="huber"', 'name="summed"').replace("hyper={delta: 1.0},", 'hyper={delta: 1.0}, reduction="sum",')
PAIRED = textwrap.dedent('''
    """A squared error weighted by a second prediction."""
    import sympy as sp
    from layergen.spec import D, N, Elementwise

    p, q, t, l = sp.symbols("p q t l", real=True)
    SPEC = Elementwise(name="paired", kind="loss", doc=__doc__, inputs={p: (N, D), q: (N, D)}, targets={t: (N, D)},
                       forward={l: q**2 * (p - t) ** 2})
''')


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    base = tmp_path_factory.mktemp("losses")
    write_specs(base / "my_specs", losses__huber=HUBER, losses__summed=SUMMED, losses__paired=PAIRED)
    return base, own_spec_modules({"specs": "my_specs"}, "test.toml", base)


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
    with pytest.raises(LayergenError, match=r"your spec 'paired' is not usable in a network: its loss takes p \(input, "
                                            r"\('N', 'D'\)\), q \(input, .*compares one prediction"):
        Architecture(inputs=3, widths=(4, 2), loss="paired", own_modules=modules)
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
