"""Runtime helpers of network nodes that are sampling or bookkeeping, not math to derive:
dropout masks (000 §6.3) and batch norm's running averages (003 §8, used in evaluation)."""

from __future__ import annotations

import numpy as np
from numba import njit

from layergen.errors import LayergenError


@njit(cache=True)
def seed_sampler(seed):  # type: ignore[no-untyped-def]
    """Seed Numba's own generator (separate from NumPy's), so dropout masks are reproducible."""
    np.random.seed(seed)


def sampler_state() -> np.ndarray:
    """The state of Numba's generator on this thread, which dropout's masks draw from: its position
    then its 624 Mersenne Twister words, as one uint32 array for a checkpoint (``set_sampler_state``
    restores it, so a resumed run draws the masks the uninterrupted run would have drawn). Numba
    exposes the state only through ``numba._helperlib``, which its own tests of the generator use."""
    from numba import _helperlib

    position, words = _helperlib.rnd_get_state(_helperlib.rnd_get_np_state_ptr())
    return np.array([position, *words], dtype=np.uint32)


def set_sampler_state(state: np.ndarray) -> None:
    """Restore a state from ``sampler_state``."""
    from numba import _helperlib

    if state.shape != (625,) or state.dtype != np.uint32 or not state[0] <= 624:
        raise LayergenError(f"checkpoint: rng/dropout must be Numba's generator state, 625 uint32 words with a "
                            f"position ≤ 624 first; got shape {state.shape}, dtype {state.dtype}")
    _helperlib.rnd_set_state(_helperlib.rnd_get_np_state_ptr(), (int(state[0]), [int(w) for w in state[1:]]))


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
