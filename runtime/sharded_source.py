"""Generated source of the sharded training step (``layergen.runtime.sharded``), shared by the
network and flow modules: per dtype, a C entry point of ``gradients`` and a parallel step that
calls it once per shard, then merges the gradients and updates the parameters block-wise."""

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


def symbol(kind: str, key: str, dtype: str) -> str:
    return f"layergen_{kind}_{key}_gradients_{dtype}"


def entry_source(kind: str, key: str, arguments: list[GradientArgument], body: list[str]) -> list[str]:
    """Module-level lines: per dtype, the Python function compiled into the C entry (it rebuilds
    the arrays from their addresses with ``carray`` and runs ``body``, the lines of ``gradients``,
    inline: calling ``gradients`` would compile it, then generate its machine code again inside the
    entry), the external function the parallel step calls, and ``register_shard_entry(dtype)``,
    which compiles (or loads) the entry and registers its symbol."""
    flat = [a for a in arguments if not a.columns]
    params = [f"_p_{a.name}" for a in arguments] + ["_rows"] + [f"_len_{a.name}" for a in flat]
    signature = f"entry_signature({len(arguments)}, {1 + len(flat)})"
    lines: list[str] = []
    for dtype in DTYPES:
        views = [f"    {a.name} = carray(_p_{a.name}, (_rows, {a.columns}), np.{dtype})" if a.columns
                 else f"    {a.name} = carray(_p_{a.name}, (_len_{a.name},), np.{dtype})" for a in arguments]
        lines += ["", "", f"def _gradients_entry_{dtype}({', '.join(params)}):", *views,
                  *["    " + line for line in body], "    return loss", "",
                  f"gradients_entry_{dtype} = ExternalFunction({symbol(kind, key, dtype)!r}, {signature})"]
    symbols = {dtype: symbol(kind, key, dtype) for dtype in DTYPES}
    lines += ["", "", "def register_shard_entry(dtype):",
              '    """Compile (or load) the C entry of `gradients` for this dtype and register its symbol."""',
              f"    register_entry({symbols!r}[dtype], globals()['_gradients_entry_' + dtype], {signature})"]
    return lines


def step_bodies(arguments: list[GradientArgument], update: list[str]) -> dict[str, list[str]]:
    """dtype → body of that dtype's sharded step: each shard's ``gradients`` through the C entry in
    its own thread with a single-threaded BLAS, then per thread the merge of one block of the
    gradient and ``update`` on it; ``losses`` holds each shard's loss times its rows."""
    pointers = [f"data_pointer({a.expression})" for a in arguments]
    sizes = ["_hi - _lo"] + [a.length for a in arguments if not a.columns]
    bodies = {}
    for dtype in DTYPES:
        call = f"gradients_entry_{dtype}({', '.join(pointers + sizes)})"
        bodies[dtype] = ["_threads = blas_threads()", "set_blas_threads(1)", "_n = x.shape[0]", "_s = grads.shape[0]",
                         "for _c in prange(_s):", "    _lo, _hi = shard_rows(_n, _s, _c)",
                         f"    losses[_c] = {call} * (_hi - _lo)",
                         "for _c in prange(_s):", "    _lo, _hi = parameter_block(theta.shape[0], _s, _c)",
                         "    merge_shards(grads, _n, _lo, _hi)", *["    " + line for line in update],
                         "set_blas_threads(_threads)", "loss = losses.sum() / _n"]
    return bodies
