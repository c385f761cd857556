"""Evaluating a trained network on held-out data with the generated loss kernel: the loss, and
accuracy (classification) or RMSE (regression); the coverage of a Gaussian regressor's intervals."""

from __future__ import annotations

import numpy as np

from layergen.runtime.network import Network


def one_hot(labels: np.ndarray, classes: int, dtype: type) -> np.ndarray:
    return np.eye(classes, dtype=dtype)[labels]


def training_targets(y: np.ndarray, classes: int, dtype: type) -> np.ndarray:
    """What the loss compares the network's output with: one-hot rows of the labels (classification),
    or the standardised targets themselves (regression, ``classes`` 0)."""
    return one_hot(y, classes, dtype) if classes else np.ascontiguousarray(y, dtype=dtype)


def loss_value(net: Network, predictions: np.ndarray, targets: np.ndarray) -> float:
    """The generated loss kernel on a batch of predictions, each of its prediction arguments the output
    columns ``Architecture.prediction_columns`` gives (the Gaussian NLL: μ, then s)."""
    kernel = net.arch.kernel(net.arch.loss_name).loss  # a built-in loss or the user's own, with its settings
    return float(kernel(*[predictions[:, a:b] for a, b in net.arch.prediction_columns()], targets,
                        *net.arch.loss_hypers().values()))


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, classes: int,
             target_std: np.ndarray | None = None) -> tuple[float, float]:
    """(loss, accuracy) of a classifier; (loss, RMSE) of a regressor (``classes`` 0), the RMSE of the
    predicted means in the targets' units (the standardised targets times ``target_std``)."""
    predictions = net.predict(x)
    loss = loss_value(net, predictions, training_targets(y, classes, net.dtype))
    if classes:
        return loss, float((predictions.argmax(axis=1) == y).mean())
    start, stop = net.arch.prediction_columns()[0]  # the means
    error = (predictions[:, start:stop] - y) * (1.0 if target_std is None else target_std)
    return loss, float(np.sqrt(np.mean(error**2)))


def gaussian_mean_and_sigma(net: Network, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian NLL regressor's predicted means μ and standard deviations σ = exp(s/2) (001 §3.12), from
    its output columns [μ | s]; in the standardised targets' units."""
    (mean, log_variance) = [predictions[:, a:b].astype(np.float64) for a, b in net.arch.prediction_columns()]
    return mean, np.exp(log_variance / 2)


def gaussian_coverage(net: Network, x: np.ndarray, y: np.ndarray, z: float = 1.959964) -> float:
    """The fraction of targets inside μ ± z σ of a Gaussian NLL regressor (001 §3.12): about 0.95 at the
    default z when its predicted variances are calibrated."""
    mean, sigma = gaussian_mean_and_sigma(net, net.predict(x))
    return float(np.mean(np.abs(y - mean) <= z * sigma))
