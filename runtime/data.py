"""Datasets for supervised training: validation with clear errors, splits, standardisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layergen.errors import LayergenError


@dataclass
class Split:
    x: np.ndarray
    labels: np.ndarray


@dataclass
class Dataset:
    """Train/validation/test splits of a classification problem with ``classes`` classes."""

    train: Split
    val: Split
    test: Split
    classes: int
    name: str
    #: how to rebuild this dataset (written into checkpoints, read on resume)
    source: dict = field(default_factory=dict)

    @property
    def features(self) -> int:
        return self.train.x.shape[1]


def check_arrays(x: np.ndarray, labels: np.ndarray, classes: int, where: str, features: int | None = None) -> None:
    """Bad data gets one clear error naming the field and what would be valid."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise LayergenError(f"{where}: x must be a non-empty 2-D array (samples × features), got shape {x.shape}")
    if features is not None and x.shape[1] != features:
        raise LayergenError(f"{where}: x has {x.shape[1]} features, the network expects {features}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise LayergenError(f"{where}: x holds a non-finite value (NaN or inf) at row {bad[0]}, column {bad[1]}")
    if labels.shape != (x.shape[0],):
        raise LayergenError(f"{where}: labels must have one entry per sample ({x.shape[0]}), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes or not np.all(labels == labels.astype(int))):
        raise LayergenError(f"{where}: labels must be integers in [0, {classes - 1}], got values in "
                            f"[{labels.min()}, {labels.max()}]")


def split(x: np.ndarray, labels: np.ndarray, classes: int, name: str, seed: int, test: float = 0.2,
          val: float = 0.1) -> Dataset:
    """Shuffle with ``seed``, hold out ``test`` then ``val`` of the rest, standardise with the
    training statistics only."""
    check_arrays(x, labels, classes, name)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    x, labels = x[order], labels[order].astype(np.int64)
    n_test = int(round(test * len(x)))
    n_val = int(round(val * (len(x) - n_test)))
    parts = np.split(np.arange(len(x)), [n_test, n_test + n_val])
    tr = parts[2]
    mean = x[tr].mean(axis=0)
    std = x[tr].std(axis=0)
    std[std == 0] = 1.0  # constant pixels stay 0 after centring
    scaled = (x - mean) / std
    return Dataset(Split(scaled[tr], labels[tr]), Split(scaled[parts[1]], labels[parts[1]]),
                   Split(scaled[parts[0]], labels[parts[0]]), classes, name)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 samples, 64 features, 10 classes); fixed split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = split(bunch.data.astype(np.float64), bunch.target, 10, "digits", seed)
    data.source = {"dataset": "digits", "split_seed": seed}
    return data
