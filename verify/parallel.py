"""Verifying specs on every core: ``layergen verify`` hands each spec to one of ``jobs`` worker processes.

Verification is spec by spec: a spec's checks compile its generated module's kernels (Numba, one
compiler lock per process) and evaluate its symbolic source at 50 digits (SymPy and mpmath, pure
Python), and no check reads another spec's results. So the specs split over processes with nothing to
share. Each worker derives its specs itself (from the on-disk derivation cache that ``generate`` has
just filled) and imports their modules by path; the rows come back in the catalog's order, as the
serial loop prints them, whatever order the workers finish in. Workers are spawned, not forked: a
fork would copy this process's Numba and OpenBLAS threads' state.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from layergen.spec.loader import LoadedSpec
from layergen.verify.checks import Row


@dataclass(frozen=True)
class Task:
    """One spec to verify: where to find it (the ``--specs`` folders it was discovered with, and its name),
    its generated module, and the seeds to verify it at."""

    spec_dirs: tuple[str, ...]
    name: str
    module: str
    seeds: tuple[int, ...]


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def _catalog(spec_dirs: tuple[str, ...]) -> dict[str, LoadedSpec]:
    from layergen.spec.loader import discover

    return {loaded.name: loaded for loaded in discover([Path(d) for d in spec_dirs])}


def _rows(loaded: LoadedSpec, module_path: str, seeds: Sequence[int]) -> list[list[Row]]:
    """The rows of each seed's verification of one spec."""
    from layergen.derive import derive
    from layergen.runtime.modules import import_generated
    from layergen.verify.checks import verifier_for

    derivation, module = derive(loaded), import_generated(Path(module_path))
    return [verifier_for(derivation, module, seed).run() for seed in seeds]


def verify_task(task: Task) -> list[list[Row]]:
    """A worker's task: the spec found again by name among those its folders hold."""
    return _rows(_catalog(task.spec_dirs)[task.name], task.module, task.seeds)


def verify_specs(specs: Sequence[LoadedSpec], spec_dirs: Sequence[Path], out_dir: Path, seeds: Sequence[int],
                 jobs: int) -> Iterator[list[list[Row]]]:
    """Each spec's rows per seed, in the order of ``specs``; on ``jobs`` worker processes (1: in this one)."""
    tasks = [Task(tuple(str(d) for d in spec_dirs), loaded.name, str(out_dir / loaded.group / f"{loaded.name}.py"),
                  tuple(seeds)) for loaded in specs]
    jobs = max(1, min(jobs, len(tasks)))
    if jobs == 1:
        for loaded, task in zip(specs, tasks):
            yield _rows(loaded, task.module, task.seeds)
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(verify_task, tasks)
