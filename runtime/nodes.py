"""Runtime helpers of network nodes that are sampling or bookkeeping, not math to derive:
dropout masks (000 §6.3) and batch norm's running averages (003 §8, used in evaluation)."""

from __future__ import annotations

import numpy as np
from numba import njit

#: SplitMix64's increment (2⁶⁴/φ) and its finaliser's multipliers (Steele, Lea and Flood, OOPSLA 2014)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(z):  # type: ignore[no-untyped-def]
    """SplitMix64's finaliser: a bijection of uint64 whose outputs on the counters k, k + G, k + 2G, ...
    form the SplitMix64 stream."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def sample_keep_mask(mask, p, seed, step, node, row0):  # type: ignore[no-untyped-def]
    """mask ← Bernoulli(1 − p) in {0, 1}: the b of y = x ⊙ b / (1 − p) (000 §6.3), drawn by counter, not
    from a generator's state: element (i, j) keeps when the top 53 bits of SplitMix64's output number
    (row0 + i)·columns + j, in the stream of (network ``seed``, training ``step``, dropout ``node``), are
    ≥ p·2⁵³. A mask is a function of those numbers alone, so it does not depend on what else was drawn
    before (another network, another thread), a shard of rows from ``row0`` on draws exactly the rows
    of the whole batch's mask, and a run resumed at a step draws the masks it would have drawn."""
    one, zero = mask.dtype.type(1), mask.dtype.type(0)
    key = _mix(_mix(_mix(np.uint64(seed) + _GOLDEN) ^ np.uint64(step)) ^ np.uint64(node))
    threshold = np.uint64(p * 9007199254740992.0)  # p · 2⁵³, p in [0, 1)
    columns = np.uint64(mask.shape[1])
    for i in range(mask.shape[0]):
        first = (np.uint64(row0) + np.uint64(i)) * columns
        for j in range(mask.shape[1]):
            drawn = _mix(key + (first + np.uint64(j) + np.uint64(1)) * _GOLDEN) >> np.uint64(11)
            mask[i, j] = one if drawn >= threshold else zero


@njit(cache=True)
def update_running_stats(x, mean, var, momentum):  # type: ignore[no-untyped-def]
    """M ← (1 − m) M + m · mean_batch(x), S ← (1 − m) S + m · var_batch(x), per feature."""
    n = x.shape[0]
    m = mean.dtype.type(momentum)
    for j in range(x.shape[1]):
        total = 0.0
        for i in range(n):
            total += x[i, j]
        mu = total / n
        sq = 0.0
        for i in range(n):
            sq += (x[i, j] - mu) * (x[i, j] - mu)
        mean[j] = (1 - m) * mean[j] + m * mean.dtype.type(mu)
        var[j] = (1 - m) * var[j] + m * var.dtype.type(sq / n)
