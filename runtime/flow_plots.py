"""Plots of a trained flow: for two dimensions the learned density on a grid beside the test data
and samples x = f⁻¹(z); for more, samples as images (a square number of pixels, e.g. digits) or a
corner plot of the first dimensions, samples beside test data; and the training curves. Written
atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from layergen.runtime.flow import Flow
from layergen.runtime.flow_data import FlowData
from layergen.runtime.flow_settings import FlowHistory
from layergen.runtime.checkpoint import atomic_write


def plot_flow(flow: Flow, data: FlowData, out: Path, samples: int = 4000) -> tuple[Path, Path]:
    """density.png (the learned density on a grid, beside the test data) and samples.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # in the data's units (model units · std + mean), where a density is the model's over ∏ std
    test = data.test * data.std + data.mean
    margin = 0.5 * data.std
    lo, hi = test.min(axis=0) - margin, test.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = (np.column_stack([gx.ravel(), gy.ravel()]) - data.mean) / data.std
    density = np.exp(flow.log_prob(grid) - data.log_jacobian).reshape(gx.shape)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.pcolormesh(gx, gy, density, shading="auto", cmap="viridis")
    left.set_title("learned density")
    right.scatter(*test[:samples].T, s=1, alpha=0.5)
    right.set_title("test data")
    for axis in (left, right):
        axis.set_xlim(lo[0], hi[0])
        axis.set_ylim(lo[1], hi[1])
        axis.set_aspect("equal")
        _label(axis, data, 0, 1)
    fig.tight_layout()
    density_path = out / "density.png"
    atomic_write(density_path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    drawn = flow.sample(samples, seed=1) * data.std + data.mean
    fig, axis = plt.subplots(figsize=(4.5, 4))
    axis.scatter(*drawn.T, s=1, alpha=0.5, color="tab:orange")
    axis.set_xlim(lo[0], hi[0])
    axis.set_ylim(lo[1], hi[1])
    axis.set_aspect("equal")
    _label(axis, data, 0, 1)
    axis.set_title(f"{samples} samples x = f⁻¹(z)")
    fig.tight_layout()
    samples_path = out / "samples.png"
    atomic_write(samples_path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return density_path, samples_path


def plot_samples(flow: Flow, data: FlowData, out: Path, samples: int = 2000) -> Path:
    """samples.png for D > 2: a 6×6 grid of images when D is a square ≥ 16 (in data units, clipped to
    the data's range), else a corner plot of the first four dimensions, samples over test data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = flow.sample(samples, seed=1)
    side = math.isqrt(flow.arch.dim)
    if side * side == flow.arch.dim and side >= 4:
        images = drawn[:36] * data.std + data.mean
        lo, hi = (data.test * data.std + data.mean).min(), (data.test * data.std + data.mean).max()
        fig, axes = plt.subplots(6, 6, figsize=(6, 6))
        for axis, image in zip(axes.ravel(), images):
            axis.imshow(np.clip(image, lo, hi).reshape(side, side), cmap="gray_r", vmin=lo, vmax=hi)
            axis.axis("off")
        fig.suptitle(f"{data.name}: samples x = f⁻¹(z)")
    else:
        dims = min(flow.arch.dim, 4)
        test, drawn = data.test * data.std + data.mean, drawn * data.std + data.mean  # the data's units
        fig, axes = plt.subplots(dims, dims, figsize=(2.2 * dims, 2.2 * dims))
        for i in range(dims):
            for j in range(dims):
                axis = axes[i, j]
                if i == j:
                    axis.hist(test[:, i], bins=60, density=True, alpha=0.5, label="test")
                    axis.hist(drawn[:, i], bins=60, density=True, alpha=0.5, label="samples")
                else:
                    axis.scatter(test[:samples, j], test[:samples, i], s=0.5, alpha=0.3)
                    axis.scatter(drawn[:, j], drawn[:, i], s=0.5, alpha=0.3, color="tab:orange")
                if i == dims - 1 or j == 0:
                    _label(axis, data, j if i == dims - 1 else None, i if j == 0 and i != j else None)
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(f"{data.name}: samples (orange) over test data, first {dims} dimensions")
    fig.tight_layout()
    path = out / "samples.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path


def _label(axis: object, data: FlowData, x: int | None, y: int | None) -> None:
    """Name the axes after the data's columns (a .csv's header), when it has names."""
    if data.names:
        if x is not None:
            axis.set_xlabel(data.names[x])  # type: ignore[attr-defined]
        if y is not None:
            axis.set_ylabel(data.names[y])  # type: ignore[attr-defined]


def plot_curves(history: FlowHistory, path: Path) -> None:
    """curves.png: the training NLL (the mean over the steps since the last evaluation) and the validation
    NLL at each evaluation, by step, with a dashed line at the best step, whose parameters early stopping
    restored (000 §6.3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(history.steps, history.train_nll, label="train")
    axes.plot(history.steps, history.val_nll, label="validation")
    if history.best_step:
        axes.axvline(history.best_step, color="grey", linestyle="--", linewidth=1,
                     label=f"best step ({history.best_step}), restored")
    axes.set_xlabel("step")
    axes.set_ylabel("NLL (nats per sample)")
    axes.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
