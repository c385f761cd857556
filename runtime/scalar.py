"""Scalar helpers that generated kernels call (inlined by Numba).

They take the kernel's dtype class ``dt`` so that float32 kernels stay float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _sigmoid(u, dt):  # type: ignore[no-untyped-def]
    """σ(u) = 1/(1 + e^{-u}): e^{-u} overflows to inf for u ≪ 0, giving the exact limit 0."""
    return dt(1) / (dt(1) + np.exp(-u))


@njit(cache=True, inline="always")
def _softplus(u, dt):  # type: ignore[no-untyped-def]
    """log(1 + e^{u}) = max(u, 0) + log1p(e^{-|u|}), which never overflows."""
    return max(u, dt(0)) + np.log1p(np.exp(-np.abs(u)))
