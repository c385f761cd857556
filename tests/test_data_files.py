"""Your own data for `layergen train`: .npz and .csv files through [data] file, and a clear error, naming
the file and the key, for each way such a file or its config can be wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from layergen.errors import LayergenError
from layergen.runtime.config import load_data
from layergen.runtime.data import diabetes
from layergen.runtime.network import Architecture, Network
from layergen.runtime.run_config import TrainConfig
from layergen.runtime.train import train


def write_csv(path: Path, header: list[str], rows: np.ndarray | list[list[object]]) -> Path:
    path.write_text("\n".join([",".join(header), *[",".join(map(str, row)) for row in rows]]) + "\n")
    return path


def diabetes_csv(folder: Path) -> Path:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return write_csv(folder / "diabetes.csv", [*bunch.feature_names, "progression"],
                     np.column_stack([bunch.data, bunch.target]).tolist())


def test_a_csv_file_gives_the_same_split_as_the_bundled_dataset(tmp_path: Path) -> None:
    """The CSV route (header, target column, shuffled split, standardisation) reproduces the bundled
    diabetes data array for array, and the dataset records how to rebuild it on resume."""
    diabetes_csv(tmp_path)
    mine = load_data({"data": {"file": "diabetes.csv", "target": "progression"}}, "run.toml", tmp_path)
    bundled = diabetes(0)
    assert mine.regression and mine.name == "diabetes.csv"
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(mine, split).x, getattr(bundled, split).x)
        np.testing.assert_array_equal(getattr(mine, split).y, getattr(bundled, split).y)
    assert mine.source == {"file": str((tmp_path / "diabetes.csv").resolve()), "target": "progression",
                           "task": "regression", "classes": None, "split_seed": 0}
    again = load_data({"data": mine.source}, "checkpoint", Path("/"))  # what a resume reads
    np.testing.assert_array_equal(again.test.y, mine.test.y)


def test_a_spreadsheets_csv_with_quotes_and_a_byte_order_mark_reads(tmp_path: Path) -> None:
    text = '"age","height, cm","label"\r\n' + "".join(f'{20 + i},"{150 + i}",{i % 2}\r\n' for i in range(20))
    (tmp_path / "sheet.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    data = load_data({"data": {"file": "sheet.csv", "target": "label", "task": "classification"}}, "run.toml", tmp_path)
    assert data.classes == 2 and data.features == 2 and len(data.train.y) + len(data.val.y) + len(data.test.y) == 20


def test_class_names_in_a_csv_make_a_classification(tmp_path: Path) -> None:
    rows = [[float(i), float(i % 3), ["setosa", "versicolor", "virginica"][i % 3]] for i in range(30)]
    write_csv(tmp_path / "iris.csv", ["a", "b", "species"], rows)
    data = load_data({"data": {"file": "iris.csv", "target": "species"}}, "run.toml", tmp_path)
    assert data.classes == 3 and not data.regression
    order = np.random.default_rng(0).permutation(30)  # the split's shuffle: labels follow their rows
    expected = np.array([i % 3 for i in range(30)])[order]
    got = np.concatenate([data.test.y, data.val.y, data.train.y])
    np.testing.assert_array_equal(got, expected)  # setosa 0, versicolor 1, virginica 2: sorted names
    with pytest.raises(LayergenError, match=r"iris.csv: the target column\(s\) hold text such as 'setosa'; a "
                                            r"regression needs numbers"):
        load_data({"data": {"file": "iris.csv", "target": "species", "task": "regression"}}, "run.toml", tmp_path)


def test_an_npz_of_integer_labels_is_a_classification_that_trains(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    labels = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0.5)
    np.savez(tmp_path / "blobs.npz", x=x, y=labels)
    data = load_data({"data": {"file": "blobs.npz"}}, "run.toml", tmp_path)
    assert data.classes == 4 and not data.regression and data.train.y.dtype == np.int64
    net = Network(Architecture(4, (16, 4)), np.float64, seed=0)
    train(net, data, TrainConfig(epochs=100, batch=32, lr=3e-3, progress=False))
    assert (net.predict(data.test.x).argmax(axis=1) == data.test.y).mean() > 0.9  # the largest class: 0.39
    as_regression = load_data({"data": {"file": "blobs.npz", "task": "regression"}}, "run.toml", tmp_path)
    assert as_regression.regression and as_regression.target_columns == 1


def test_the_cli_trains_on_a_csv_file_next_to_its_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layergen.cli import main

    diabetes_csv(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text('[data]\nfile = "diabetes.csv"\ntarget = "progression"\n[network]\nhidden = [8]\n'
                      '[train]\nepochs = 3\nbatch = 32\nout = "%s"\n' % (tmp_path / "out"))
    result = subprocess.run(["layergen", "train", str(config), "--quiet"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "diabetes.csv: 10 → 8 → 1 relu/mse/adam" in result.stdout and "test RMSE" in result.stdout
    # the data file changes, then the run is resumed: refused, since its split and statistics are no longer the run's
    lines = (tmp_path / "diabetes.csv").read_text().splitlines()
    lines[5] = ",".join(str(float(v) + 1.0) for v in lines[5].split(","))
    (tmp_path / "diabetes.csv").write_text("\n".join(lines) + "\n")
    assert main(["train", "--resume", str(tmp_path / "out"), "--epochs", "5", "--quiet"]) == 2
    assert (f"resume: the diabetes.csv data is not what the run in {tmp_path / 'out'} was trained on (its contents "
            "differ); resume with the same data, or start a new run") in capsys.readouterr().err


def bad_files(folder: Path) -> dict[str, Path]:
    np.savez(folder / "no_y.npz", x=np.zeros((20, 2)))
    np.savez(folder / "labels.npz", x=np.zeros((20, 2)), y=np.arange(20) % 3)
    np.savez(folder / "halves.npz", x=np.zeros((20, 2)), y=np.full(20, 0.5))
    np.savez(folder / "tiny.npz", x=np.zeros((3, 2)), y=np.arange(3))
    np.savez(folder / "nan.npz", x=np.where(np.eye(20, 2) > 0, np.nan, 0.0), y=np.arange(20) % 2)
    (folder / "data.txt").write_text("1 2 3\n")
    (folder / "broken.npz").write_text("not a zip")
    write_csv(folder / "word.csv", ["a", "b"], [[1, 2], [3, "tall"]])
    write_csv(folder / "ragged.csv", ["a", "b"], [[1, 2], [3]])
    write_csv(folder / "ok.csv", ["a", "b"], [[i, i % 2] for i in range(20)])
    return {}


@pytest.mark.parametrize("section, message", [
    ({"file": "missing.npz"}, r"run.toml: \[data\] file: .*missing.npz does not exist; give a data file: .npz \(arrays x"),
    ({"file": "data.txt"}, r"\[data\] file: data.txt: unknown format '.txt'; use .npz \(arrays x and y\) or .csv"),
    ({"file": "broken.npz"}, r"broken.npz: cannot read it as .npz"),
    ({"file": "no_y.npz"}, r"no_y.npz: no array y; it holds x, and a data file needs x \(samples × features\) and y"),
    ({"file": "halves.npz", "task": "classification"}, r"a classification needs one column of class labels 0, 1, 2"),
    ({"file": "labels.npz", "task": "ranking"}, r"\[data\] task: unknown 'ranking'; valid: classification, regression"),
    ({"file": "labels.npz", "classes": 2}, r"\[data\] classes: 2 is too few for the labels in .*labels.npz \(up to 2\); "
                                           r"give an integer ≥ 3"),
    ({"file": "labels.npz", "target": "y"}, r"\[data\] target: applies to a .csv file; labels.npz holds its targets in y"),
    ({"file": "tiny.npz"}, r"tiny.npz: 3 samples are too few to hold out 20% for testing and 10% of the rest"),
    ({"file": "nan.npz"}, r"nan.npz: x holds a non-finite value \(NaN or inf\) at row 0, column 0"),
    ({"file": "ok.csv"}, r"ok.csv: \[data\] target: name the target column \(or a list of them\); the columns are a, b"),
    ({"file": "ok.csv", "target": "c"}, r"\[data\] target: no column 'c' in .*ok.csv; its columns are a, b"),
    ({"file": "word.csv", "target": "a"}, r"word.csv: line 3, column 'b': 'tall' is not a number"),
    ({"file": "ragged.csv", "target": "b"}, r"ragged.csv: line 3 has 1 values, the header has 2 columns"),
    ({"file": "ok.csv", "dataset": "digits"}, r"\[data\] give either dataset \(a bundled one\) or file \(your own\)"),
    ({"target": "b"}, r"\[data\] target applies to a data file; add file = "),
    ({"target": "b", "task": "regression"}, r"\[data\] target, task apply to a data file; add file = "),
    ({"dataset": "mnist"}, r"\[data\] unknown dataset 'mnist'; valid: digits, diabetes, or your own data with file"),
    ({"split_seed": "one"}, r"\[data\] split_seed must be an integer ≥ 0, got 'one'"),
    ({"split_seed": -1}, r"\[data\] split_seed must be an integer ≥ 0, got -1"),
    ("digits", r"run.toml: data must be a section, \[data\] with its keys below it; got data = 'digits'"),
])
def test_a_bad_data_file_or_section_gets_a_clear_error(tmp_path: Path, section: dict | str, message: str) -> None:
    bad_files(tmp_path)
    with pytest.raises(LayergenError, match=message):
        load_data({"data": section}, "run.toml", tmp_path)


def test_a_batch_larger_than_the_training_split_is_refused(tmp_path: Path) -> None:
    write_csv(tmp_path / "ok.csv", ["a", "b"], [[i, i % 2] for i in range(20)])
    data = load_data({"data": {"file": "ok.csv", "target": "b"}}, "run.toml", tmp_path)
    with pytest.raises(LayergenError, match=r"batch: 128 is more than the 14 training samples of ok.csv; use batch ≤ 14"):
        train(Network(Architecture(1, (4, 1), loss="mse"), np.float64), data, TrainConfig(epochs=1, progress=False))
