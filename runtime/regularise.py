"""Gradient clipping (001 §10.1), max-norm weight normalisation (003 §6.2), learning-rate
decay (000 §7.3). Called from the fused training step; none of them is a derivative."""

from __future__ import annotations

import math

from numba import njit

from layergen.errors import LayergenError


@njit(cache=True)
def clip_by_value(g, limit):  # type: ignore[no-untyped-def]
    """g ← min(max(g, −c), c), element by element."""
    flat = g.reshape(-1)
    c = flat.dtype.type(limit)
    for i in range(flat.shape[0]):
        if flat[i] > c:
            flat[i] = c
        elif flat[i] < -c:
            flat[i] = -c


@njit(cache=True)
def add_into(target, addend):  # type: ignore[no-untyped-def]
    """target ← target + addend, element by element (a penalty's gradient added to the data term's)."""
    for i in range(target.shape[0]):
        target[i] += addend[i]


@njit(cache=True)
def weigh_and_clip_rows(g, weight, limit):  # type: ignore[no-untyped-def]
    """g_i ← weight · g_i · min(1, c / ‖g_i‖) for every row i: clipping by norm (001 §10.1) one
    sample at a time, so one sample's outsized gradient cannot swamp the batch; c ≤ 0 does not clip."""
    for i in range(g.shape[0]):
        norm = 0.0
        for j in range(g.shape[1]):
            norm += float(g[i, j]) * float(g[i, j])
        norm = math.sqrt(norm)
        factor = weight * (limit / norm if 0.0 < limit < norm else 1.0)
        for j in range(g.shape[1]):
            g[i, j] *= factor


@njit(cache=True)
def squared_norm(g):  # type: ignore[no-untyped-def]
    flat = g.reshape(-1)
    total = 0.0
    for i in range(flat.shape[0]):
        total += float(flat[i]) * float(flat[i])
    return total


@njit(cache=True)
def scale(g, factor):  # type: ignore[no-untyped-def]
    flat = g.reshape(-1)
    f = flat.dtype.type(factor)
    for i in range(flat.shape[0]):
        flat[i] *= f


@njit(cache=True)
def max_norm_columns(w, limit):  # type: ignore[no-untyped-def]
    """003 §6.2 with p = 2: each unit's incoming weights (a column of W) rescaled to norm ℓ
    when N = ‖w_{·j}‖ exceeds ℓ."""
    for j in range(w.shape[1]):
        total = 0.0
        for i in range(w.shape[0]):
            total += float(w[i, j]) * float(w[i, j])
        norm = math.sqrt(total)
        if norm > limit:
            factor = w.dtype.type(limit / norm)
            for i in range(w.shape[0]):
                w[i, j] *= factor


SCHEDULES = ("constant", "inverse_time", "exponential", "inverse_sqrt")


def learning_rate(schedule: str, lr0: float, decay: float, epoch: int) -> float:
    """000 §7.3 with n_e the epoch (from 1): α₀/(1 + d n_e), α₀·0.95^{n_e}, α₀ d/√n_e."""
    n_e = epoch + 1
    if schedule == "constant":
        return lr0
    if schedule == "inverse_time":
        return lr0 / (1.0 + decay * n_e)
    if schedule == "exponential":
        return lr0 * 0.95**n_e
    if schedule == "inverse_sqrt":
        return lr0 * decay / math.sqrt(n_e)
    raise LayergenError(f"schedule: unknown {schedule!r}; valid: {', '.join(SCHEDULES)}")


