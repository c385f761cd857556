"""A flow trained from a config: `layergen train flow.toml` on your own samples (.csv or .npz), checked
against the exact density of the Gaussian that drew them; and every bad config refused with its key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from layergen.cli import main
from layergen.errors import LayergenError
from layergen.runtime.config import load_toml
from layergen.runtime.flow import Flow
from layergen.runtime.flow_config import parse_flow
from layergen.runtime.flow_files import file_data
from layergen.runtime.flow_checkpoint import load_flow
from layergen.runtime.flow_train import mean_nll

MEAN = np.array([5.0, -3.0])
FACTOR = np.array([[2.0, 0.0], [1.2, 0.5]])  # Σ = F Fᵀ: correlated, with scales 2 and 1.3
COVARIANCE = FACTOR @ FACTOR.T

# the architecture test_flow_data.py trains (float64): a second process loads it from the kernel cache
FLOW = "[flow]\ncouplings = 2\nhidden = 4\n"


def gaussian_points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2)) @ FACTOR.T + MEAN


def write(folder: Path, text: str, name: str = "flow.toml") -> Path:
    (folder / name).write_text(text)
    return folder / name


def parsed(folder: Path, text: str):  # type: ignore[no-untyped-def]
    path = write(folder, text)
    return parse_flow(load_toml(path), str(path), folder)


@pytest.fixture()
def points_csv(tmp_path: Path) -> Path:
    """3000 draws of N(MEAN, COVARIANCE) with a text column the config leaves out."""
    x = gaussian_points(3000)
    rows = [f"p{i},{a:.9f},{b:.9f}" for i, (a, b) in enumerate(x)]
    (tmp_path / "points.csv").write_text("id,height,weight\n" + "\n".join(rows) + "\n")
    return tmp_path / "points.csv"


def test_a_config_trains_a_flow_on_your_csv_to_the_density_that_drew_it(
        points_csv: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported test log-likelihood (data units) is within 0.05 nats of the generator's exact density
    on the same test points; the checkpoint holds the reported flow; `layergen predict` gives the test points
    log-densities whose mean is the reported figure; its samples, mapped back to data units by `layergen
    sample`, have the data's mean and covariance."""
    monkeypatch.chdir(points_csv.parent)  # [train] out, as a network's, is relative to the working folder
    config = write(points_csv.parent, FLOW + '[data]\nfile = "points.csv"\ncolumns = ["height", "weight"]\n'
                                              '[train]\nsteps = 1500\nout = "run"\n')
    assert main(["train", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    reported = float(re.search(r"; (-?\d+\.\d+) in the data's units", out).group(1))  # type: ignore[union-attr]
    assert "full-covariance Gaussian fitted to the training split" in out
    assert "checkpoint, density.png, samples.png and curves.png in run" in out
    assert all((points_csv.parent / "run" / f"{name}.png").stat().st_size > 5_000 for name in ("density", "samples", "curves"))
    data = file_data(points_csv, ["height", "weight"], False, 0)
    exact = multivariate_normal(MEAN, COVARIANCE).logpdf(data.test * data.std + data.mean).mean()
    assert abs(reported - exact) < 0.05, (reported, exact)
    flow, meta = load_flow(points_csv.parent / "run")
    assert meta["config"]["file"] == str(points_csv) and meta["config"]["dataset"] == ""
    assert -mean_nll(flow, data.test) - data.log_jacobian == pytest.approx(reported, abs=1e-4)
    test_points = data.test * data.std + data.mean  # `layergen predict`: the log-density of each, columns by name
    table = "weight,note,height\n" + "".join(f"{b!r},x,{a!r}\n" for a, b in test_points.tolist())
    (points_csv.parent / "new.csv").write_text(table)
    assert main(["predict", "run", "new.csv", "--out", "densities.csv"]) == 0
    densities = np.loadtxt(points_csv.parent / "densities.csv", delimiter=",", skiprows=1)
    assert densities.shape == (len(test_points),) and densities.mean() == pytest.approx(reported, abs=1e-4)
    assert np.corrcoef(densities, multivariate_normal(MEAN, COVARIANCE).logpdf(test_points))[0, 1] > 0.99
    (points_csv.parent / "other.csv").write_text("height,age\n1,2\n")
    assert main(["predict", "run", "other.csv"]) == 2
    assert "no column 'weight'; the flow was trained on the columns height, weight" in capsys.readouterr().err
    samples = points_csv.parent / "samples.npy"
    assert main(["sample", str(points_csv.parent / "run"), "-n", "20000", "--out", str(samples)]) == 0
    drawn = np.load(samples)
    assert np.allclose(drawn.mean(axis=0), MEAN, atol=0.1)
    assert np.allclose(np.cov(drawn, rowvar=False), COVARIANCE, rtol=0.1, atol=0.1)
    assert main(["sample", str(points_csv.parent / "run"), "-n", "3", "--out", "samples.csv"]) == 0
    assert (points_csv.parent / "samples.csv").read_text().splitlines()[0] == "height,weight"
    for argv, message in ((["--seed", "-1"], "argument --seed: must be an integer ≥ 0, got -1"),
                          (["--out", "samples.txt"], "argument --out: samples.txt: write the samples to a .npy file")):
        assert main(["sample", "run", *argv]) == 2
        assert message in capsys.readouterr().err


def test_npz_columns_dequantisation_and_split_seed(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=gaussian_points(600))
    arch, config, data = parsed(tmp_path, FLOW + 'transform = "maf"\nactivation = "leaky_relu alpha=0.2"\n'
                                                 '[data]\nfile = "x.npz"\n[train]\nsteps = 10\n')
    assert (arch.dim, arch.transform, arch.activation_hypers()) == (2, "maf", {"alpha": 0.2})
    assert (len(data.train), len(data.val), len(data.test)) == (400, 100, 100)
    assert np.allclose(data.train.mean(axis=0), 0) and np.allclose(data.train.std(axis=0), 1)
    assert config.out == "runs/x" and data.bin_width is None
    counts = np.random.default_rng(1).poisson(3.0, size=(600, 3))
    np.savez(tmp_path / "counts.npz", x=counts)
    _, _, data = parsed(tmp_path, FLOW + '[data]\nfile = "counts.npz"\ndequantise = true\n')
    assert data.bin_width is not None and np.allclose(data.bin_width, 1 / data.std)
    corners = data.train * data.std + data.mean  # training keeps the bins' lower corners: the counts themselves
    assert np.allclose(corners, np.round(corners)) and set(np.unique(np.round(corners))) <= set(np.unique(counts))
    _, _, moons = parsed(tmp_path, FLOW + '[data]\ndataset = "two-moons"\n')
    _, _, other = parsed(tmp_path, FLOW + '[data]\ndataset = "two-moons"\nsplit_seed = 4\n')
    assert moons.name == "two-moons" and not np.array_equal(moons.train[:5], other.train[:5])


BAD_CONFIGS = [
    (FLOW + "dim = 3\n", r"unknown key\(s\) dim in \[flow\]; valid: .*activation"),
    (FLOW + '[network]\nhidden = [3]\n', r"\[network\] and \[flow\] are two kinds of run"),
    (FLOW + 'transform = "glow"\n', r"\[flow\] unknown transform 'glow'; valid: realnvp, nice, maf, sos"),
    (FLOW + 'bound = "big"\n', r"\[flow\] bound must be a finite number > 0, got 'big'"),
    (FLOW + "activation = 3\n", r"\[flow\] activation must be an activation's name"),
    (FLOW + 'activation = "leaky_relu alpha=-1"\n', r"\[flow\] .*alpha=-1.0 is outside the domain"),
    (FLOW + "[train]\nepochs = 3\n", r"unknown key\(s\) epochs in \[train\]; valid: .*steps"),
    (FLOW + "[train]\nsteps = 0\n", r"\[train\] steps: must be a positive integer, got 0"),
    (FLOW + '[train]\nlr = "fast"\n', r"\[train\] lr must be a finite number > 0, got 'fast'"),
    (FLOW + "[data]\nsplit_seed = -1\n", r"\[data\] split_seed: must be an integer ≥ 0, got -1"),
    (FLOW + '[data]\ndataset = "mnist"\n', r"\[data\] dataset 'mnist' is unknown; valid: two-moons"),
    (FLOW + '[data]\ndataset = "rings"\nfile = "p.csv"\n', r"\[data\] give either dataset .* or file"),
    (FLOW + '[data]\ncolumns = ["a"]\n', r"\[data\] columns applies to a data file"),
    (FLOW + '[data]\nfile = "nowhere.csv"\n', r"\[data\] file: .*nowhere.csv does not exist; give a data file"),
    (FLOW + '[data]\nfile = "p.csv"\ncolumns = ["height", "age"]\n',
     r"\[data\] columns: no column 'age' in .*p.csv; its columns are id, height, weight"),
    (FLOW + '[data]\nfile = "p.csv"\ncolumns = "height"\n', r"\[data\] columns must be a list"),
    (FLOW + '[data]\nfile = "p.csv"\n', r"p.csv: line 2, column 'id': 'p0' is not a number"),
    (FLOW + '[data]\nfile = "p.csv"\ncolumns = ["height"]\n', r"a flow models a density of ≥ 2 dimensions"),
    (FLOW + '[data]\nfile = "p.csv"\ncolumns = ["height", "weight"]\ndequantise = true\n',
     r"\[data\] dequantise: column 'height' of .*p.csv holds 1.5"),
    (FLOW + '[data]\nfile = "flat.csv"\n', r"flat.csv: column 'b' holds one value only; .* dequantise = true"),
    (FLOW + '[data]\nfile = "nan.csv"\n', r"nan.csv: 1 non-finite value\(s\), first in row 3"),
    (FLOW + '[data]\nfile = "few.csv"\n', r"few.csv: 5 sample\(s\); a flow needs at least 6"),
    (FLOW + '[data]\nfile = "bad.npz"\n', r"bad.npz: no array x; it holds y"),
    (FLOW + '[data]\nfile = "p.txt"\n', r"\[data\] file: p.txt: unknown format '.txt'"),
]


@pytest.mark.parametrize("text,message", BAD_CONFIGS)
def test_a_bad_flow_config_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.csv").write_text("id,height,weight\n" + "".join(f"p{i},{1.5 + i},{i % 3}\n" for i in range(9)))
    (tmp_path / "p.txt").write_text("1,2\n")
    (tmp_path / "flat.csv").write_text("a,b\n" + "".join(f"{i},7\n" for i in range(9)))
    (tmp_path / "nan.csv").write_text("a,b\n" + "".join(f"{i},{'nan' if i == 3 else i * i}\n" for i in range(9)))
    (tmp_path / "few.csv").write_text("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(5)))
    np.savez(tmp_path / "bad.npz", y=np.zeros(3))
    with pytest.raises(LayergenError, match=rf"flow.toml: .*{message}"):
        parsed(tmp_path, text)


def test_the_command_line_refuses_what_does_not_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, FLOW)
    for argv, message in (([str(config), "--epochs", "3"], "argument --epochs: a flow trains for a number of steps"),
                          ([str(config), "--example", "rings"], "give a CONFIG.toml or --example NAME, not both"),
                          ([str(config), "--steps", "0"], "argument --steps: must be a positive integer"),
                          (["--example", "digits-mlp", "--steps", "5"], "argument --steps: sets a flow's training "
                                                                        "steps; a network trains for")):
        assert main(["train", *argv]) == 2
        assert message in capsys.readouterr().err


def test_a_flow_run_stopped_and_resumed_ends_bit_for_bit_where_the_whole_run_ends(
        points_csv: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after 329 steps keeps the state of the best evaluation so far; `--resume` repeats the steps
    after it with the same minibatches and ends with the parameters, Adam's moments and the history of the
    run that was never stopped. A changed data file, or too few --steps, is refused."""
    monkeypatch.chdir(points_csv.parent)
    config = write(points_csv.parent, FLOW + '[data]\nfile = "points.csv"\ncolumns = ["height", "weight"]\n'
                                              '[train]\nsteps = 600\nbatch = 128\neval_every = 50\nlr = 5e-3\n')
    assert main(["train", str(config), "--quiet", "--out", "whole"]) == 0
    real_step, calls = Flow.step, []

    def stopped_at_the_330th_call(self: Flow, x: np.ndarray) -> float:  # the first is the warm-up's
        calls.append(1)
        if len(calls) == 330:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(Flow, "step", stopped_at_the_330th_call)
    assert main(["train", str(config), "--quiet", "--out", "parts"]) == 130
    held = json.loads(Path("parts/checkpoint.json").read_text())["step"]
    assert 0 < held <= 300 and held % 50 == 0
    assert (f"the checkpoint in parts holds the best flow so far (step {held}); continue with layergen train "
            "--resume parts") in capsys.readouterr().err
    monkeypatch.setattr(Flow, "step", real_step)
    assert main(["train", "--resume", "parts", "--quiet"]) == 0
    with np.load("whole/checkpoint.npz") as whole, np.load("parts/checkpoint.npz") as parts:
        for key in ("theta", "const", "adam_m", "adam_v"):
            assert np.array_equal(whole[key], parts[key]), key
    histories = [json.loads(Path(f"{run}/checkpoint.json").read_text())["history"] for run in ("whole", "parts")]
    assert histories[0] == histories[1] and len(histories[0]["val_nll"]) == 12
    capsys.readouterr()
    assert main(["train", "--resume", "parts", "--steps", "100"]) == 2
    assert "argument --steps: the checkpoint in parts holds step" in capsys.readouterr().err
    (points_csv.parent / "broken").mkdir()
    (points_csv.parent / "broken" / "checkpoint.json").write_text("{\"kind\": ")
    assert main(["train", "--resume", "broken"]) == 2
    assert "broken/checkpoint.json: not valid JSON" in capsys.readouterr().err
    points_csv.write_text(points_csv.read_text().replace("p0,", "p0,1", 1))
    assert main(["train", "--resume", "parts"]) == 2
    assert "the data of the run in parts have changed since its checkpoint was written" in capsys.readouterr().err
