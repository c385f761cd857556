"""`layergen predict`: a trained network's checkpoint applied to new samples, prepared as its training data
was (columns picked by name, the training split's standardisation), and a clear error for each bad input.
The expected values are computed here from the network's raw outputs and the dataset's statistics, rebuilt
independently of the checkpoint's record of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from layergen.cli import main
from layergen.errors import LayergenError
from layergen.runtime.config import load_data
from layergen.runtime.predict import load_preprocessing, predictions, read_features
from layergen.runtime.checkpoint import load_checkpoint


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join([",".join(header), *[",".join(map(str, row)) for row in rows]]) + "\n")
    return path


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained on a .csv whose labels are names, in a column between the features."""
    folder = tmp_path_factory.mktemp("classifier")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    labels = np.array(["left", "middle", "right"])[np.digitize(x[:, 0] + 0.5 * x[:, 2], [-0.5, 0.5])]
    write_csv(folder / "train.csv", ["a", "kind", "b", "c"],
              [[f"{r[0]:.6f}", k, f"{r[1]:.6f}", f"{r[2]:.6f}"] for r, k in zip(x, labels)])
    (folder / "run.toml").write_text('[data]\nfile = "train.csv"\ntarget = "kind"\n[network]\nhidden = [8]\n'
                                     '[train]\nepochs = 20\nbatch = 16\nlr = 1e-2\n')
    assert main(["train", str(folder / "run.toml"), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder


def test_a_classifier_predicts_class_names_and_probabilities_from_the_named_columns(classifier: Path) -> None:
    """The new file has its columns in another order, an extra one, and no label: the features are picked by
    name, standardised by the training split's statistics; the predicted name is the sorted names' argmax,
    and the probabilities are the softmax of the outputs."""
    rng = np.random.default_rng(1)
    new = rng.normal(size=(7, 3))
    write_csv(classifier / "new.csv", ["id", "c", "b", "a"], [[i, r[2], r[1], r[0]] for i, r in enumerate(new)])
    assert main(["predict", str(classifier / "run"), str(classifier / "new.csv"), "--out",
                 str(classifier / "out.csv")]) == 0
    header, rows = read_csv(classifier / "out.csv")
    assert header == ["prediction", "p_left", "p_middle", "p_right"] and len(rows) == 7

    data = load_data({"data": {"file": "train.csv", "target": "kind"}}, "run.toml", classifier)
    net = load_checkpoint(classifier / "run").net
    outputs = net.predict((new - data.feature_mean) / data.feature_std).astype(float)
    expected = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    probabilities = np.array([[float(v) for v in row[1:]] for row in rows])
    np.testing.assert_allclose(probabilities, expected, rtol=2e-6, atol=1e-7)
    assert [row[0] for row in rows] == [["left", "middle", "right"][i] for i in outputs.argmax(axis=1)]
    assert len({row[0] for row in rows}) > 1  # not one class for every sample


@pytest.mark.parametrize("loss", ["bce_logits", "mse"])
def test_classifiers_of_other_losses_give_their_own_probabilities_or_none(classifier: Path, tmp_path: Path,
                                                                          loss: str) -> None:
    """BCE on logits: each class's probability is the sigmoid of its output (from the generated ``sigmoid``
    kernel); a classifier trained with MSE on one-hot targets has no probabilities, only the class."""
    (tmp_path / "run.toml").write_text(f'[data]\nfile = "{classifier / "train.csv"}"\ntarget = "kind"\n'
                                       f'[network]\nhidden = [8]\nloss = "{loss}"\n[train]\nepochs = 3\nbatch = 16\n')
    assert main(["train", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    x = np.random.default_rng(2).normal(size=(5, 3))
    np.savez(tmp_path / "new.npz", x=x)
    preprocessing = load_preprocessing(tmp_path / "run")
    net = load_checkpoint(tmp_path / "run").net
    header, rows = predictions(net, preprocessing, read_features(tmp_path / "new.npz", preprocessing, 3))
    data = load_data({"data": {"file": str(classifier / "train.csv"), "target": "kind"}}, "run.toml", tmp_path)
    outputs = net.predict((x - data.feature_mean) / data.feature_std).astype(float)
    assert [row[0] for row in rows] == [["left", "middle", "right"][i] for i in outputs.argmax(axis=1)]
    if loss == "mse":
        assert header == ["prediction"] and all(len(row) == 1 for row in rows)
        return
    assert header == ["prediction", "p_left", "p_middle", "p_right"]
    np.testing.assert_allclose(np.array([row[1:] for row in rows]), 1 / (1 + np.exp(-outputs)), rtol=2e-6, atol=1e-7)


def test_a_gaussian_regressor_predicts_means_and_deviations_in_the_targets_units(tmp_path: Path) -> None:
    """The diabetes example's checkpoint on a .npz: μ·std + mean and exp(s/2)·std (001 §3.12), with the
    bundled data's target name; the same table from a checkpoint that predates the recorded preprocessing
    (rebuilt from its data source)."""
    assert main(["train", "--example", "diabetes-gaussian", "--epochs", "5", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(scaled=False).data[:9]
    np.savez(tmp_path / "patients.npz", x=raw)
    preprocessing = load_preprocessing(tmp_path / "run")
    net = load_checkpoint(tmp_path / "run").net
    header, rows = predictions(net, preprocessing, read_features(tmp_path / "patients.npz", preprocessing, 10))
    assert header == ["progression", "progression_sigma"]

    data = load_data({"data": {"dataset": "diabetes"}}, "run.toml", tmp_path)
    mu, s = net.predict((raw - data.feature_mean) / data.feature_std).astype(float).T
    table = np.array(rows)
    np.testing.assert_allclose(table[:, 0], mu * data.target_std[0] + data.target_mean[0], rtol=1e-6)
    np.testing.assert_allclose(table[:, 1], np.exp(s / 2) * data.target_std[0], rtol=1e-6)
    assert np.all(table[:, 1] > 0)

    meta_path = tmp_path / "run" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    del meta["preprocessing"]
    meta_path.write_text(json.dumps(meta))
    again = load_preprocessing(tmp_path / "run")
    assert predictions(net, again, read_features(tmp_path / "patients.npz", again, 10)) == (header, rows)


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", "id,a,c\n1,0.5,0.2\n", r"no column 'b'; the network was trained on the columns a, b, c"),
    ("text.csv", "a,b,c\n0.1,x,0.3\n", r"line 2, column 'b': 'x' is not a number"),
    ("nan.csv", "a,b,c\n0.1,nan,0.3\n", r"a non-finite value \(NaN or inf\) in row 0, column 1"),
    ("ragged.csv", "a,b,c\n0.1,0.2\n", r"line 2 has 2 values, the header has 3 columns"),
    ("data.txt", "a,b,c\n0.1,0.2,0.3\n", r"unknown format '\.txt'; use \.csv"),
])
def test_bad_new_data_gets_a_clear_error(classifier: Path, name: str, content: str, message: str) -> None:
    (classifier / name).write_text(content)
    preprocessing = load_preprocessing(classifier / "run")
    with pytest.raises(LayergenError, match=message):
        read_features(classifier / name, preprocessing, 3)


def test_bad_arrays_and_folders_get_a_clear_error(classifier: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    preprocessing = load_preprocessing(classifier / "run")
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 5)))
    with pytest.raises(LayergenError, match=r"wide.npz: the network takes 3 features per sample; got an array of "
                                            r"shape \(4, 5\)"):
        read_features(tmp_path / "wide.npz", preprocessing, 3)
    np.savez(tmp_path / "unnamed.npz", features=np.zeros((4, 3)))
    with pytest.raises(LayergenError,
                       match=r"no array x; it holds features, and a data file needs x \(samples × 3 features\)"):
        read_features(tmp_path / "unnamed.npz", preprocessing, 3)
    with pytest.raises(LayergenError, match="nowhere.csv does not exist"):
        read_features(tmp_path / "nowhere.csv", preprocessing, 3)
    assert main(["predict", str(tmp_path), str(classifier / "train.csv")]) == 2
    assert "no checkpoint.json in" in capsys.readouterr().err
    (tmp_path / "checkpoint.json").write_text(json.dumps({"kind": "flow", "architecture": {}, "config": {}}))
    assert main(["predict", str(tmp_path), str(classifier / "train.csv")]) == 2
    assert "incomplete, checkpoint.json has no step; train the flow again" in capsys.readouterr().err  # read as a flow's
