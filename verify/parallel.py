"""Verifying specs on every core: ``layergen verify`` hands each spec to one worker process
(``layergen.workers``). Each worker derives its spec (from the on-disk derivation cache that the command's
``generate`` has just filled) and imports its module by path; the rows come back in the order of the
specs, as the serial loop printed them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from layergen.spec.loader import LoadedSpec
from layergen.verify.checks import Row
from layergen.workers import map_on_workers


def _rows(loaded: LoadedSpec, module_path: str, seeds: Sequence[int]) -> list[list[Row]]:
    """The rows of each seed's verification of one spec."""
    from layergen.derive import derive
    from layergen.runtime.modules import import_generated
    from layergen.verify.checks import verifier_for

    derivation, module = derive(loaded), import_generated(Path(module_path))
    return [verifier_for(derivation, module, seed).run() for seed in seeds]


def verify_task(task: tuple[LoadedSpec, str, tuple[int, ...]]) -> list[list[Row]]:
    """One spec's task (its spec, module path and seeds), on a worker or in this process."""
    return _rows(*task)


def verify_specs(specs: Sequence[LoadedSpec], out_dir: Path, seeds: Sequence[int], jobs: int) -> Iterator[list[list[Row]]]:
    """Each spec's rows per seed, in the order of ``specs``, on ``jobs`` worker processes (1: in this one)."""
    tasks = [(loaded, str(out_dir / loaded.group / f"{loaded.name}.py"), tuple(seeds)) for loaded in specs]
    return map_on_workers(verify_task, tasks, jobs)
