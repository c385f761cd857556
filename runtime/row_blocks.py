"""Evaluation of a sharded model in row blocks, one thread per shard.

A sharded model (``layergen.runtime.sharded``) trains on both cores, one shard per thread; its
evaluation passes (a flow's ``log_prob``, a network's ``predict``) run the same way: the rows are cut
into blocks, the blocks are dealt round robin to one worker thread per shard, each with a work buffer
of its own, and every thread's matrix products run on a one-thread BLAS, so no BLAS thread wakes to
spin beside the workers. The generated evaluation functions are compiled with ``nogil=True``, so the
workers run at once. Rows are independent in evaluation (batch norm uses its running averages), so a
row's result does not depend on which block or thread computed it, up to the BLAS's rounding for
another block height."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from layergen.runtime.blas import single_threaded_blas


@cache
def evaluation_pool(workers: int) -> ThreadPoolExecutor:
    """The threads that evaluate sharded models, one per shard; shared by every model."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layergen-eval")


def in_row_blocks(rows: int, block_rows: int, workers: int, run_block: Callable[[int, int, int], None]) -> None:
    """Calls ``run_block(worker, start, stop)`` for the row blocks [start, stop) of ``block_rows`` rows
    (the last one shorter) that cover ``rows`` rows, block b on worker b mod ``workers``, the workers in
    threads of ``evaluation_pool`` on a one-thread BLAS. An exception in a worker is raised here."""
    starts = range(0, rows, block_rows)

    def worker(index: int) -> None:
        for start in starts[index::workers]:
            run_block(index, start, min(start + block_rows, rows))

    with single_threaded_blas():
        running = [evaluation_pool(workers).submit(worker, index) for index in range(min(workers, len(starts)))]
        for done in running:
            done.result()
