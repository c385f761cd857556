"""A trainable flow (Real NVP, NICE or MAF) over the generated kernels: ``step`` (one fused NLL training step
with Adam), ``log_prob`` (data → latent, 000 eq. 69) and ``sample`` (latent → data, 000
Algorithm 2). Parameters, gradients and Adam's state are flat buffers with named views."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from types import MappingProxyType

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime import compile_ahead
from layergen.runtime.architecture import optimizer_hypers
from layergen.runtime.compile_ahead import njit_job
from layergen.runtime.flow_architecture import FlowArchitecture, conditioning
from layergen.runtime.blas import single_threaded_blas
from layergen.runtime.flow_fused import build_flow_module
from layergen.runtime.layout import allocate, views
from layergen.runtime.maf import fill_masks
from layergen.runtime.sharded import SHARDS, ShardBuffers, ShardedGradients


#: The rows of one block of ``Flow.log_prob``. The forward pass keeps every coupling's activations (the
#: training step's layout), 29 KB a row for the default two-moons flow in float64, so a block of 4096 rows
#: streamed 118 MB through memory; a block of 256 stays nearer the cache. Log-densities of 5000 points,
#: blocks of 256 against 4096 rows (medians of 9 interleaved calls, both cores, the same values to the
#: bit): the two-moons flow (12 couplings, 2×64) 8.9 against 13.7 ms in float64, 4.7 against 5.9 ms in
#: float32; the digits Real NVP (8 couplings, 2×256) 79.4 against 97.9 and 39.7 against 46.4 ms; the
#: digits MAF (5 blocks, 2×256) 76.8 against 84.9 and 35.8 against 39.2 ms. Blocks of 128 rows were
#: faster still for two moons and slower for the digits MAF.
EVALUATION_ROWS = 256


def adam_defaults() -> dict[str, float]:
    from layergen.runtime.modules import load_builtin

    return dict(load_builtin("adam").HYPER_DEFAULTS)


class Flow(ShardedGradients):
    """Parameters and buffers of one flow architecture; ``step``, ``log_prob``, ``sample``."""

    def __init__(self, arch: FlowArchitecture, dtype: type = np.float64, seed: int = 0, lr: float = 1e-3,
                 shards: int = SHARDS) -> None:
        self.arch = arch
        self.dtype = np.dtype(dtype).type
        self.module = build_flow_module(arch)
        self.layout = arch.layout()
        self.theta, param_stacks = allocate(self.layout.trainable, self.dtype)
        # MADE masks (MAF), LU permutations, the batch-norm flow's running moments; else empty
        self.const, const_views = allocate(self.layout.fixed, self.dtype)
        if arch.transform == "maf":
            fill_masks(const_views, arch.dim, arch.hidden, arch.depth, [p for p in (0, 1) if arch.count(p)])
        #: the sharded step's buffers (``layergen.runtime.sharded``); ``shards`` is 1 for a batch-norm flow,
        #: whose statistics couple the samples, or where the BLAS's threads cannot be controlled
        self._shards = ShardBuffers(self.module, self.layout.trainable, self.layout.work, self.dtype, shards,
                                    not arch.batchnorm)
        self.shards = self._shards.count
        # a cold start's helper compiles these while this process compiles the first step (sharded or not)
        row, work = np.zeros((1, arch.dim), self.dtype), allocate(self.layout.work, self.dtype, 1)[0]
        self._shards.later = [njit_job("log_prob", (row, self.theta, self.const, work, np.zeros(1, self.dtype))),
                              njit_job("sample", (row, self.theta, self.const, work))]
        grad_stacks = self._shards.grad_views
        names = arch.parameter_names()
        params = {name: param_stacks[stack] if j is None else param_stacks[stack][j] for name, stack, j in names}
        grads = {name: grad_stacks[stack] if j is None else grad_stacks[stack][j] for name, stack, j in names}
        self._m, _ = allocate(self.layout.trainable, self.dtype)
        self._v, _ = allocate(self.layout.trainable, self.dtype)
        rng = np.random.default_rng(seed)
        for name, view in params.items():
            if name.startswith("W") and not name.startswith("Wh"):  # He (003 §7); heads start at 0: identity couplings
                view[...] = rng.normal(0.0, np.sqrt(2.0 / view.shape[0]), view.shape)
        if arch.transform == "sos":
            start_sos_near_identity(arch, params)
        if arch.mixing == "lu":
            start_lu_at_a_permutation(arch, param_stacks, const_views, seed)
        if arch.base == "mixture":  # distinct means: equal components would get equal gradients and stay equal
            params["mix_mu"][...] = np.random.default_rng([seed, 73]).normal(0.0, 1.0, params["mix_mu"].shape)
        for name in (f"bn_var{p}" for p in (0, 1) if arch.batchnorm and arch.count(p)):
            const_views[name][...] = 1.0  # running moments start at mean 0, variance 1
        self.params = MappingProxyType(params)
        self._grads = MappingProxyType(grads)
        self.hypers = {**optimizer_hypers_for_flow(), "lr": lr}
        self.step_count = 0
        self._work: dict[int, np.ndarray] = {}
        self._evaluation_work: dict[tuple[int, int], np.ndarray] = {}

    def state(self, into: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the parameters and the constants (the running moments change in training), or
        written into ``into`` without allocating."""
        if into is None:
            return self.theta.copy(), self.const.copy()
        into[0][...], into[1][...] = self.theta, self.const
        return into

    def restore(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.theta[...], self.const[...] = state

    @property
    def adam_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Adam's first and second moments (000 eq. 23), laid out as ``theta``: a checkpoint keeps them so a
        resumed run takes the steps the uninterrupted one took."""
        return self._m, self._v

    def _work_for(self, batch: int) -> np.ndarray:
        if batch not in self._work:  # once per distinct batch size, never per step
            self._work[batch] = allocate(self.layout.work, self.dtype, batch)[0]
        return self._work[batch]

    def sharded(self, batch: int) -> bool:
        """Whether a training step on this batch size splits it into shards."""
        return self._shards.applies(batch)

    def _check(self, x: np.ndarray, where: str) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.arch.dim:
            raise LayergenError(f"{where}: expected an array of shape (n, {self.arch.dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise LayergenError(f"{where}: the array is empty")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def step(self, x: np.ndarray) -> float:
        """One Adam step on the NLL of a batch (000 Algorithm 1); returns the NLL before the update."""
        if x.ndim != 2 or x.shape[1] != self.arch.dim or x.shape[0] == 0:
            self._check(x, "step")  # the step reads the data in the declared shape, past a smaller array
        self.step_count += 1
        h = self.hypers
        if self.sharded(x.shape[0]) and x.dtype == self.dtype and x.flags.c_contiguous:
            shards = self._shards
            return shards.run(x, self.theta, self.const, shards.grads, self._m, self._v, shards.work_for(x.shape[0]),
                              *shards.tasks, h["lr"], h["beta1"], h["beta2"], h["epsilon"], float(self.step_count))
        if self._shards.later:  # the first whole-batch step: on a cold start a helper compiles them meanwhile
            self._shards.compile_later_ahead()
        return float(self.module.train_step(x, self.theta, self.const, self.grad, self._m, self._v, self._work_for(x.shape[0]),
                                            h["lr"], h["beta1"], h["beta2"], h["epsilon"], float(self.step_count)))

    def input_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The mean NLL of the batch x and its gradient ∂(mean NLL)/∂x (a view of the work buffer,
        valid until the next call at this batch size): the training step's backward pass with
        lr = 0 and Adam's state kept aside, so nothing of the flow changes (a teacher's density
        gradient for an IAF student, runtime/iaf.py)."""
        if x.ndim != 2 or x.shape[1] != self.arch.dim or x.shape[0] == 0:
            self._check(x, "input_gradient")
        if not hasattr(self, "_spare_adam"):
            self._spare_adam = (np.zeros_like(self._m), np.zeros_like(self._v))
            self._input_gradients: dict[int, np.ndarray] = {}
        n, h = x.shape[0], self.hypers
        if n not in self._input_gradients:  # the view, once per batch size
            self._input_gradients[n] = allocate_views(self, n)["gu"][0]
        loss = self.module.train_step(x, self.theta, self.const, self.grad, *self._spare_adam, self._work_for(n),
                                      0.0, h["beta1"], h["beta2"], h["epsilon"], 1.0)
        return float(loss), self._input_gradients[n]

    def warm_up(self, batch: int) -> None:
        """Compile (or load from Numba's cache) the training step and log_prob now, so that timed
        training excludes compilation: one step with lr = 0 on zeros, after which the parameters,
        Adam's state, the running moments and the step count are restored (the gradient buffer is scratch)."""
        saved = self._m.copy(), self._v.copy(), self.const.copy(), self.step_count, self.hypers["lr"]
        zeros = np.zeros((batch, self.arch.dim), self.dtype)
        self.hypers["lr"] = 0.0
        try:
            self.step(zeros)
            self.log_prob(zeros[:1])
        finally:
            self._m[...], self._v[...], self.const[...], self.step_count, self.hypers["lr"] = saved

    def log_prob(self, x: np.ndarray, batch: int = EVALUATION_ROWS) -> np.ndarray:
        """log p_X(x) per sample, in nats: log N(f(x); 0, I) + Σ_k log|det Df_k| (000 eq. 69); a
        batch-norm flow uses its running averages here (evaluation mode), so samples are independent.
        The rows go through in blocks of ``batch`` (``EVALUATION_ROWS``; ``_in_row_blocks``)."""
        x = self._check(x, "log_prob")
        out = np.empty(len(x), self.dtype)
        compile_ahead.wait_for(self.module, "log_prob")  # a cold start's helper may be compiling it

        def run_block(work: np.ndarray, start: int, stop: int) -> None:
            self.module.log_prob(x[start:stop], self.theta, self.const, work, out[start:stop])

        self._in_row_blocks(len(x), batch, run_block)
        return out

    def latent(self, x: np.ndarray, batch: int = EVALUATION_ROWS) -> np.ndarray:
        """z = f(x), the forward (density) direction, in row blocks of ``batch`` as ``log_prob``."""
        x = self._check(x, "latent")
        out, log_density = np.empty_like(x), np.empty(len(x), self.dtype)
        compile_ahead.wait_for(self.module, "log_prob")

        def run_block(work: np.ndarray, start: int, stop: int) -> None:
            self.module.log_prob(x[start:stop], self.theta, self.const, work, log_density[start:stop])
            named = views(work, self.layout.work, stop - start)
            out[start:stop] = named["zb"] if self.arch.base == "diagonal" else named["u"][self.arch.couplings]

        self._in_row_blocks(len(x), batch, run_block)
        return out

    def inverse(self, z: np.ndarray, batch: int = EVALUATION_ROWS) -> np.ndarray:
        """x = f⁻¹(z), the inverse (sampling) direction, in row blocks of ``batch`` as ``log_prob``."""
        z = self._check(z, "inverse")
        out = np.empty_like(z)
        compile_ahead.wait_for(self.module, "sample")

        def run_block(work: np.ndarray, start: int, stop: int) -> None:
            out[start:stop] = self.module.sample(z[start:stop], self.theta, self.const, work)

        self._in_row_blocks(len(z), batch, run_block)
        return out

    def _in_row_blocks(self, rows: int, batch: int, run_block: Callable[[np.ndarray, int, int], None]) -> None:
        """``run_block(work, start, stop)`` for the blocks [start, stop) of at most ``batch`` rows, each through
        a work buffer of the block height (a shorter block uses its first rows), so memory stays bounded for
        any input: a row of the work buffer holds every coupling's activations, 29 KB for the default
        two-moons flow in float64, and sampling 100 000 points in one block took 2.7 GB. A sharded flow deals
        the blocks to one thread per shard (``in_evaluation_threads``); otherwise they run in turn on
        this thread, through the training step's buffer of that height (tests read its views afterwards)."""
        if not (isinstance(batch, int) and batch > 0):
            raise LayergenError(f"batch must be a positive integer, got {batch!r}")
        if not self.sharded(rows):
            height = min(batch, rows)
            work = self._work_for(height)
            with single_threaded_blas() if self.shards > 1 else nullcontext():
                for start in range(0, rows, height):
                    run_block(work, start, min(start + height, rows))
            return
        self.in_evaluation_threads(rows, batch, run_block)

    def initialise_actnorm(self, x: np.ndarray) -> None:
        """ActNorm's data-dependent initialisation: coupling by coupling, α = −log σ and β = −μ/σ of
        the ActNorm's input on ``x``, so its output has zero mean and unit variance per column. Each
        pass runs the whole forward map with the later ActNorms still at their current values;
        they do not affect earlier inputs."""
        if not self.arch.actnorm:
            raise LayergenError("initialise_actnorm: this flow has no ActNorm layers (actnorm = false)")
        x = self._check(x, "initialise_actnorm")
        if len(x) < 2:
            raise LayergenError("initialise_actnorm: needs at least 2 samples to estimate a standard deviation")
        compile_ahead.wait_for(self.module, "log_prob")
        for k in range(self.arch.couplings):
            self.module.log_prob(x, self.theta, self.const, self._work_for(len(x)), np.empty(len(x), self.dtype))
            inputs = allocate_views(self, len(x))["v"][k]
            mean, std = inputs.mean(axis=0), inputs.std(axis=0)
            std = np.where(std > 0, std, 1.0)  # a constant column: shift only
            self.params[f"act_alpha{k}"][...] = -np.log(std)
            self.params[f"act_beta{k}"][...] = -mean / std

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n samples x = f⁻¹(z), z drawn from the base (000 Algorithm 2): N(0, I) (the diagonal base
        is the flow's last bijection), or for a mixture a component c ~ softmax(w), then
        z = μ_c + e^{s_c} ⊙ ε with ε ~ N(0, I)."""
        if n <= 0:
            raise LayergenError(f"sample: -n must be a positive integer, got {n}")
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.arch.dim))
        if self.arch.base == "mixture":
            logits = self.params["mix_w"].astype(np.float64)
            weights = np.exp(logits - logits.max())
            chosen = rng.choice(self.arch.components, size=n, p=weights / weights.sum())
            z = self.params["mix_mu"][chosen] + np.exp(self.params["mix_s"][chosen]) * z
        return self.inverse(z)


def allocate_views(flow: Flow, batch: int) -> dict[str, np.ndarray]:
    """The named views of the flow's work buffer at this batch size."""
    return views(flow._work_for(batch), flow.layout.work, batch)


def optimizer_hypers_for_flow() -> dict[str, float]:
    hypers = adam_defaults()
    hypers.pop("t", None)
    return hypers


__all__ = ["Flow", "FlowArchitecture", "LayergenError", "optimizer_hypers"]


def start_sos_near_identity(arch: FlowArchitecture, params: Mapping[str, np.ndarray]) -> None:
    """SOS heads start at h'(x) = ½(1 + x/10)² + ½(1 − x/10)² = 1 + x²/100 (000 eq. 89): close to the
    identity, and with the two squared polynomials different. Equal polynomials would get equal
    gradients and stay equal (k = 1 in effect); a polynomial that is 0 gets no gradient at all."""
    blocks = conditioning(arch.transformer)  # the head's column blocks, in the transformer's argument order
    start = {"a_0_1": np.sqrt(0.5), "a_1_1": 0.1, "a_0_2": np.sqrt(0.5), "a_1_2": -0.1}
    for k in range(arch.couplings):
        width = arch.width(1 - arch.kept(k))
        bias = params[f"bh{k}"].reshape(-1)
        for name, value in start.items():
            block = blocks.index(name)
            bias[block * width:(block + 1) * width] = value


def start_lu_at_a_permutation(arch: FlowArchitecture, params: Mapping[str, np.ndarray], const: Mapping[str, np.ndarray],
                              seed: int) -> None:
    """LU mixing starts as W = P (L = I, U = I: log|det W| = 0), P a random permutation per block
    drawn from its own stream of the seed, so the other parameters' initialisation is unchanged (Glow)."""
    rng = np.random.default_rng([seed, 28])
    eye = np.eye(arch.dim)
    for p in (0, 1):
        for j in range(arch.count(p)):
            params[f"luU{p}"][j] = eye
            const[f"luP{p}"][j] = eye[rng.permutation(arch.dim)]
