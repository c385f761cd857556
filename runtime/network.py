"""Sequential networks assembled from generated kernels, with one fused training step.

The runtime adds no math of its own: every forward map, VJP, loss gradient and optimizer
update is a generated, verified kernel. ``layergen.runtime.fused`` writes one module per
architecture (``train_step``, ``train_step_regularised`` and ``predict``, each one ``@njit`` call) into the cache folder
and imports it by path, so Numba's cache makes the second run warm. The chain rule of the
composition is the only thing the runtime contributes (003 §3-4).
"""

from __future__ import annotations

from contextlib import nullcontext
from types import MappingProxyType

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime import compile_ahead
from layergen.runtime.architecture import Architecture, optimizer_hypers_with, optimizer_state_names, param_specs
from layergen.runtime.blas import single_threaded_blas
from layergen.runtime.compile_ahead import njit_job
from layergen.runtime.fused import build_module, draws_masks, shardable
from layergen.runtime.initialise import initialise, parameter_shapes
from layergen.runtime.layout import allocate
from layergen.runtime.node_calls import planned_layout
from layergen.runtime.sharded import SHARDS, ShardBuffers, ShardedGradients

__all__ = ["Architecture", "Network", "initialise", "parameter_shapes"]

#: The most samples `Network.predict` runs through at once (its work buffer's rows). Why 1024 and not 4096:
#: a block's activations then stay nearer the cache. MLP 64-128-128-10 on 200 000 rows (medians of 9
#: interleaved calls, both cores): a sharded network 75.4 against 87.0 ms (float32) and 153.4 against 233.2 ms
#: (float64), blocks of 256 rows about as fast; a network on one shard (a two-thread BLAS) 82.1 against 89.9
#: and 163.1 against 243.0 ms, where blocks of 256 were slower; at 2000 to 5000 rows within noise.
PREDICT_ROWS = 1024


class Network(ShardedGradients):
    """Parameters, optimizer state and buffers of one architecture; ``step`` and ``predict``.

    ``params``, ``grads`` and ``state`` map names to views into flat buffers (see
    ``layergen.runtime.layout``); they are read-only mappings, so new values are written into
    the views (``net.params["W0"][...] = value``), never rebound.
    """

    def __init__(self, arch: Architecture, dtype: type = np.float32, seed: int = 0, init: str = "he",
                 optimizer_hypers: dict[str, float] | None = None, shards: int = SHARDS) -> None:
        self.arch = arch
        # the data's shape, checked on every step: held here, since arch.sizes parses the layer list
        self._inputs, self._targets, self._outputs = arch.inputs, arch.targets, arch.sizes[-1]
        self.dtype = np.dtype(dtype).type
        self.module = build_module(arch)
        self.specs = param_specs(arch)
        self.layout = planned_layout(arch)
        self.theta, trainable = allocate(self.layout.trainable, self.dtype)
        self.fixed, fixed = allocate(self.layout.fixed, self.dtype)
        #: the sharded step's buffers (``layergen.runtime.sharded``); ``shards`` is 1 where it does not apply
        self._shards = ShardBuffers(self.module, self.layout.trainable, self.layout.work, self.dtype, shards,
                                    shardable(arch))
        self.shards = self._shards.count
        # a cold start's helper compiles it while this process compiles the first step (sharded or not)
        row, work = np.zeros((1, arch.inputs), self.dtype), allocate(self.layout.work, self.dtype, 1)[0]
        self._shards.later = [njit_job("predict", (row, self.theta, self.fixed, work))]
        grads = self._shards.grad_views
        self._state_names = optimizer_state_names(arch)
        self._state_flat = [allocate(self.layout.trainable, self.dtype) for _ in self._state_names]
        self._states = tuple(flat for flat, _ in self._state_flat)  # the step's arguments, built once
        views = {**trainable, **fixed}
        for name, value in initialise(arch, seed, self.dtype, init).items():
            views[name][...] = value
        self.params = MappingProxyType({p.name: views[p.name] for p in self.specs})
        self._grads = MappingProxyType(grads)
        self.state = MappingProxyType({f"{s}_{p}": view for s, (_, named) in zip(self._state_names, self._state_flat)
                                       for p, view in named.items()})
        self.hypers = optimizer_hypers_with(arch, optimizer_hypers or {})
        self.step_count = 0
        self._work: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._evaluation_work: dict[tuple[int, int], np.ndarray] = {}
        self._step_plans: dict[int, tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None]] = {}
        self._np_dtype = np.dtype(self.dtype)
        #: dropout's masks are numbered by (seed, step, node, element): ``nodes.sample_keep_mask``
        self.draws_masks = draws_masks(arch)
        self._seed = seed
        self._hyper_values = self._step_scalars()
        self._t_index = list(self.hypers).index("t") if "t" in self.hypers else None
        self.clip_value = 0.0  # 0 turns each off
        self.clip_norm = 0.0
        self.max_norm = 0.0
        #: weight penalties λ₂/(2m) Σ‖W‖² (000 eq. 11) and λ₁ Σ|W| (003 §6.1); m, ``penalty_examples``, is
        #: the number of training examples (``train`` sets it)
        self.l2 = 0.0
        self.l1 = 0.0
        self.penalty_examples = 1
        self._penalty, _ = allocate(self.layout.trainable, self.dtype)  # their gradients, before being added

    def _work_for(self, batch: int) -> np.ndarray:
        if batch not in self._work:  # once per distinct batch size, never per step
            self._work[batch] = allocate(self.layout.work, self.dtype, batch)
        return self._work[batch][0]

    def sharded(self, batch: int) -> bool:
        """Whether a training step on this batch size splits it into shards."""
        return self._shards.applies(batch)

    def _buffers_for(self, batch: int) -> dict[str, np.ndarray]:
        """Node outputs, their gradients and dropout masks of the last step at this batch size."""
        self._work_for(batch)
        return self._work[batch][1]

    def _check_batch(self, where: str, x: np.ndarray, target: np.ndarray | None = None) -> None:
        """A clear error for a batch of the wrong shape: the sharded step reads the data by address, in the
        shape the architecture declares, and would read past a smaller array."""
        inputs, targets = self._inputs, self._targets
        if x.ndim != 2 or x.shape[1] != inputs or x.shape[0] == 0:
            raise LayergenError(f"{where}: x must have shape (n, {inputs}) with n ≥ 1 (the network's inputs); "
                                f"got {x.shape}")
        if target is not None and target.shape != (x.shape[0], targets):
            raise LayergenError(f"{where}: target must have shape ({x.shape[0]}, {targets}), one row of the "
                                f"loss's {targets} targets per row of x; got {target.shape}")
        name = self._np_dtype.name
        for label, array in (("x", x), ("target", target)):
            if array is not None and array.dtype != self._np_dtype:
                # converting here would allocate on every step; the caller converts once per dataset
                raise LayergenError(f"{where}: {label} is {array.dtype.name}, but the network computes in {name}; "
                                    f"convert the data once with .astype(np.{name})")

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        """One training step on a batch; returns the loss before the update."""
        dtype = self._np_dtype
        if (x.ndim != 2 or x.shape[1] != self._inputs or target.shape != (x.shape[0], self._targets) or x.shape[0] == 0
                or x.dtype != dtype or target.dtype != dtype):
            self._check_batch("step", x, target)
        self.step_count += 1
        hypers = self._hyper_values
        if self._t_index is not None:  # Adam's bias correction needs the step number
            hypers[self._t_index] = float(self.step_count)
        if self.draws_masks:  # and so does the numbering of dropout's masks
            hypers[-1] = float(self.step_count)
        batch = x.shape[0]
        plan = self._step_plans.get(batch)
        if plan is None:
            plan = self._step_plans[batch] = self._step_plan(batch)
            if plan[1] is None:  # a whole-batch step: on a cold start a helper compiles predict meanwhile
                self._shards.compile_later_ahead()
        serial_args, sharded_args = plan
        sharded = sharded_args is not None and x.flags.c_contiguous and target.flags.c_contiguous  # dtypes checked
        # a weight penalty, clipping or max-norm: the regularised steps (tested inline, not through a property,
        # whose call would add its overhead to every step)
        if self.clip_value > 0 or self.clip_norm > 0 or self.max_norm > 0 or self.l2 > 0 or self.l1 > 0:
            regularisers = (self._penalty, self.l2, self.l1, float(self.penalty_examples), self.clip_value,
                            self.clip_norm, self.max_norm)
            if sharded:
                return self._shards.run_regularised(x, target, *sharded_args, *hypers, *regularisers)
            self._shards.whole_batch_follows()
            return float(self.module.train_step_regularised(x, target, *serial_args, *hypers, *regularisers))
        if sharded:
            return self._shards.run(x, target, *sharded_args, *hypers)
        self._shards.whole_batch_follows()
        return float(self.module.train_step(x, target, *serial_args, *hypers))

    def _step_plan(self, batch: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None]:
        """The arrays a step on this batch size passes after the data: those of the whole-batch steps, and
        those of the sharded step where it applies (else None). Built once per batch size, so a step finds
        them by one dictionary lookup: 0.54 µs of Python per call, against 0.93 µs assembling them."""
        serial = (self.theta, self.fixed, self._shards.grads[0], *self._states, self._work_for(batch))
        shards = self._shards
        sharded = ((self.theta, self.fixed, shards.grads, *self._states, shards.work_for(batch), *shards.tasks)
                   if shards.applies(batch) else None)
        return serial, sharded

    def warm_up(self, batch: int) -> None:
        """Compile (or load from Numba's cache) the training step that a batch of this size takes, with the
        regularisers as set, and ``predict``, so that timed training excludes compilation: one step with
        lr = 0 on zeros, after which every parameter, the optimizer's state, batch norm's running averages
        and the step count (which numbers dropout's masks) are as they were (the gradients are scratch)."""
        saved = [a.copy() for a in (self.theta, self.fixed, *self._states)], self.step_count, self.hypers["lr"]
        zeros = np.zeros((batch, self._inputs), self.dtype)
        self.set_learning_rate(0.0)
        try:
            self.step(zeros, np.zeros((batch, self._targets), self.dtype))
            self.predict(zeros[:1])
        finally:
            for array, copy in zip((self.theta, self.fixed, *self._states), saved[0]):
                array[...] = copy
            self.step_count = saved[1]
            self.set_learning_rate(saved[2])

    def _step_scalars(self) -> list[float]:
        """The floats a step takes after its arrays: the optimizer's hyperparameters, then with dropout the
        network's seed and the step number (``node_calls.DROPOUT_ARGUMENTS``)."""
        dropout = [float(self._seed), float(self.step_count)] if self.draws_masks else []
        return [float(v) for v in self.hypers.values()] + dropout

    def set_learning_rate(self, lr: float) -> None:
        self.hypers["lr"] = lr
        self._hyper_values = self._step_scalars()
        if self._t_index is not None:
            self._hyper_values[self._t_index] = float(self.step_count)

    def predict(self, x: np.ndarray, rows: int = PREDICT_ROWS) -> np.ndarray:
        """Evaluation mode: dropout is the identity, batch norm uses its running averages. ``x`` is converted
        to the network's dtype if it has another (once per call; ``step`` asks the caller to convert). Runs
        over blocks of at most ``rows`` samples in one work buffer, so memory stays bounded for any input and
        a shorter input allocates no new buffer (its layout fits in the buffer of a longer one). A sharded
        network (from ``TWO_CORE_ROWS`` rows) deals the blocks to one thread per shard, each with a work
        buffer of its own (``in_evaluation_threads``)."""
        x = np.asarray(x, dtype=self._np_dtype)
        self._check_batch("predict", x)
        if not (isinstance(rows, int) and rows > 0):
            raise LayergenError(f"predict: rows must be a positive integer, got {rows!r}")
        out = np.empty((len(x), self._outputs), self._np_dtype)
        compile_ahead.wait_for(self.module, "predict")  # a cold start's helper may be compiling it
        if self.sharded(len(x)):  # one worker thread per shard, each with its own work buffer

            def run_block(work: np.ndarray, start: int, stop: int) -> None:
                out[start:stop] = self.module.predict(x[start:stop], self.theta, self.fixed, work)

            self.in_evaluation_threads(len(x), rows, run_block)
            return out
        needed = min(len(x), rows)
        fitting = [batch for batch in self._work if batch >= needed]  # any buffer as large serves
        work = self._work_for(min(fitting) if fitting else needed)
        with single_threaded_blas() if self.shards > 1 else nullcontext():
            # single-threaded beside the sharded steps: no BLAS thread wakes to spin beside their threads
            for start in range(0, len(x), rows):
                block = x[start:start + rows]
                out[start:start + len(block)] = self.module.predict(block, self.theta, self.fixed, work)
        return out
