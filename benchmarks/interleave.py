"""Interleaved timing shared by the benchmarks: contenders run in turns (A, B, C, A, B, C, ...)
in blocks of about equal duration, each block after an idle gap (so one library's spinning BLAS
threads sleep while another runs) and an untimed warm-up (so every contender wakes the cores
and its thread pool alike); each figure is the median over blocks. ``ratio_interval`` gives a bootstrap
confidence interval for the ratio of two contenders' medians, resampling whole rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


def time_block(step: Callable[[], object], steps: int, warmup: float) -> float:
    """ms per step over ``steps`` steps, after ``warmup`` seconds of untimed steps."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def steps_per_block(step: Callable[[], object], seconds: float) -> int:
    """Enough steps for a block of about ``seconds``, so fast and slow contenders get equally long blocks."""
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        step()
        count += 1
    return max(5, round(seconds * count / (time.perf_counter() - start)))


def interleaved_blocks(contenders: dict[str, Callable[[], object]], repeats: int, block: float,
                       warmup: float, gap: float) -> dict[str, list[float]]:
    """ms per call of each contender in each of ``repeats`` rounds of interleaved blocks: entry i of
    every list comes from round i, so the contenders' i-th entries were timed within one round."""
    for step in contenders.values():  # first calls compile (Numba) or build caches (torch)
        step()
    steps = {name: steps_per_block(step, block) for name, step in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, step in contenders.items():
            times[name].append(time_block(step, steps[name], warmup))
            time.sleep(gap)
    return times


def interleaved_medians(contenders: dict[str, Callable[[], object]], repeats: int, block: float,
                        warmup: float, gap: float) -> dict[str, float]:
    """Median ms per call of each contender over ``repeats`` interleaved blocks."""
    times = interleaved_blocks(contenders, repeats, block, warmup, gap)
    return {name: statistics.median(values) for name, values in times.items()}


def ratio_interval(numerator: Sequence[float], denominator: Sequence[float], confidence: float = 0.95,
                   resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval for median(numerator) / median(denominator), two contenders' block
    times of the same rounds: each resample draws rounds with replacement and keeps each round's pair
    together, so a slow phase of the machine that hit both blocks of a round stays in both medians.
    Why: single rounds of this project's VM range from below the floor to twice it, and the ratio of
    medians alone does not say whether 1.29 and 1.31 differ; the interval does. Seeded, so a run's
    printout is reproducible from its times."""
    if len(numerator) != len(denominator) or len(numerator) < 2:
        raise ValueError(f"ratio_interval: needs two equally long lists of at least 2 rounds, got "
                         f"{len(numerator)} and {len(denominator)}")
    if not 0 < confidence < 1:
        raise ValueError(f"ratio_interval: confidence {confidence} is not between 0 and 1")
    top, bottom = np.asarray(numerator, float), np.asarray(denominator, float)
    rounds = np.random.default_rng(seed).integers(0, len(top), size=(resamples, len(top)))
    ratios = np.median(top[rounds], axis=1) / np.median(bottom[rounds], axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return float(low), float(high)
