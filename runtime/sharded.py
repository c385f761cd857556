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
same numbers on any machine; with fewer Numba threads than shards the shards just run in turn."""

from __future__ import annotations

import numpy as np
from numba import njit

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
