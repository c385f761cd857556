"""Numba's thread pool called directly (runtime/threads.py): ``run_tasks`` runs the entry once for every
task, whatever the thread count and however the threading layer chunks the tasks, in parallel threads
when there are several, and returns after all have run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest
from numba import cfunc, njit

from layergen.runtime.flat_view import address_view
from layergen.runtime.threads import (
    ENTRY_SIGNATURE, array_address, function_address, run_tasks, start_thread_pool, task_list)

SYMBOL = "layergen_test_record_task"


def _record(task: int, data) -> None:  # type: ignore[no-untyped-def]
    """A task entry: counts[task] += task + 1 and threads[task] = the Numba thread that ran it."""
    counts = address_view(data[1], 0, (data[3],), np.intp)
    threads = address_view(data[2], 0, (data[3],), np.intp)
    counts[task] += task + 1
    threads[task] = numba.get_thread_id()


@njit(cache=False)
def _run(launch: np.ndarray, data: np.ndarray, counts: np.ndarray, threads: np.ndarray) -> None:
    data[0] = function_address("layergen_test_record_task")
    data[1], data[2], data[3] = array_address(counts), array_address(threads), counts.shape[0]
    run_tasks(launch, data)


_entries: list[object] = []


def _register() -> None:
    if not _entries:
        start_thread_pool()
        entry = cfunc(ENTRY_SIGNATURE, cache=False)(_record)
        llvm.add_symbol(SYMBOL, entry.address)
        _entries.append(entry)


def run_and_record(tasks: int) -> tuple[np.ndarray, np.ndarray]:
    _register()
    counts, threads = np.zeros(tasks, np.intp), np.full(tasks, -1, np.intp)
    _run(task_list(tasks), np.zeros(4, np.intp), counts, threads)
    return counts, threads


def test_task_list_layout_and_its_argument_pointer_written_at_each_run() -> None:
    """The list's argument pointer points into the list that is run, so a copy of a list runs its own
    task numbers, whatever became of the original."""
    launch = task_list(3)
    assert launch[0] == 3 and launch[1] == np.dtype(np.intp).itemsize
    np.testing.assert_array_equal(launch[3:], [0, 1, 2])
    _register()
    counts, threads = np.zeros(3, np.intp), np.zeros(3, np.intp)
    _run(launch, np.zeros(4, np.intp), counts, threads)
    assert launch[2] == launch.ctypes.data + 3 * launch.itemsize
    copy = launch.copy()
    launch[3:] = 0  # a run of the copy must not read these
    _run(copy, np.zeros(4, np.intp), counts, threads)
    np.testing.assert_array_equal(counts, [2, 4, 6])
    assert copy[2] == copy.ctypes.data + 3 * copy.itemsize


@pytest.mark.parametrize("tasks", [1, 2, 3, 5])
def test_every_task_runs_once_with_any_thread_count(tasks: int) -> None:
    available = numba.get_num_threads()
    try:
        for count in sorted({1, available}):
            numba.set_num_threads(count)
            counts, threads = run_and_record(tasks)
            np.testing.assert_array_equal(counts, np.arange(1, tasks + 1), err_msg=f"{count} threads")
            assert threads.min() >= 0 and threads.max() < count, f"{count} threads ran tasks on threads {threads}"
    finally:
        numba.set_num_threads(available)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread: nothing runs in parallel")
def test_two_tasks_run_in_two_threads() -> None:
    counts, threads = run_and_record(2)
    np.testing.assert_array_equal(counts, [1, 2])
    assert threads[0] != threads[1]


def test_chunking_threading_layer_runs_every_task_once() -> None:
    """Numba's workqueue layer hands a thread a run of several tasks in one call (OpenMP, the default
    here, hands one): ``_each_task`` must run each of them."""
    script = textwrap.dedent("""
        import numba, numpy as np, sys
        sys.path.insert(0, sys.argv[1])
        from test_threads import run_and_record
        counts, _ = run_and_record(5)
        assert numba.threading_layer() == "workqueue", numba.threading_layer()
        assert counts.tolist() == [1, 2, 3, 4, 5], counts
        print("ok")
    """)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
