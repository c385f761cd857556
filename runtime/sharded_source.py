"""Generated source of the sharded training step (``layergen.runtime.sharded``), shared by the
network and flow modules: per dtype, two task entries (C entry points run by Numba's threads,
``layergen.runtime.threads``): phase 0, a shard's forward, loss and backward; phase 1, the merge of one
block of the shards' gradients with the optimizer's update of that block; and a step that fills the
entries' data block and runs phase 0 once per shard, then phase 1 once per block. The step is a plain
``@njit`` function: no parallel loop for Numba to compile (0.5–0.86 s of a cold start).

Why two entries, not one with a branch on the phase, and why the entries bind their arrays with
``flat_view.address_view`` (not ``carray`` on a pointer, then a slice): both cut the MLP's cold start.
The one entry compiled in 2.9–3.4 s; the two in 2.6 s together (2.05 s and 0.56 s), with Numba's type
inference of the larger one down from 0.58 s to 0.29 s (one fresh process each, on this project's 2-core
VM); eight alternating pairs of whole cold starts with the two entries alone were all faster.

A network's module also has a regularised sharded step (``layergen.runtime.sharded_regularised``): the
same phase 0, and a phase-1 entry of its own, compiled only when a penalty, clipping or max-norm is used."""

from __future__ import annotations

from dataclasses import dataclass

from layergen.runtime.layout import Slot

DTYPES = ("float32", "float64")

#: the regularised sharded step's floats after the optimizer's hyperparameters in its data block
#: (``layergen.runtime.sharded_regularised``): the penalties' λ₂, λ₁ and m, the clipping limits, the
#: factor phase 2 scales the gradient by (0: none) and the phase the update entry runs (0 or 1)
REGULARISATION_FLOATS = ("l2", "l1", "examples", "clip_value", "clip_norm", "_clip_factor", "_stage")


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
            return f"{self.name} = address_view(_p_{self.source}, _lo * {self.columns}, (_hi - _lo, {self.columns}), np.{dtype})"
        if self.per_shard:
            return f"{self.name} = address_view(_p_{self.source}, _c * _size_{self.source}, (_size_{self.source},), np.{dtype})"
        return f"{self.name} = address_view(_p_{self.source}, 0, (_size_{self.source},), np.{dtype})"


@dataclass(frozen=True)
class BlockUpdate:
    """The optimizer's update of the parameter block ``_lo:_hi``: the names of its state buffers and
    hyperparameters (as in the step's arguments) and ``call``, the update of that block from the merged
    gradient in thread ``_c``'s own buffer, ``grads[_c][_lo:_hi]``, e.g.
    ``opt_step(theta[_lo:_hi], grads[_c][_lo:_hi], state_m[_lo:_hi], ...)``."""

    states: tuple[str, ...]
    hypers: tuple[str, ...]
    call: str
    #: with the parameter vector's layout, the model also has a regularised sharded step
    #: (``layergen.runtime.sharded_regularised``): weight penalties, clipping and max-norm on the
    #: parameters named in ``weights``
    trainable: tuple[Slot, ...] = ()
    weights: tuple[str, ...] = ()

    @property
    def regularised(self) -> bool:
        return bool(self.trainable)


def symbol(kind: str, key: str, dtype: str, phase: str) -> str:
    return f"layergen_{kind}_{key}_{phase}_{dtype}"


def data_block(arguments: list[GradientArgument], update: BlockUpdate) -> tuple[list[str], list[str], list[str]]:
    """The step's data block, which every task reads: the names of its ``intp`` words (the address of the
    phase's task entry, which ``threads.run_tasks`` calls; the batch's rows; the shard count; the arrays'
    addresses; the shared arrays' lengths; the addresses of the hyperparameters and of the losses), the
    expressions the step writes into the words after the first once per step (the first, the entry's
    address, it writes before each phase: ``step_bodies``), and the hyperparameters, which the step writes
    as float64 into a block of their own. The same for both dtypes. A model with a regularised step has
    one word more, the address of the penalties' scratch buffer (filled by that step only), and the
    regularisers' floats after the hyperparameters (``REGULARISATION_FLOATS``)."""
    sized = [a for a in arguments if not a.columns]
    names = ["_entry", "_batch", "_shards", *[f"_p_{a.source}" for a in arguments],
             *[f"_p_{s}" for s in update.states], *[f"_size_{a.source}" for a in sized], "_p_task_floats", "_p_losses"]
    values = ["x.shape[0]", "_s",
              *[f"array_address({a.source})" for a in arguments], *[f"array_address({s})" for s in update.states],
              *[a.size() for a in sized], "array_address(task_floats)", "array_address(losses)"]
    if update.regularised:  # the last word, which only the regularised step fills: the penalties' scratch
        names.append("_p_penalty")
    return names, values, list(update.hypers) + list(REGULARISATION_FLOATS) * update.regularised


def _words(names: list[str], needed: set[str]) -> list[str]:
    return [f"    {name} = _data[{i}]" for i, name in enumerate(names) if name in needed]


def update_preamble(dtype: str, arguments: list[GradientArgument], update: BlockUpdate,
                    regularised: bool = False) -> list[str]:
    """The first lines of a phase-1 entry for block ``_c``: the data block's words it reads, the
    hyperparameters (with ``regularised``, the regularisers' floats too, and the views ``penalty`` and
    ``_sums``, the losses' block), the block's bounds ``_lo, _hi`` and the views ``theta``, ``grads`` and
    the optimizer's states."""
    names, _, hypers = data_block(arguments, update)
    hypers = hypers if regularised else list(update.hypers)
    theta = next(a for a in arguments if a.name == "theta")
    grads = next(a for a in arguments if a.per_shard and a.source == "grads")
    needed = {"_batch", "_shards", "_p_task_floats", f"_p_{theta.source}", f"_size_{theta.source}",
              "_p_grads", f"_size_{grads.source}", *[f"_p_{s}" for s in update.states]}
    size = f"_size_{theta.source}"
    own = [f"    penalty = address_view(_p_penalty, 0, ({size},), np.{dtype})",
           "    _sums = address_view(_p_losses, 0, (3 * _shards,), np.float64)"] if regularised else []
    return [*_words(names, needed | ({"_p_losses", "_p_penalty"} if regularised else set())),
            f"    _task_floats = address_view(_p_task_floats, 0, ({max(len(hypers), 1)},), np.float64)",
            *[f"    {h} = _task_floats[{i}]" for i, h in enumerate(hypers)],
            f"    _lo, _hi = parameter_block({size}, _shards, _c)", "    " + theta.view(dtype),
            f"    grads = address_view(_p_grads, 0, (_shards, _size_{grads.source}), np.{dtype})",
            *[f"    {s} = address_view(_p_{s}, 0, ({size},), np.{dtype})" for s in update.states], *own]


def _entry(dtype: str, arguments: list[GradientArgument], body: list[str], update: BlockUpdate) -> list[str]:
    """The two task entries (``threads.ENTRY_SIGNATURE``) for task ``_c``. Phase 0,
    ``_shard_gradients_<dtype>``: shard _c's rows through ``body`` (the lines of ``gradients``) inline, on
    arrays rebuilt from their addresses (calling ``gradients`` would compile it, then generate its machine
    code again inside the entry), and the shard's loss times its rows into ``losses[_c]``. Phase 1,
    ``_shard_update_<dtype>``: grads[_c][_lo:_hi] ← the batch's gradient (``merge_shards``) and the
    optimizer's update of that block. No loop over tasks here (``threads._each_task`` has it): LLVM took
    0.5 s longer over the entry with the body in a loop."""
    names, _, floats = data_block(arguments, update)
    # the floats of the block that the body reads itself (dropout's stream numbers), bound by position
    read = [h for h in update.hypers if any(h in line for line in body)]
    gradient_words = {"_batch", "_shards", "_p_losses", *[f"_p_{a.source}" for a in arguments],
                      *[f"_size_{a.source}" for a in arguments if not a.columns], *["_p_task_floats"] * bool(read)}
    bound = [f"    _task_floats = address_view(_p_task_floats, 0, ({max(len(floats), 1)},), np.float64)",
             *[f"    {h} = _task_floats[{update.hypers.index(h)}]" for h in read]] if read else []
    return [f"def _shard_gradients_{dtype}(_c, _data):", *_words(names, gradient_words), *bound,
            "    _lo, _hi = shard_rows(_batch, _shards, _c)",
            "    _row0 = _lo  # the shard's first row in the batch (dropout's masks are numbered by it)",
            "    _task_shard, _task_rows = _c, _hi - _lo  # kept aside: the body may rebind other names",
            *["    " + a.view(dtype) for a in arguments], *["    " + line for line in body],
            "    address_view(_p_losses, 0, (_shards,), np.float64)[_task_shard] = loss * _task_rows", "", "",
            f"def _shard_update_{dtype}(_c, _data):", *update_preamble(dtype, arguments, update),
            "    merge_shards(grads, _batch, _c, _lo, _hi)", f"    {update.call}"]


def entry_source(kind: str, key: str, arguments: list[GradientArgument], body: list[str],
                 update: BlockUpdate) -> list[str]:
    """Module-level lines: per dtype, the Python functions compiled into the two task entries; the
    lengths of the step's two data blocks (``SHARD_TASK_DATA``: ``intp`` words, float64 hyperparameters);
    and ``register_shard_entry(dtype)``, which compiles (or loads) the entries and registers their symbols."""
    names, _, hypers = data_block(arguments, update)
    lines: list[str] = []
    for dtype in DTYPES:
        lines += ["", "", *_entry(dtype, arguments, body, update)]
    phases = ("gradients", "update", "regularised")[:2 + update.regularised]
    symbols = {dtype: tuple(symbol(kind, key, dtype, phase) for phase in phases) for dtype in DTYPES}
    lines += ["", "", f"SHARD_TASK_DATA = ({len(names)}, {max(len(hypers), 1)})", "", "",
              "def register_shard_entry(dtype, regularised=False):",
              '    """Compile (or load) the task entries of the sharded step (or of the regularised one: the same',
              '    first phase, its own second) for this dtype and register their symbols; each entry compiles at',
              '    its first registration, so a model never trained with a regulariser never compiles its entry."""',
              f"    symbols = {symbols!r}[dtype]",
              "    register_entry(symbols[0], globals()['_shard_gradients_' + dtype])",
              "    if regularised:",
              "        register_entry(symbols[2], globals()['_shard_update_regularised_' + dtype])",
              "    else:",
              "        register_entry(symbols[1], globals()['_shard_update_' + dtype])"]
    return lines


def data_block_fill(arguments: list[GradientArgument], update: BlockUpdate) -> list[str]:
    """A step's lines writing the data block's words after the first (the entry's address, which it writes
    before each phase) and the optimizer's hyperparameters."""
    _, values, _ = data_block(arguments, update)
    return [*[f"task_data[{i}] = {value}" for i, value in enumerate(values, start=1)],
            *[f"task_floats[{i}] = {h}" for i, h in enumerate(update.hypers)]]


def step_bodies(kind: str, key: str, arguments: list[GradientArgument], update: BlockUpdate) -> dict[str, list[str]]:
    """dtype → body of that dtype's sharded step: the data block filled, then phase 0's task entry run once
    per shard (each shard's products on a single-threaded BLAS) and phase 1's once per block, in Numba's
    threads (``threads.run_tasks``); ``losses`` holds each shard's loss times its rows."""
    bodies = {}
    for dtype in DTYPES:
        bodies[dtype] = ["_threads = blas_threads()", "set_blas_threads(1)", "_s = grads.shape[0]",
                         *data_block_fill(arguments, update),
                         f"task_data[0] = function_address({symbol(kind, key, dtype, 'gradients')!r})  # a task per shard",
                         "run_tasks(launch, task_data)",
                         f"task_data[0] = function_address({symbol(kind, key, dtype, 'update')!r})  # a task per block",
                         "run_tasks(launch, task_data)",
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
