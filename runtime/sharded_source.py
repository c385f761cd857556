"""Generated source of the sharded training step (``layergen.runtime.sharded``), shared by the
network and flow modules: per dtype, two C entry points (a shard's ``gradients``; the merge of one
block of the shards' gradients with the optimizer's update of that block) and a parallel step that
calls the first once per shard, then the second once per parameter block."""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class GradientArgument:
    """An argument of the module's ``gradients``: its name there, its expression in the sharded step
    (``x[_lo:_hi]``, ``grads[_c]``, ...), and ``columns`` for a per-sample 2-D array (rows = the shard's),
    else ``length``, the expression of its 1-D length in the step."""

    name: str
    expression: str
    columns: int = 0
    length: str = ""


@dataclass(frozen=True)
class BlockUpdate:
    """The optimizer's update of the parameter block ``_lo:_hi``: the names of its state buffers and
    hyperparameters (as in the step's arguments) and ``call``, the update of that block from the merged
    gradient in thread ``_c``'s own buffer, ``grads[_c, _lo:_hi]``, e.g.
    ``opt_step(theta[_lo:_hi], grads[_c, _lo:_hi], state_m[_lo:_hi], ...)``."""

    states: tuple[str, ...]
    hypers: tuple[str, ...]
    call: str


#: the integer arguments of the update entry, after the array addresses
UPDATE_SIZES = ("_size", "_shards", "_stride", "_n", "_c", "_lo", "_hi")


def symbol(kind: str, key: str, part: str, dtype: str) -> str:
    return f"layergen_{kind}_{key}_{part}_{dtype}"


def _gradients_entry(dtype: str, arguments: list[GradientArgument], body: list[str]) -> list[str]:
    """A shard's forward, loss and backward: ``body`` (the lines of ``gradients``) inline, on arrays
    rebuilt from their addresses; calling ``gradients`` would compile it, then generate its machine code
    again inside the entry."""
    flat = [a for a in arguments if not a.columns]
    params = [f"_p_{a.name}" for a in arguments] + ["_rows"] + [f"_len_{a.name}" for a in flat]
    views = [f"    {a.name} = carray(_p_{a.name}, (_rows, {a.columns}), np.{dtype})" if a.columns
             else f"    {a.name} = carray(_p_{a.name}, (_len_{a.name},), np.{dtype})" for a in arguments]
    return [f"def _gradients_entry_{dtype}({', '.join(params)}):", *views, *["    " + line for line in body],
            "    return loss"]


def _update_entry(dtype: str, update: BlockUpdate) -> list[str]:
    """grads[_c, _lo:_hi] ← the batch's gradient (``merge_shards``), then the optimizer on that block."""
    arrays = ["theta", *update.states]
    params = ["_p_theta", "_p_grads", *[f"_p_{s}" for s in update.states], *UPDATE_SIZES, *update.hypers]
    return [f"def _update_entry_{dtype}({', '.join(params)}):",
            *[f"    {a} = carray(_p_{a}, (_size,), np.{dtype})" for a in arrays],
            f"    grads = carray(_p_grads, (_shards, _stride), np.{dtype})",
            "    merge_shards(grads, _n, _c, _lo, _hi)", f"    {update.call}", "    return 0.0"]


def _signatures(arguments: list[GradientArgument], update: BlockUpdate) -> dict[str, str]:
    """part → the source of its entry's signature (``entry_signature(addresses, sizes, floats)``)."""
    flat = [a for a in arguments if not a.columns]
    return {"gradients": f"entry_signature({len(arguments)}, {1 + len(flat)})",
            "update": f"entry_signature({2 + len(update.states)}, {len(UPDATE_SIZES)}, {len(update.hypers)})"}


def entry_source(kind: str, key: str, arguments: list[GradientArgument], body: list[str],
                 update: BlockUpdate) -> list[str]:
    """Module-level lines: per dtype, the Python functions compiled into the two C entries and the
    external functions the parallel step calls them by, and ``register_shard_entry(dtype)``, which
    compiles (or loads) both entries and registers their symbols."""
    signatures = _signatures(arguments, update)
    lines: list[str] = []
    for dtype in DTYPES:
        for part, function in (("gradients", _gradients_entry(dtype, arguments, body)),
                               ("update", _update_entry(dtype, update))):
            lines += ["", "", *function, "", "",
                      f"{part}_entry_{dtype} = ExternalFunction({symbol(kind, key, part, dtype)!r}, {signatures[part]})"]
    symbols = {part: {dtype: symbol(kind, key, part, dtype) for dtype in DTYPES} for part in signatures}
    lines += ["", "", "def register_shard_entry(dtype):",
              '    """Compile (or load) the C entries of the sharded step for this dtype and register their symbols."""']
    lines += [f"    register_entry({symbols[part]!r}[dtype], globals()['_{part}_entry_' + dtype], {signature})"
              for part, signature in signatures.items()]
    return lines


def step_bodies(arguments: list[GradientArgument], update: BlockUpdate) -> dict[str, list[str]]:
    """dtype → body of that dtype's sharded step: each shard's ``gradients`` through its C entry in its
    own thread with a single-threaded BLAS, then per thread the merge and update of one parameter block
    through the other; ``losses`` holds each shard's loss times its rows. The loop bodies only call
    through pointers: Numba generates machine code again for every function a parallel loop calls."""
    pointers = [f"data_pointer({a.expression})" for a in arguments]
    sizes = ["_hi - _lo"] + [a.length for a in arguments if not a.columns]
    block = ["data_pointer(theta)", "data_pointer(grads)", *[f"data_pointer({s})" for s in update.states],
             "theta.shape[0]", "_s", "grads.shape[1]", "_n", "np.intp(_c)", "_lo", "_hi", *update.hypers]
    bodies = {}
    for dtype in DTYPES:
        # the prange index is unsigned; np.intp() keeps the helpers' one int64 compilation
        bodies[dtype] = ["_threads = blas_threads()", "set_blas_threads(1)", "_n = x.shape[0]", "_s = grads.shape[0]",
                         "for _c in prange(_s):", "    _lo, _hi = shard_rows(_n, _s, np.intp(_c))",
                         f"    losses[_c] = gradients_entry_{dtype}({', '.join(pointers + sizes)}) * (_hi - _lo)",
                         "for _c in prange(_s):", "    _lo, _hi = parameter_block(theta.shape[0], _s, np.intp(_c))",
                         f"    update_entry_{dtype}({', '.join(block)})",
                         "set_blas_threads(_threads)", "loss = 0.0", "for _c in range(_s):  # not losses.sum(): one compilation less",
                         "    loss += losses[_c]", "loss = loss / _n"]
    return bodies
