"""Helpers of the sharded training step: the batch split into shards, one per Numba thread.

The loss of every network and flow of the catalog is a batch mean, L = (1/N) Σ_i ℓ_i (003 §2;
000 eq. 73 for a flow's NLL), and with no layer coupling the samples (no batch norm; dropout's masks
are numbered by row, so a shard draws its rows of the whole batch's masks) its gradient splits over
any partition of the batch into shards S_c of n_c rows:

    ∂L/∂θ = Σ_c (n_c / N) · ∂L_c/∂θ,    L_c = (1/n_c) Σ_{i ∈ S_c} ℓ_i.

Each shard runs the lines of the architecture's generated ``gradients`` (forward, loss, backward)
in its own thread with a single-threaded BLAS and its own buffers; then each thread merges one block
of the parameter vector (the weighted sum above, into its own shard's buffer) and applies the
optimizer's elementwise update to that block. Why: on a few cores, a multithreaded BLAS splits each small product across the
cores and synchronises once per product (dozens per step), and the elementwise work between
products reads what the other core wrote; a shard keeps its whole forward and backward pass on
one core, with two synchronisations per step.

The shard count is fixed per network (not the machine's core count), so a seeded run gives the
same numbers on any machine; with fewer Numba threads than shards the shards just run in turn.

Why the threads run C entry points (``register_entry``; phase 0's runs a shard's ``gradients``, phase 1's
a block's merge and update) and not the functions directly: Numba links a called function's LLVM module
into its caller and generates machine code for it again, and a parallel loop's body is a caller of its
own. A direct call made the sharded step compile longer than ``gradients`` itself (9 s against 8 s for
the two-moons flow); the merge and update called directly cost the MLP's cold start another 0.5–0.7 s.
Through a ``cfunc`` whose address is registered under a symbol name, the threads call a pointer; the
``cfunc`` is compiled once and cached, and the symbol name keeps the step cacheable too (see
``layergen.runtime.blas`` for the same device). The step hands each entry to Numba's threading layer
itself (``layergen.runtime.threads``) instead of through a ``prange`` loop, whose compilation took
0.5–0.86 s of every cold start."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import MappingProxyType, ModuleType

import llvmlite.binding as llvm
import numpy as np
from numba import cfunc, njit

from layergen.errors import LayergenError
from layergen.runtime import compile_ahead
from layergen.runtime.blas import CONTROLLABLE
from layergen.runtime.layout import Layout, Slot, allocate, allocate_stacked
from layergen.runtime.row_blocks import in_row_blocks
from layergen.runtime.threads import ENTRY_SIGNATURE, start_thread_pool, task_list

#: batch shards of a training step: fixed, not the core count, so a seeded run gives the same numbers
#: on any machine
SHARDS = 2
#: the smallest shard worth a thread of its own: below 2 × this many rows the serial step is faster
#: (batch 32 in shards of 16: 0.068-0.072 ms against 0.067-0.068 ms for the serial step)
MIN_SHARD_ROWS = 32
#: the default step splits batches of this many rows or more; a serial step on fewer rows runs with a
#: one-thread BLAS (``sharded_source.one_core_below``), so that a small batch stays on one core
TWO_CORE_ROWS = SHARDS * MIN_SHARD_ROWS

#: parameter blocks start on multiples of this many elements (64 bytes of float32)
BLOCK_ALIGN = 16


@njit(cache=True, inline="always")
def shard_rows(n: int, shards: int, c: int) -> tuple[int, int]:
    """Rows [lo, hi) of shard c of a batch of n: contiguous, sizes differing by at most one."""
    return c * n // shards, (c + 1) * n // shards


@njit(cache=True, inline="always")
def parameter_block(size: int, shards: int, c: int) -> tuple[int, int]:
    """Elements [lo, hi) of the parameter vector that thread c merges and updates."""
    per = -(-size // (shards * BLOCK_ALIGN)) * BLOCK_ALIGN
    return min(c * per, size), min((c + 1) * per, size)


@njit(cache=True, error_model="numpy", inline="always")
def merge_shards(grads: np.ndarray, n: int, c: int, lo: int, hi: int) -> None:
    """grads[c, lo:hi] ← Σ_k (n_k / n) · grads[k, lo:hi]: the whole batch's gradient of the mean loss, for
    block c, in shard c's own buffer (whose lines thread c wrote last: writing into another shard's
    buffer would move them between the cores twice per step). Thread-count independent: the sum runs in
    the same order whatever thread runs it (its own shard's term first, then the others in order). The
    own term and the first other one are summed in one pass over the block (a separate scaling pass
    cost 3–10 µs of the MLP's batch-128 step in an A/B run).

    The loops run over 1-D views of the rows, not over ``grads[c, i]`` and ``grads[k, i]``: indexed into
    one 2-D array, the rows may overlap as far as LLVM can tell, and it left the loop scalar (13k float32
    elements, one core: 11.6 µs against 2.2 µs for the views, which it vectorises behind a run-time
    overlap check). Same operations in the same order, so the same bits."""
    shards = grads.shape[0]
    if shards == 1:  # the whole batch: its weight is n / n = 1
        return
    first, last = shard_rows(n, shards, c)
    w = grads.dtype.type((last - first) / n)
    other = 1 if c == 0 else 0
    first, last = shard_rows(n, shards, other)
    w_other = grads.dtype.type((last - first) / n)
    own, theirs = grads[c, lo:hi], grads[other, lo:hi]
    for i in range(own.shape[0]):
        own[i] = w * own[i] + w_other * theirs[i]
    for k in range(other + 1, shards):
        if k != c:
            first, last = shard_rows(n, shards, k)
            w_other = grads.dtype.type((last - first) / n)
            theirs = grads[k, lo:hi]
            for i in range(own.shape[0]):
                own[i] += w_other * theirs[i]


_registered: dict[str, object] = {}  # symbol → its compiled cfunc, kept alive for the process


def compile_entry(function: Callable[..., None]) -> object:
    """``function`` compiled (or loaded from Numba's cache) as a task entry (``threads.ENTRY_SIGNATURE``):
    the one place its options are set, so that an entry a helper process compiled (``compile_ahead``)
    is the one this process would have compiled."""
    return cfunc(ENTRY_SIGNATURE, cache=True, error_model="numpy")(function)


def entry_in_cache(function: Callable[..., None]) -> bool:
    """Whether Numba's cache holds ``function`` compiled as a task entry (a warm start)."""
    from numba.core.caching import FunctionCache
    from numba.core.registry import cpu_target

    return FunctionCache(function).load_overload(ENTRY_SIGNATURE, cpu_target.target_context) is not None


def register_entry(symbol: str, function: Callable[..., None]) -> None:
    """Compile (or load from Numba's cache) ``function`` as a task entry and register its address under
    ``symbol``, once per process, with Numba's threads started; a sharded step running ``symbol`` can
    then be compiled or loaded from its cache. If a helper process compiles the entry (a cold start,
    ``compile_ahead``), this waits for it and loads the entry it left in the cache."""
    if symbol not in _registered:
        start_thread_pool()
        compile_ahead.wait_for(sys.modules[function.__module__], function.__name__)
        entry = compile_entry(function)
        llvm.add_symbol(symbol, entry.address)
        _registered[symbol] = entry


class ShardBuffers:
    """What a model's sharded step needs besides its parameters: one gradient buffer per shard, one work
    buffer per shard for each batch size, the shards' losses, the task list and data blocks its threads
    read (``tasks``), and the step of the model's dtype, its task entries registered first. After a
    sharded step the whole batch's gradient lies in blocks, block c in shard c's buffer; ``gradient()``
    gathers it into the first buffer, the model's ``grad``, when read."""

    def __init__(self, module: ModuleType, trainable: tuple[Slot, ...], work: tuple[Slot, ...], dtype: type,
                 shards: int, independent: bool) -> None:
        if shards < 1:
            raise LayergenError(f"shards: {shards} is not a positive number of batch shards; 1 turns sharding off")
        #: 1 when samples are coupled (batch norm) or the BLAS's threads cannot be controlled
        self.count = shards if independent and CONTROLLABLE else 1
        self.grads, self.grad_views = allocate_stacked(trainable, dtype, self.count)
        #: the shards' losses times their rows; after them, the regularised step's penalty and sum of
        #: squares of each block (``layergen.runtime.sharded_regularised``)
        self.losses = np.zeros(3 * self.count)
        words, floats = getattr(module, "SHARD_TASK_DATA", (0, 0))  # none in a module without a sharded step
        #: the sharded step's arguments after the work buffers (``sharded_source.TASK_ARGUMENTS``)
        self.tasks = (self.losses, task_list(self.count), np.zeros(words, np.intp), np.zeros(floats))
        self._module, self._work_slots, self._dtype = module, work, dtype
        self._work: dict[int, np.ndarray] = {}
        self._step: Callable[..., float] | None = None
        self._regularised_step: Callable[..., float] | None = None
        self._gathered = True  # grads[0] holds the whole gradient (no sharded step since it was gathered)
        #: the model's functions it calls after its first step (a flow's ``log_prob`` and ``sample``), for a
        #: helper process to compile on a cold start (``compile_ahead``)
        self.later: list[compile_ahead.Job] = []

    def applies(self, batch: int) -> bool:
        return self.count > 1 and batch >= self.count * MIN_SHARD_ROWS

    def work_for(self, batch: int) -> np.ndarray:
        """One work buffer per shard, sized for the largest shard; allocated once per batch size."""
        if batch not in self._work:
            self._work[batch] = allocate_stacked(self._work_slots, self._dtype, self.count, -(-batch // self.count))[0]
        return self._work[batch]

    def run(self, *args: object) -> float:
        """One sharded step of the model's dtype (its C entries compiled or loaded at the first call); ``args``
        as the generated ``train_step_sharded_<dtype>`` takes them, with ``grads`` this object's buffers."""
        if self._step is None:
            name = np.dtype(self._dtype).name
            self._compile_ahead(f"_shard_update_{name}")
            self._module.register_shard_entry(name)
            self._step = getattr(self._module, f"train_step_sharded_{name}")
        self._gathered = False
        return float(self._step(*args))

    def run_regularised(self, *args: object) -> float:
        """One regularised sharded step (``layergen.runtime.sharded_regularised``); ``args`` as the generated
        ``train_step_sharded_regularised_<dtype>`` takes them."""
        if self._regularised_step is None:
            name = np.dtype(self._dtype).name
            self._compile_ahead(f"_shard_update_regularised_{name}")
            self._module.register_shard_entry(name, regularised=True)
            self._regularised_step = getattr(self._module, f"train_step_sharded_regularised_{name}")
        self._gathered = False
        return float(self._regularised_step(*args))

    def _compile_ahead(self, update: str) -> None:
        """On a cold start, compile the update entry (and the model's ``later`` jobs) in a helper process
        while this one compiles the gradients entry (``compile_ahead``)."""
        if compile_ahead.enabled() and not entry_in_cache(getattr(self._module, update)):
            compile_ahead.start(self._module, [compile_ahead.Job(update), *self.later])
            self.later = []

    def compile_later_ahead(self) -> None:
        """Before a model's first whole-batch step (batch norm, or a batch too small to shard): on a cold start
        (the first of the model's ``later`` functions not in Numba's cache), a helper process compiles them
        while this one compiles the step (``compile_ahead``)."""
        if self.later and compile_ahead.enabled() and not compile_ahead.in_cache(self._module, self.later[0]):
            compile_ahead.start(self._module, self.later)
        self.later = []

    def whole_batch_follows(self) -> None:
        """A whole-batch step is about to write the entire gradient into the first buffer: nothing to gather."""
        self._gathered = True

    def gradient(self) -> np.ndarray:
        """The whole batch's gradient of the last step, in the first buffer: after a sharded step, each
        block c ≥ 1 is copied there from shard c's buffer (once; a whole-batch step overwrites it all)."""
        if not self._gathered:
            size = self.grads.shape[1]  # the length of theta: both are laid out from the same trainable slots
            for c in range(1, self.count):
                lo, hi = parameter_block(size, self.count, c)
                self.grads[0, lo:hi] = self.grads[c, lo:hi]
            self._gathered = True
        return self.grads[0]


class ShardedGradients:
    """``grad`` and ``grads`` of a model whose step may be sharded: the model sets ``_shards`` (its
    ``ShardBuffers``) and ``_grads`` (the named views into the first gradient buffer); and its evaluation
    in row blocks on one thread per shard, with work buffers from its ``layout`` and ``dtype``."""

    _shards: ShardBuffers
    _grads: MappingProxyType[str, np.ndarray]
    layout: Layout
    dtype: type
    shards: int
    _evaluation_work: dict[tuple[int, int], np.ndarray]  # the model sets it to {}

    def in_evaluation_threads(self, rows: int, batch: int, run_block: Callable[[np.ndarray, int, int], None]) -> None:
        """``run_block(work, start, stop)`` for the blocks [start, stop) of at most ``batch`` rows that cover
        ``rows`` rows, dealt to one thread per shard (``layergen.runtime.row_blocks``), each thread with a
        work buffer of its own of the block height (a shorter block's views take its first rows; made once
        per height and thread)."""
        height = min(batch, -(-rows // self.shards))

        def on_worker(worker: int, start: int, stop: int) -> None:
            if (height, worker) not in self._evaluation_work:
                self._evaluation_work[height, worker] = allocate(self.layout.work, self.dtype, height)[0]
            run_block(self._evaluation_work[height, worker], start, stop)

        in_row_blocks(rows, height, self.shards, on_worker)

    @property
    def grad(self) -> np.ndarray:
        """The gradient of the last training step's loss, all trainable parameters in one flat buffer."""
        return self._shards.gradient()

    @property
    def grads(self) -> MappingProxyType[str, np.ndarray]:
        """The gradient of the last training step's loss by parameter name (views into ``grad``; read them
        through this property after each step)."""
        self._shards.gradient()
        return self._grads
