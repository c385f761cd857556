"""Generated source of the sharded training step (``layergen.runtime.sharded``), shared by the
network and flow modules: per dtype, one task entry (a C entry point run by Numba's threads,
``layergen.runtime.threads``) with two phases (0: a shard's forward, loss and backward; 1: the merge
of one block of the shards' gradients with the optimizer's update of that block), and a step that
fills the entry's data block and runs phase 0 once per shard, then phase 1 once per block. The step
is a plain ``@njit`` function: no parallel loop for Numba to compile (0.5–0.86 s of a cold start)."""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class GradientArgument:
    """An argument ``name`` of the module's ``gradients`` and the step's array it comes from, ``source``:
    with ``columns``, shard c's rows of the per-sample 2-D ``source``; else, when ``source`` differs from
    ``name``, shard c's row of the stacked per-shard buffers ``source`` (such as ``grads``); else the
    shared 1-D ``source`` itself (such as ``theta``)."""

    name: str
    source: str
    columns: int = 0

    @property
    def per_shard(self) -> bool:
        return not self.columns and self.source != self.name

    def size(self) -> str:
        """The integer the step passes with the address (none for per-sample rows): a row's length of the
        stacked buffers, or the shared array's length."""
        return f"{self.source}.shape[1]" if self.per_shard else f"{self.source}.shape[0]"

    def view(self, dtype: str) -> str:
        """The line of the entry that rebuilds the argument from its address."""
        if self.columns:
            return f"{self.name} = carray(_p_{self.source}, (_batch, {self.columns}), np.{dtype})[_lo:_hi]"
        if self.per_shard:
            return f"{self.name} = carray(_p_{self.source}, (_shards, _size_{self.source}), np.{dtype})[_c]"
        return f"{self.name} = carray(_p_{self.source}, (_size_{self.source},), np.{dtype})"


@dataclass(frozen=True)
class BlockUpdate:
    """The optimizer's update of the parameter block ``_lo:_hi``: the names of its state buffers and
    hyperparameters (as in the step's arguments) and ``call``, the update of that block from the merged
    gradient in thread ``_c``'s own buffer, ``grads[_c][_lo:_hi]``, e.g.
    ``opt_step(theta[_lo:_hi], grads[_c][_lo:_hi], state_m[_lo:_hi], ...)``."""

    states: tuple[str, ...]
    hypers: tuple[str, ...]
    call: str


def symbol(kind: str, key: str, dtype: str) -> str:
    return f"layergen_{kind}_{key}_shard_{dtype}"


def _task_data(kind: str, key: str, dtype: str, arguments: list[GradientArgument],
               update: BlockUpdate) -> tuple[list[str], list[str], list[str]]:
    """The step's data block, which every task reads: the names of its ``intp`` words (the task entry's
    address, which ``threads.run_tasks`` calls; the phase; the batch's rows; the shard count; the arrays'
    addresses; the shared arrays' lengths; the addresses of the hyperparameters and of the losses), the
    expressions the step writes into them (the phase is rewritten per phase), and the hyperparameters,
    which the step writes as float64 into a block of their own."""
    sized = [a for a in arguments if not a.columns]
    names = ["_entry", "_phase", "_batch", "_shards", *[f"_p_{a.source}" for a in arguments],
             *[f"_p_{s}" for s in update.states], *[f"_size_{a.source}" for a in sized], "_p_task_floats", "_p_losses"]
    values = [f"function_address({symbol(kind, key, dtype)!r})", "0", "x.shape[0]", "_s",
              *[f"array_address({a.source})" for a in arguments], *[f"array_address({s})" for s in update.states],
              *[a.size() for a in sized], "array_address(task_floats)", "array_address(losses)"]
    return names, values, list(update.hypers)


def _entry(kind: str, key: str, dtype: str, arguments: list[GradientArgument], body: list[str],
           update: BlockUpdate) -> list[str]:
    """The task entry (``threads.ENTRY_SIGNATURE``) for task ``_c``: in phase 0, shard _c's rows through
    ``body`` (the lines of ``gradients``) inline, on arrays rebuilt from their addresses (calling
    ``gradients`` would compile it, then generate its machine code again inside the entry), and the
    shard's loss times its rows into ``losses[_c]``; in phase 1, grads[_c][_lo:_hi] ← the batch's
    gradient (``merge_shards``) and the optimizer's update of that block. No loop over tasks here
    (``threads._each_task`` has it): LLVM took 0.5 s longer over the entry with the body in a loop."""
    names, _, hypers = _task_data(kind, key, dtype, arguments, update)
    theta = next(a for a in arguments if a.name == "theta")
    grads = next(a for a in arguments if a.per_shard and a.source == "grads")
    words = [f"{name} = address_pointer(_data[{i}])" if name.startswith("_p_") else f"{name} = _data[{i}]"
             for i, name in enumerate(names) if name != "_entry"]
    return [f"def _shard_entry_{dtype}(_c, _data):", *["    " + word for word in words],
            "    if _phase == 0:", "        _lo, _hi = shard_rows(_batch, _shards, _c)",
            "        _task_shard, _task_rows = _c, _hi - _lo  # kept aside: the body may rebind other names",
            *["        " + a.view(dtype) for a in arguments], *["        " + line for line in body],
            "        carray(_p_losses, (_shards,), np.float64)[_task_shard] = loss * _task_rows", "        return",
            f"    _task_floats = carray(_p_task_floats, ({max(len(hypers), 1)},), np.float64)",
            *[f"    {h} = _task_floats[{i}]" for i, h in enumerate(hypers)],
            f"    _lo, _hi = parameter_block(_size_{theta.source}, _shards, _c)", "    " + theta.view(dtype),
            f"    grads = carray(_p_grads, (_shards, _size_{grads.source}), np.{dtype})",
            *[f"    {s} = carray(_p_{s}, (_size_{theta.source},), np.{dtype})" for s in update.states],
            "    merge_shards(grads, _batch, _c, _lo, _hi)", f"    {update.call}"]


def entry_source(kind: str, key: str, arguments: list[GradientArgument], body: list[str],
                 update: BlockUpdate) -> list[str]:
    """Module-level lines: per dtype, the Python function compiled into the task entry; the lengths of
    the step's two data blocks (``SHARD_TASK_DATA``: ``intp`` words, float64 hyperparameters); and
    ``register_shard_entry(dtype)``, which compiles (or loads) the entry and registers its symbol."""
    names, _, hypers = _task_data(kind, key, DTYPES[0], arguments, update)
    lines: list[str] = []
    for dtype in DTYPES:
        lines += ["", "", *_entry(kind, key, dtype, arguments, body, update)]
    symbols = {dtype: symbol(kind, key, dtype) for dtype in DTYPES}
    lines += ["", "", f"SHARD_TASK_DATA = ({len(names)}, {max(len(hypers), 1)})", "", "",
              "def register_shard_entry(dtype):",
              '    """Compile (or load) the task entry of the sharded step for this dtype and register its symbol."""',
              f"    register_entry({symbols!r}[dtype], globals()['_shard_entry_' + dtype])"]
    return lines


def step_bodies(kind: str, key: str, arguments: list[GradientArgument], update: BlockUpdate) -> dict[str, list[str]]:
    """dtype → body of that dtype's sharded step: the data block filled, then the task entry run once per
    shard (phase 0, each shard's products on a single-threaded BLAS) and once per block (phase 1) in
    Numba's threads (``threads.run_tasks``); ``losses`` holds each shard's loss times its rows."""
    bodies = {}
    for dtype in DTYPES:
        names, values, hypers = _task_data(kind, key, dtype, arguments, update)
        fill = [f"task_data[{i}] = {value}" for i, value in enumerate(values) if names[i] != "_phase"]
        phase = names.index("_phase")
        bodies[dtype] = ["_threads = blas_threads()", "set_blas_threads(1)", "_s = grads.shape[0]", *fill,
                         *[f"task_floats[{i}] = {h}" for i, h in enumerate(hypers)],
                         "for _phase in range(2):  # 0: a task per shard, then 1: a task per parameter block",
                         f"    task_data[{phase}] = _phase", "    run_tasks(launch, task_data)",
                         "set_blas_threads(_threads)", "loss = 0.0",
                         "for _c in range(_s):  # not losses.sum(): one compilation less", "    loss += losses[_c]",
                         "loss = loss / x.shape[0]"]
    return bodies


#: the step's arguments after its per-shard work buffers: what ``ShardBuffers.tasks`` holds
TASK_ARGUMENTS = ("losses", "launch", "task_data", "task_floats")


def one_core_below(rows: int, body: list[str]) -> list[str]:
    """The lines of a serial (unsharded) training step, run with a one-thread BLAS when the batch has
    fewer than ``rows`` rows (the size from which the step is sharded), the BLAS's thread count
    restored after the step.

    Why: on a batch that small, a two-thread BLAS gains little on the products and loses more after
    them. Its second thread writes part of a product's output, half of the 128×128 weight gradient of
    the benchmark MLP, and the passes that read that output next (the activation's VJP, the optimizer's
    update) then fetch those cache lines from the other core. Measured in one step at batch 32
    (float32): Adam's update of that layer took 11.1 µs after a two-thread product and 4.6 µs after
    a one-thread one, and the whole step 64.9 µs against 60.4 µs."""
    return ["_blas_threads = blas_threads()",
            f"if x.shape[0] < {rows}:  # a small batch stays on one core (see one_core_below in sharded_source.py)",
            "    set_blas_threads(1)",
            *body,
            "set_blas_threads(_blas_threads)"]
