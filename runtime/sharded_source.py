"""Generated source of the sharded training step (``layergen.runtime.sharded``), shared by the
network and flow modules: per dtype, one C entry point with two phases (0: a shard's forward, loss
and backward; 1: the merge of one block of the shards' gradients with the optimizer's update of that
block) and a parallel step that runs phase 0 once per shard, then phase 1 once per block, through
one parallel loop: Numba compiles a parallel loop's body as a function of its own, about 0.5 s each."""

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


def _parameters(arguments: list[GradientArgument], update: BlockUpdate) -> tuple[list[str], list[str], str]:
    """The entry's parameters, the step's matching arguments, and the signature's source: (addresses...,
    phase, c, batch, shards, sizes..., hyperparameters...)."""
    sized = [a for a in arguments if not a.columns]
    params = [*[f"_p_{a.source}" for a in arguments], *[f"_p_{s}" for s in update.states],
              "_phase", "_c", "_batch", "_shards", *[f"_size_{a.source}" for a in sized], *update.hypers]
    # the prange index is unsigned; np.intp() keeps the helpers' one int64 compilation
    call = [*[f"data_pointer({a.source})" for a in arguments], *[f"data_pointer({s})" for s in update.states],
            "_phase", "np.intp(_c)", "x.shape[0]", "_s", *[a.size() for a in sized], *update.hypers]
    signature = (f"entry_signature({len(arguments) + len(update.states)}, {4 + len(sized)}, {len(update.hypers)})")
    return params, call, signature


def _entry(dtype: str, arguments: list[GradientArgument], body: list[str], update: BlockUpdate) -> list[str]:
    """Phase 0: shard _c's rows through ``body`` (the lines of ``gradients``) inline, on arrays rebuilt
    from their addresses (calling ``gradients`` would compile it, then generate its machine code again
    inside the entry); returns the shard's loss times its rows. Phase 1: grads[_c][_lo:_hi] ← the
    batch's gradient (``merge_shards``) and the optimizer on that block; returns 0."""
    params, _, _ = _parameters(arguments, update)
    theta = next(a for a in arguments if a.name == "theta")
    grads = next(a for a in arguments if a.per_shard and a.source == "grads")
    return [f"def _shard_entry_{dtype}({', '.join(params)}):",
            "    if _phase == 0:", "        _lo, _hi = shard_rows(_batch, _shards, _c)",
            *["        " + a.view(dtype) for a in arguments], *["        " + line for line in body],
            "        return loss * (_hi - _lo)",
            f"    _lo, _hi = parameter_block(_size_{theta.source}, _shards, _c)",
            "    " + theta.view(dtype),
            f"    grads = carray(_p_grads, (_shards, _size_{grads.source}), np.{dtype})",
            *[f"    {s} = carray(_p_{s}, (_size_{theta.source},), np.{dtype})" for s in update.states],
            "    merge_shards(grads, _batch, _c, _lo, _hi)", f"    {update.call}", "    return 0.0"]


def entry_source(kind: str, key: str, arguments: list[GradientArgument], body: list[str],
                 update: BlockUpdate) -> list[str]:
    """Module-level lines: per dtype, the Python function compiled into the C entry and the external
    function the parallel step calls it by, and ``register_shard_entry(dtype)``, which compiles (or
    loads) the entry and registers its symbol."""
    _, _, signature = _parameters(arguments, update)
    lines: list[str] = []
    for dtype in DTYPES:
        lines += ["", "", *_entry(dtype, arguments, body, update), "", "",
                  f"shard_entry_{dtype} = ExternalFunction({symbol(kind, key, dtype)!r}, {signature})"]
    symbols = {dtype: symbol(kind, key, dtype) for dtype in DTYPES}
    lines += ["", "", "def register_shard_entry(dtype):",
              '    """Compile (or load) the C entry of the sharded step for this dtype and register its symbol."""',
              f"    register_entry({symbols!r}[dtype], globals()['_shard_entry_' + dtype], {signature})"]
    return lines


def step_bodies(arguments: list[GradientArgument], update: BlockUpdate) -> dict[str, list[str]]:
    """dtype → body of that dtype's sharded step: phase 0 of the entry for each shard in its own thread
    with a single-threaded BLAS, then phase 1 for each parameter block; ``losses`` holds each shard's
    loss times its rows. The loop body only calls through a pointer: Numba generates machine code
    again for every function a parallel loop calls."""
    _, call, _ = _parameters(arguments, update)
    bodies = {}
    for dtype in DTYPES:
        bodies[dtype] = ["_threads = blas_threads()", "set_blas_threads(1)", "_s = grads.shape[0]",
                         "for _phase in range(2):  # one parallel loop run twice: 0 shards, then 1 blocks",
                         "    for _c in prange(_s):", f"        _v = shard_entry_{dtype}({', '.join(call)})",
                         "        if _phase == 0:", "            losses[_c] = _v",
                         "set_blas_threads(_threads)", "loss = 0.0",
                         "for _c in range(_s):  # not losses.sum(): one compilation less", "    loss += losses[_c]",
                         "loss = loss / x.shape[0]"]
    return bodies


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
