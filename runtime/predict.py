"""Predictions of a trained network on new data: ``layergen predict CHECKPOINT DATA``.

New samples are prepared as the training samples were: the features picked from a .csv by the training
data's column names (or a .npz's ``x``, column by column), then standardised with the training split's
statistics, both read from the checkpoint (``Dataset.preprocessing``). The network's outputs become

- for a classifier: the predicted class (its name, for a .csv's text labels) and the class probabilities,
  from the generated ``softmax`` kernel for the softmax cross-entropy, or the generated ``sigmoid`` kernel
  for the BCE on logits (each output its own probability); none for a classifier trained with another loss;
- for a regressor: each target's predicted value in its own units (the standardisation undone); with the
  Gaussian NLL also its predicted standard deviation σ = exp(s/2) (001 §3.12), in the same units."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TextIO

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.data_files import float_columns, read_npz, read_table
from layergen.runtime.evaluate import gaussian_mean_and_sigma
from layergen.runtime.modules import load_builtin
from layergen.runtime.network import Network

#: the loss whose two predictions, a mean and a log-variance, predict prints as means and standard deviations
GAUSSIAN = "gaussian_nll"

#: the generated kernel that turns a classifier's outputs into probabilities, by its loss
PROBABILITIES = {"softmax_cross_entropy": "softmax", "bce_logits": "sigmoid"}


def load_preprocessing(folder: Path) -> dict:
    """How the checkpoint's training data was prepared. A checkpoint written before it recorded this holds
    how to rebuild the data instead; the data is then read again for its statistics."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    if meta.get("kind") in ("flow", "iaf"):
        raise LayergenError(f"predict: {folder} holds a flow's checkpoint, not a network's; flow_log_densities "
                            "reads it")
    if meta.get("preprocessing"):
        return meta["preprocessing"]
    from layergen.runtime.config import load_data

    source = meta.get("data") or {"dataset": "digits", "split_seed": 0}
    return load_data({"data": source}, str(folder / "checkpoint.json"), folder).preprocessing()


def read_features(path: Path, preprocessing: dict, inputs: int, model: str = "network") -> np.ndarray:
    """The samples' features in the training data's column order: from a .csv by the training columns' names
    (other columns, such as the target, are ignored), or all of its columns when the training data had no
    names; from a .npz, its array ``x``. ``model`` names what was trained, in the errors."""
    if not path.is_file():
        raise LayergenError(f"predict: {path} does not exist; give a .csv file (a header row) or a .npz file "
                            "(an array x)")
    if path.suffix == ".npz":
        x, = read_npz(path, {"x": f"samples × {inputs} features"})
        if not np.issubdtype(x.dtype, np.number):
            raise LayergenError(f"{path}: x must be a numeric array, got {x.dtype}")
        x = x.astype(np.float64)
    elif path.suffix == ".csv":
        header, rows = read_table(path)
        names = preprocessing.get("feature_names")
        if names:
            missing = [name for name in names if name not in header]
            if missing:
                raise LayergenError(f"{path}: no column {', '.join(map(repr, missing[:5]))}"
                                    f"{' and more' if len(missing) > 5 else ''}; the {model} was trained on the "
                                    f"columns {', '.join(names)}")
            columns = [header.index(name) for name in names]
        else:
            columns = list(range(len(header)))
        x = float_columns(path, header, rows, columns)
    else:
        raise LayergenError(f"predict: {path.name}: unknown format {path.suffix!r}; use .csv (a header row) or .npz "
                            "(an array x)")
    if x.ndim != 2 or x.shape[1] != inputs or x.shape[0] == 0:
        raise LayergenError(f"{path}: the {model} takes {inputs} features per sample; got an array of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        row, column = np.argwhere(~np.isfinite(x))[0]
        raise LayergenError(f"{path}: a non-finite value (NaN or inf) in row {row}, column {column}")
    return x


def predictions(net: Network, preprocessing: dict, x: np.ndarray) -> tuple[list[str], list[list[object]]]:
    """The header and rows of the prediction table for the raw features ``x``."""
    standardised = (x - np.array(preprocessing["feature_mean"])) / np.array(preprocessing["feature_std"])
    outputs = net.predict(standardised).astype(np.float64)
    classes = preprocessing["classes"]
    if classes:
        names = preprocessing.get("class_names") or []
        names = [names[i] if i < len(names) else str(i) for i in range(classes)]
        labels = [names[i] for i in outputs.argmax(axis=1)]
        if net.arch.loss_name not in PROBABILITIES:
            return ["prediction"], [[label] for label in labels]
        probabilities = load_builtin(PROBABILITIES[net.arch.loss_name]).forward(outputs, np.empty_like(outputs))
        return (["prediction", *[f"p_{name}" for name in names]],
                [[label, *row] for label, row in zip(labels, probabilities.tolist())])
    mean, std = np.array(preprocessing["target_mean"]), np.array(preprocessing["target_std"])
    names = preprocessing.get("target_names") or [f"y{i}" for i in range(len(mean))]
    if net.arch.loss_name == GAUSSIAN:
        mu, sigma = gaussian_mean_and_sigma(net, outputs)  # in the targets' units: the standardisation undone
        return [*names, *[f"{name}_sigma" for name in names]], np.hstack([mu * std + mean, sigma * std]).tolist()
    # the loss's first prediction is the point estimate, in the targets' units; the others (a loss of your own
    # reading several, such as a scale) as the network outputs them, in the standardised targets' units
    (start, stop), *others = net.arch.prediction_columns()
    header = [*names, *[f"{name}_{extra}" for extra in net.arch.predictions()[1:] for name in names]]
    return header, np.hstack([outputs[:, start:stop] * std + mean, *[outputs[:, a:b] for a, b in others]]).tolist()


def write_table(handle: TextIO, header: list[str], rows: list[list[object]]) -> None:
    """The table as .csv, numbers to 7 significant digits (a float32 network's precision)."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{v:.7g}" if isinstance(v, float) else v for v in row] for row in rows])


def flow_log_densities(folder: Path, path: Path) -> tuple[list[str], list[list[object]]]:
    """A trained flow's log-density of each sample of a data file, in the data's units (nats): the samples
    standardised as the training data were, then log p(x) = log p_model((x − mean)/std) − Σ log std. A .csv
    is read by the training file's column names when it was a .csv, else column by column. (For a flow of
    dequantised data this is the density of the continuous values: give the points inside their bins.)"""
    from layergen.runtime.flow_checkpoint import load_flow

    flow, meta = load_flow(folder)
    trained_on = meta["config"].get("file", "")
    names = meta["data"].get("names") if trained_on.endswith(".csv") else None
    x = read_features(path, {"feature_names": names}, flow.arch.dim, model="flow")
    mean, std = np.array(meta["data"]["mean"]), np.array(meta["data"]["std"])
    log_density = flow.log_prob((x - mean) / std) - float(np.log(std).sum())
    return ["log_density"], [[value] for value in log_density.astype(np.float64).tolist()]
