"""Column bookkeeping of coupling layers: copies and the fan-out sum of the identity path.
No math to derive here: which columns a coupling keeps, and ∂L/∂u = ∂L/∂u' + conditioner's
contribution where u feeds both the unchanged output columns and the conditioner."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def copy_all(src, dst):  # type: ignore[no-untyped-def]
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def copy_columns(src, start, dst):  # type: ignore[no-untyped-def]
    """dst ← src[:, start::2] (dst contiguous, for BLAS)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, start + 2 * j]


@njit(cache=True)
def add_columns(upstream, local, start, out):  # type: ignore[no-untyped-def]
    """out[:, start::2] ← upstream[:, start::2] + local: the two paths out of the kept columns."""
    for i in range(local.shape[0]):
        for j in range(local.shape[1]):
            out[i, start + 2 * j] = upstream[i, start + 2 * j] + local[i, j]
