"""Interleaved timing shared by the benchmarks: contenders run in turns (A, B, C, A, B, C, ...)
in blocks of about equal duration, each block after an idle gap (so one library's spinning BLAS
threads sleep while another runs) and an untimed warm-up (so every contender wakes the cores
and its thread pool alike); each figure is the median over blocks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
