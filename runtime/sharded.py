"""Helpers of the sharded training step: the batch split into shards, one per Numba thread.

The loss of every network and flow of the catalog is a batch mean, L = (1/N) Σ_i ℓ_i (003 §2;
000 eq. 73 for a flow's NLL), and with no layer coupling the samples (no batch norm, no dropout
mask drawn from a shared generator) its gradient splits over any partition of the batch into
shards S_c of n_c rows:

    ∂L/∂θ = Σ_c (n_c / N) · ∂L_c/∂θ,    L_c = (1/n_c) Σ_{i ∈ S_c} ℓ_i.

Each shard runs the architecture's generated ``gradients`` function (forward, loss, backward) in
its own thread with a single-threaded BLAS and its own buffers; then each thread merges one block
of the parameter vector (the weighted sum above) and applies the optimizer's elementwise update
to that block. Why: on a few cores, a multithreaded BLAS splits each small product across the
cores and synchronises once per product (dozens per step), and the elementwise work between
products reads what the other core wrote; a shard keeps its whole forward and backward pass on
one core, with two synchronisations per step.

The shard count is fixed per network (not the machine's core count), so a seeded run gives the
same numbers on any machine; with fewer Numba threads than shards the shards just run in turn.

Why the shards call ``gradients`` through a C entry point (``register_entry``) and not directly:
Numba links a called function's LLVM module into its caller and generates machine code for it
again, and a parallel loop's body is a caller of its own. A direct call made the sharded step
compile longer than ``gradients`` itself (9 s against 8 s for the two-moons flow). Through a
``cfunc`` whose address is registered under a symbol name, the parallel loop calls a pointer; the
``cfunc`` is compiled once and cached, and the symbol name keeps the step cacheable too (see
``layergen.runtime.blas`` for the same device)."""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.binding as llvm
import numpy as np
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: parameter blocks start on multiples of this many elements (64 bytes of float32)
BLOCK_ALIGN = 16


@njit(cache=True)
def shard_rows(n: int, shards: int, c: int) -> tuple[int, int]:
    """Rows [lo, hi) of shard c of a batch of n: contiguous, sizes differing by at most one."""
    return c * n // shards, (c + 1) * n // shards


@njit(cache=True)
def parameter_block(size: int, shards: int, c: int) -> tuple[int, int]:
    """Elements [lo, hi) of the parameter vector that thread c merges and updates."""
    per = -(-size // (shards * BLOCK_ALIGN)) * BLOCK_ALIGN
    return min(c * per, size), min((c + 1) * per, size)


@njit(cache=True, error_model="numpy")
def merge_shards(grads: np.ndarray, n: int, lo: int, hi: int) -> None:
    """grads[0, lo:hi] ← Σ_c (n_c / n) · grads[c, lo:hi]: the whole batch's gradient of the mean loss."""
    shards = grads.shape[0]
    first, last = shard_rows(n, shards, 0)
    w0 = grads.dtype.type((last - first) / n)
    for i in range(lo, hi):
        grads[0, i] *= w0
    for c in range(1, shards):
        first, last = shard_rows(n, shards, c)
        w = grads.dtype.type((last - first) / n)
        for i in range(lo, hi):
            grads[0, i] += w * grads[c, i]


@intrinsic
def data_pointer(typingctx, array):  # type: ignore[no-untyped-def]
    """The address of a C-contiguous array's first element, as ``void*`` for a C entry point."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(array)(context, builder, args[0]).data
        return builder.bitcast(data, cgutils.voidptr_t)

    return types.voidptr(array), codegen


def entry_signature(arrays: int, sizes: int) -> types.Signature:
    """float64(void* × arrays, intp × sizes): a shard's C entry (array addresses, then row count and lengths)."""
    return types.float64(*([types.voidptr] * arrays), *([types.intp] * sizes))


_registered: dict[str, object] = {}  # symbol → its compiled cfunc, kept alive for the process


def register_entry(symbol: str, function: Callable[..., float], signature: types.Signature) -> None:
    """Compile (or load from Numba's cache) ``function`` as a C entry point and register its address
    under ``symbol``, once per process; a sharded step calling ``symbol`` can then be compiled or
    loaded from its cache."""
    if symbol not in _registered:
        entry = cfunc(signature, cache=True, error_model="numpy")(function)
        llvm.add_symbol(symbol, entry.address)
        _registered[symbol] = entry
