"""Compiling a model's later functions on the second core while this process compiles its first.

A cold start (Numba's cache empty) compiles a model's functions one after the other: a sharded step's
two task entries (a shard's forward and backward pass, then the merge and the optimizer's update), and
for a flow ``log_prob`` and ``sample`` after them. Numba's compiler holds one lock per process, so a
second thread cannot help; a second process can. ``start`` runs one (``python -m
layergen.runtime.compile_ahead``) that imports the same generated module by path, compiles the functions
it is given into Numba's cache, in order, and reports each on its standard output. When this process
reaches one of them, ``wait_for`` blocks until the helper has reported it, and Numba then loads it from
the cache instead of compiling it.

Only who compiles changes: the helper compiles the same function from the same file with the same
options and argument types (a task entry through ``sharded.compile_entry``, as ``register_entry`` does),
so the machine code and the results are the same. A whole-batch step (batch norm, or a batch too small to
shard) has no update entry: its helper compiles the later functions alone, while this process compiles the
step. The helper runs only on a cold start (``entry_in_cache``, ``in_cache``), only on more than one core,
and only when ``LAYERGEN_COMPILE_AHEAD`` is not ``0`` (the test suite sets 0: its two processes already
keep both cores busy). A helper that fails or is stopped costs only its time: ``wait_for`` returns at its
end of output, and this process compiles the function itself, raising any real error there. Measured in
``docs/performance.md`` ("Compiling on the second core").
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

#: set to 0 to compile everything in this process
ENVIRONMENT = "LAYERGEN_COMPILE_AHEAD"


@dataclass(frozen=True)
class Job:
    """A function of a generated module for the helper to compile: a task entry (``arguments`` None) or an
    ``@njit`` function at the argument types it will be called with, each as (dtype, ndim, layout), ndim 0
    for a scalar."""

    name: str
    arguments: tuple[tuple[str, int, str], ...] | None = None


def njit_job(name: str, values: tuple[object, ...]) -> Job:
    """The job compiling ``name`` for these arguments' types: arrays by dtype, dimensions and layout (what
    Numba's dispatcher specialises on), Python and NumPy floats as float64."""
    arguments = []
    for value in values:
        if isinstance(value, np.ndarray):
            layout = "C" if value.flags.c_contiguous else "F" if value.flags.f_contiguous else "A"
            if not value.flags.writeable:
                raise ValueError(f"{name}: the helper compiles for writeable arrays only")
            arguments.append((value.dtype.name, value.ndim, layout))
        elif isinstance(value, float | np.float64):
            arguments.append(("float64", 0, ""))
        else:
            raise ValueError(f"{name}: no helper job for an argument of type {type(value).__name__}")
    return Job(name, tuple(arguments))


class Helper:
    """One helper process and what it has reported so far."""

    def __init__(self, module: ModuleType, jobs: list[Job]) -> None:
        request = json.dumps({"module": module.__file__, "jobs": [[job.name, job.arguments] for job in jobs]})
        self.process = subprocess.Popen([sys.executable, "-m", "layergen.runtime.compile_ahead", request],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env={**os.environ, ENVIRONMENT: "0"})
        self.reported: set[str] = set()

    def wait_for(self, name: str) -> bool:
        """Block until the helper has compiled ``name`` (True) or ended without it (False)."""
        assert self.process.stdout is not None
        while name not in self.reported:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                return False
            self.reported.add(line.removeprefix("compiled ").strip())
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # Numba writes a cache entry to a temporary file and renames it: no torn entry
        self.process.wait()


#: (generated module's file, function name) → the helper compiling it
_pending: dict[tuple[str, str], Helper] = {}


def enabled() -> bool:
    """On unless turned off, or where this process may use one core only: a helper would then only take
    turns with it."""
    from layergen.workers import usable_cores

    return os.environ.get(ENVIRONMENT, "1") != "0" and usable_cores() > 1


def start(module: ModuleType, jobs: list[Job]) -> None:
    """Start a helper compiling ``jobs`` of ``module`` in this order (nothing when turned off, or for a job
    that another helper compiles already: two models of one architecture share its module)."""
    jobs = [job for job in jobs if (str(module.__file__), job.name) not in _pending]
    if not jobs or not enabled():
        return
    helper = Helper(module, jobs)
    for job in jobs:
        _pending[str(module.__file__), job.name] = helper


def wait_for(module: ModuleType, name: str) -> bool:
    """If a helper compiles ``name`` of ``module``, wait until it has (True: Numba's cache holds it now)."""
    helper = _pending.pop((str(module.__file__), name), None)
    return helper is not None and helper.wait_for(name)


@atexit.register
def _stop_helpers() -> None:
    """A helper still compiling a function this process never called is stopped with it."""
    for helper in set(_pending.values()):
        helper.stop()
    _pending.clear()


def _numba_types(arguments: Sequence[Sequence[object]]) -> tuple[object, ...]:
    """A job's argument types as Numba's types, the signature the dispatcher compiles."""
    from numba import types

    return tuple(types.Array(getattr(types, str(dtype)), int(ndim), str(layout)) if ndim else getattr(types, str(dtype))
                 for dtype, ndim, layout in arguments)


def in_cache(module: ModuleType, job: Job) -> bool:
    """Whether Numba's cache holds ``job``'s ``@njit`` function at the job's argument types (a warm start)."""
    from numba.core.caching import FunctionCache
    from numba.core.registry import cpu_target

    assert job.arguments is not None, "a task entry: sharded.entry_in_cache"
    function = getattr(module, job.name).py_func  # as entry_in_cache asks for a task entry
    return FunctionCache(function).load_overload(_numba_types(job.arguments), cpu_target.target_context) is not None


def _compile(module: ModuleType, name: str, arguments: list[list[object]] | None) -> None:
    from layergen.runtime.sharded import compile_entry

    function = getattr(module, name)
    if arguments is None:
        compile_entry(function)
    else:
        function.compile(_numba_types(arguments))


def main(argv: list[str]) -> int:
    """The helper: compile each job into Numba's cache and report it, one line each."""
    from layergen.runtime.modules import import_generated

    request = json.loads(argv[0])
    module = import_generated(request["module"])
    for name, arguments in request["jobs"]:
        _compile(module, name, arguments)
        print("compiled", name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
