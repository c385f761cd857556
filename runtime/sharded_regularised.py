"""Generated source of the regularised sharded step: the sharded step (``layergen.runtime.sharded``) with
the weight penalties λ₂/(2m) Σ‖W‖² (000 eq. 11) and λ₁ Σ|W| (003 §6.1), gradient clipping by value and by
the global norm (001 §10.1) and max-norm (003 §6.2), in the order of the serial regularised step
(``layergen.runtime.fused``): penalties, clipping by value, clipping by norm, update, max-norm.

Why a step of its own: a weight penalty or clipping used to send every step to the whole-batch path, 1.4–1.9×
slower at batch 128 and 1.6× at batch 1024 (float32, the benchmark's MLP). Here phase 0 is the sharded
step's (each shard's forward, loss and backward), and phase 1 runs in this module's task entry, one block of
the parameter vector per thread: the merge, then, on the block's own elements, everything that is
elementwise. Each regulariser acts on the block alone, except two:

- clipping by norm needs the norm of the whole gradient. Phase 1 then stops after the block's sum of
  squares (into the losses' block), the step adds the blocks' sums and runs the entry a second time
  (``_stage`` 1), which scales the block and updates it;
- max-norm rescales each column of a weight matrix, whose elements lie in both blocks. The step runs it
  after the threads, as the serial step does.

The entries read the penalties' λ₂, λ₁, m and the clipping limits from the data block's floats
(``sharded_source.REGULARISATION_FLOATS``) and write each block's penalty and sum of squares after the
shards' losses: ``losses`` holds 3 × shards numbers."""

from __future__ import annotations

import numpy as np

from layergen.runtime.layout import offsets
from layergen.runtime.sharded_source import (
    DTYPES, REGULARISATION_FLOATS, BlockUpdate, GradientArgument, data_block, data_block_fill, symbol,
    update_preamble)

#: the regularised step's arguments after the sharded step's
REGULARISED_ARGUMENTS = ("penalty", "l2", "l1", "examples", "clip_value", "clip_norm", "max_norm")


def weight_ranges(update: BlockUpdate, dtype: str) -> tuple[tuple[int, int], ...]:
    """The elements [start, end) of each penalised weight in the parameter vector of this dtype (its
    layout aligns each parameter to 64 bytes, so the offsets differ between dtypes)."""
    starts, _ = offsets(update.trainable, 0, np.dtype(dtype).itemsize)
    return tuple((start, start + slot.count(0)) for slot, start in zip(update.trainable, starts)
                 if slot.name in update.weights)


def regularised_entry(dtype: str, arguments: list[GradientArgument], update: BlockUpdate) -> list[str]:
    """The phase-1 task entry ``_shard_update_regularised_<dtype>`` for block ``_c``. Stage 0: the merge,
    each penalty's gradient (its spec's generated ``loss_grad``, into ``penalty``, then added) on the
    block's part of each weight, the block's penalty into ``_sums[shards + c]``, clipping by value; then,
    without clipping by norm, the update; with it, the block's sum of squares into ``_sums[2 shards + c]``
    and no update. Stage 1: the block scaled by ``_clip_factor`` (when above 0), then the update."""
    ranges = weight_ranges(update, dtype)
    weights = ", ".join(update.weights)
    return [f"def _shard_update_regularised_{dtype}(_c, _data):",
            *update_preamble(dtype, arguments, update, regularised=True),
            "    if _stage == 0.0:",
            "        merge_shards(grads, _batch, _c, _lo, _hi)",
            "        _penalty = 0.0",
            f"        for _start, _end in {ranges!r}:  # {weights}; 000 eq. 11, 003 §6.1",
            "            _s, _e = max(_start, _lo), min(_end, _hi)",
            "            if _s < _e:",
            "                if l2 > 0:",
            "                    _penalty += k_l2_penalty.loss_grad(theta[_s:_e], penalty[_s:_e], l2, examples)",
            "                    add_into(grads[_c][_s:_e], penalty[_s:_e])",
            "                if l1 > 0:",
            "                    _penalty += k_l1_penalty.loss_grad(theta[_s:_e], penalty[_s:_e], l1)",
            "                    add_into(grads[_c][_s:_e], penalty[_s:_e])",
            "        _sums[_shards + _c] = _penalty",
            "        if clip_value > 0:  # 001 §10.1, by value",
            "            clip_by_value(grads[_c][_lo:_hi], clip_value)",
            "        if clip_norm > 0:  # the step needs every block's sum of squares before any update",
            "            _sums[2 * _shards + _c] = squared_norm(grads[_c][_lo:_hi])",
            "            return",
            "    elif _clip_factor > 0:  # 001 §10.1, by the global norm",
            "        scale(grads[_c][_lo:_hi], _clip_factor)",
            f"    {update.call}"]


def regularised_entries(arguments: list[GradientArgument], update: BlockUpdate) -> list[str]:
    """Module-level lines: the regularised phase-1 entry of each dtype."""
    lines: list[str] = []
    for dtype in DTYPES:
        lines += ["", "", *regularised_entry(dtype, arguments, update)]
    return lines


def regularised_step_bodies(kind: str, key: str, arguments: list[GradientArgument], update: BlockUpdate,
                            max_norm: list[str]) -> dict[str, list[str]]:
    """dtype → body of the regularised sharded step, whose arguments are the sharded step's and then
    ``REGULARISED_ARGUMENTS``; ``max_norm``: the lines applying max-norm to ``theta`` (003 §6.2), shared with
    the serial regularised step."""
    names, _, _ = data_block(arguments, update)
    at = {name: len(update.hypers) + i for i, name in enumerate(REGULARISATION_FLOATS)}
    bodies = {}
    for dtype in DTYPES:
        bodies[dtype] = [
            "_threads = blas_threads()", "set_blas_threads(1)", "_s = grads.shape[0]",
            *data_block_fill(arguments, update), f"task_data[{len(names) - 1}] = array_address(penalty)",
            *[f"task_floats[{at[name]}] = {name}" for name in REGULARISATION_FLOATS if not name.startswith("_")],
            f"task_floats[{at['_clip_factor']}] = 0.0", f"task_floats[{at['_stage']}] = 0.0",
            f"task_data[0] = function_address({symbol(kind, key, dtype, 'gradients')!r})  # a task per shard",
            "run_tasks(launch, task_data)",
            f"task_data[0] = function_address({symbol(kind, key, dtype, 'regularised')!r})  # a task per block",
            "run_tasks(launch, task_data)",
            "if clip_norm > 0:  # 001 §10.1: the global norm from the blocks' sums of squares, then stage 1",
            "    _total = 0.0",
            "    for _c in range(_s):", "        _total += losses[2 * _s + _c]",
            "    if _total > clip_norm * clip_norm:", f"        task_floats[{at['_clip_factor']}] = clip_norm / np.sqrt(_total)",
            f"    task_floats[{at['_stage']}] = 1.0", "    run_tasks(launch, task_data)",
            "set_blas_threads(_threads)", "loss = 0.0",
            "for _c in range(_s):", "    loss += losses[_c]", "loss = loss / x.shape[0]",
            "for _c in range(_s):  # the penalties, block by block", "    loss += losses[_s + _c]",
            *max_norm]
    return bodies
