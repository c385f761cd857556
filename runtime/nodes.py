"""Runtime helpers of network nodes that are sampling or bookkeeping, not math to derive:
dropout masks (000 §6.3) and batch norm's running averages (003 §8, used in evaluation)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def seed_sampler(seed):  # type: ignore[no-untyped-def]
    """Seed Numba's own generator (separate from NumPy's), so dropout masks are reproducible."""
    np.random.seed(seed)


@njit(cache=True)
def sample_keep_mask(mask, p):  # type: ignore[no-untyped-def]
    """mask ← Bernoulli(1 − p) in {0, 1}: the b of y = x ⊙ b / (1 − p)."""
    one, zero = mask.dtype.type(1), mask.dtype.type(0)
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            mask[i, j] = one if np.random.random() >= p else zero


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
