"""Spec-by-spec work on every core: ``layergen generate`` derives, and ``layergen verify`` verifies, whole
specs on worker processes.

A spec's derivation (SymPy, pure Python) and its verification (Numba compiling its kernels, mpmath at 50
digits) read nothing of any other spec's, and both are bound by one core's Python, so specs split over
processes with nothing to share. Workers are spawned rather than forked, so none inherits this process's
Numba or OpenBLAS threads; the results come back in the order of the items, whatever order the workers
finish in.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_on_workers(function: Callable[[Item], Result], items: Sequence[Item], jobs: int) -> Iterator[Result]:
    """``function`` of each item, in order, on ``jobs`` spawned worker processes; in this process when
    ``jobs`` is 1 or there is at most one item. ``function`` must be importable by name (a module-level
    function), and the items and results picklable."""
    jobs = max(1, min(jobs, len(items)))
    if jobs == 1:
        yield from map(function, items)
        return
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(function, items)
    finally:  # after an error (or an interrupt), the items not started yet are dropped, not run
        pool.shutdown(wait=True, cancel_futures=True)
