"""Datasets for supervised training: validation with clear errors, splits, standardisation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError


@dataclass
class Split:
    x: np.ndarray
    #: classification: class indices, shape (n,); regression: the standardised targets, shape (n, k)
    y: np.ndarray


@dataclass
class Dataset:
    """Train/validation/test splits: of a classification problem with ``classes`` classes, or, with
    ``classes`` 0, of a regression problem whose targets are standardised by ``target_mean`` and
    ``target_std`` (the training split's)."""

    train: Split
    val: Split
    test: Split
    classes: int
    name: str
    #: how to rebuild this dataset (written into checkpoints, read on resume)
    source: dict = field(default_factory=dict)
    target_mean: np.ndarray | None = None
    target_std: np.ndarray | None = None
    #: the training split's feature statistics, which standardised every split
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    #: the columns' names where the data has them (a .csv's header, a bundled set's), and the class names
    #: of a .csv's text labels (label i is the i-th name in sorted order)
    feature_names: list[str] | None = None
    target_names: list[str] | None = None
    class_names: list[str] | None = None
    _fingerprint: str = field(default="", repr=False, compare=False)

    @property
    def features(self) -> int:
        return self.train.x.shape[1]

    @property
    def regression(self) -> bool:
        return self.classes == 0

    @property
    def target_columns(self) -> int:
        """Columns of the training target: one per class (one-hot) or one per regression target."""
        return self.train.y.shape[1] if self.regression else self.classes

    def fingerprint(self) -> str:
        """SHA-256 of every split's samples and targets, as they are trained and evaluated on: a checkpoint
        records it, so a resumed run can tell that its data file has changed. Computed once (every
        checkpoint of a run records it)."""
        if not self._fingerprint:
            digest = hashlib.sha256()
            for part in (self.train, self.val, self.test):
                for array in (part.x, part.y):
                    digest.update(str((array.dtype.str, array.shape)).encode())
                    digest.update(np.ascontiguousarray(array).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def preprocessing(self) -> dict:
        """What ``layergen predict`` needs to treat new data as the training data was treated, as JSON: the
        standardisation statistics and the column and class names (``runtime/predict.py``)."""
        def listed(values: np.ndarray | None) -> list[float] | None:
            return None if values is None else [float(v) for v in values]

        return {"feature_mean": listed(self.feature_mean), "feature_std": listed(self.feature_std),
                "target_mean": listed(self.target_mean), "target_std": listed(self.target_std),
                "feature_names": self.feature_names, "target_names": self.target_names,
                "class_names": self.class_names, "classes": self.classes}


def check_arrays(x: np.ndarray, y: np.ndarray, classes: int, where: str, features: int | None = None) -> None:
    """Bad data gets one clear error naming the field and what would be valid; ``classes`` 0 means
    regression targets, one row of floats per sample."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise LayergenError(f"{where}: x must be a non-empty 2-D array (samples × features), got shape {x.shape}")
    if features is not None and x.shape[1] != features:
        raise LayergenError(f"{where}: x has {x.shape[1]} features, the network expects {features}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise LayergenError(f"{where}: x holds a non-finite value (NaN or inf) at row {bad[0]}, column {bad[1]}")
    if classes == 0:
        if y.ndim != 2 or y.shape[0] != x.shape[0] or y.shape[1] == 0:
            raise LayergenError(f"{where}: regression targets must have shape ({x.shape[0]}, k), one row per "
                                f"sample, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            bad = np.argwhere(~np.isfinite(y))[0]
            raise LayergenError(f"{where}: the targets hold a non-finite value (NaN or inf) at row {bad[0]}, "
                                f"column {bad[1]}")
        return
    if y.shape != (x.shape[0],):
        raise LayergenError(f"{where}: labels must have one entry per sample ({x.shape[0]}), got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= classes or not np.all(y == y.astype(int))):
        raise LayergenError(f"{where}: labels must be integers in [0, {classes - 1}], got values in "
                            f"[{y.min()}, {y.max()}]")


def _standardise(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values − mean) / std with the statistics of ``rows``; a constant column keeps std 1."""
    mean = values[rows].mean(axis=0)
    std = values[rows].std(axis=0)
    std[std == 0] = 1.0  # constant columns stay 0 after centring
    return (values - mean) / std, mean, std


def split(x: np.ndarray, y: np.ndarray, classes: int, name: str, seed: int, test: float = 0.2,
          val: float = 0.1) -> Dataset:
    """Shuffle with ``seed``, hold out ``test`` then ``val`` of the rest, standardise the features (and
    regression targets, ``classes`` 0) with the training split's statistics only."""
    check_arrays(x, y, classes, name)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    x, y = x[order], (y[order].astype(np.float64) if classes == 0 else y[order].astype(np.int64))
    n_test = int(round(test * len(x)))
    n_val = int(round(val * (len(x) - n_test)))
    if min(n_test, n_val, len(x) - n_test - n_val) < 1:
        raise LayergenError(f"{name}: {len(x)} samples are too few to hold out {test:.0%} for testing and "
                            f"{val:.0%} of the rest for validation with at least one sample in each split")
    parts = np.split(np.arange(len(x)), [n_test, n_test + n_val])
    tr = parts[2]
    scaled, feature_mean, feature_std = _standardise(x, tr)
    target_mean = target_std = None
    if classes == 0:
        y, target_mean, target_std = _standardise(y, tr)
    return Dataset(Split(scaled[tr], y[tr]), Split(scaled[parts[1]], y[parts[1]]), Split(scaled[parts[0]], y[parts[0]]),
                   classes, name, target_mean=target_mean, target_std=target_std, feature_mean=feature_mean,
                   feature_std=feature_std)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 samples, 64 features, 10 classes); fixed split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = split(bunch.data.astype(np.float64), bunch.target, 10, "digits", seed)
    data.source = {"dataset": "digits", "split_seed": seed}
    data.feature_names = list(bunch.feature_names)
    return data


def diabetes(seed: int = 0) -> Dataset:
    """scikit-learn's bundled diabetes regression data (442 patients, 10 features: age, sex, body-mass
    index, blood pressure, six serum measurements; the target is a measure of disease progression one
    year later, 25–346); fixed split, features and target standardised."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    data = split(bunch.data.astype(np.float64), bunch.target.reshape(-1, 1), 0, "diabetes", seed)
    data.source = {"dataset": "diabetes", "split_seed": seed}
    data.feature_names, data.target_names = list(bunch.feature_names), ["progression"]
    return data


def from_file(path: Path, target: str | list[str] | None = None, task: str | None = None, classes: int | None = None,
              seed: int = 0) -> Dataset:
    """Your own data (``runtime/data_files.py``: .npz or .csv), split and standardised like the bundled sets."""
    from layergen.runtime.data_files import read_data_file

    file = read_data_file(path, target, task, classes)
    data = split(file.x, file.y, file.classes, str(path), seed)  # its errors name the whole path; the output, the file
    data.name = path.name
    data.feature_names, data.target_names, data.class_names = file.feature_names, file.target_names, file.class_names
    found = file.classes
    data.source = {"file": str(path.resolve()), "target": target,
                   "task": "regression" if found == 0 else "classification", "classes": found or None,
                   "split_seed": seed}
    return data


#: the bundled datasets (no downloads), by the name a config's [data] dataset uses
DATASETS: dict[str, Callable[[int], Dataset]] = {"digits": digits, "diabetes": diabetes}
