"""Inverse autoregressive flow (IAF, ref. [32] of 000): a MAF's blocks used the other way round.

A MAF block F (x_i ↦ x_i e^{s_i(x_<i)} + t_i(x_<i), 000 eq. 84-85) maps data to latent in one pass
and is inverted position by position. An IAF *samples* with that one pass, x = F(ε), ε ~ N(0, I),
and evaluates a density through the incremental inverse ε = F⁻¹(x) (the generated MAF inverse):

    log q(x) = log N(ε; 0, I) − log|det ∂F/∂ε|      (000 eq. 69, read in the sampling direction).

Maximum likelihood would differentiate through the incremental inverse. The notes' use of an IAF
(000 §10.4: "learn f⁻¹ rather than f", "train a student network for f⁻¹ with f as a teacher") needs
only one-pass gradients: minimise the reverse KL(q‖p) = E_ε[log q(F(ε)) − log p(F(ε))] to a trained
teacher flow p. Its gradient is the teacher's ∂(−log p)/∂x at x = F(ε), pulled back through F, plus
that of −log|det ∂F/∂ε|: the fused ``guided_step``, every derivative a generated VJP.
"""

from __future__ import annotations

import math

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime import compile_ahead
from layergen.runtime.flow import EVALUATION_ROWS, Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.layout import views
from layergen.runtime.regularise import weigh_and_clip_rows


class InverseAutoregressiveFlow:
    """An IAF over a plain MAF architecture: ``sample`` in one pass, ``log_prob`` through the incremental
    inverse, ``distill_step`` for the reverse KL to a teacher flow."""

    def __init__(self, arch: FlowArchitecture, dtype: type = np.float64, seed: int = 0, lr: float = 1e-3) -> None:
        if arch.transform != "maf" or arch.base != "standard" or arch.normalised or arch.mixing != "parity":
            raise LayergenError(f"IAF: the architecture must be a plain MAF (transform 'maf', standard base, no "
                                f"ActNorm, batch norm or LU mixing), got: {arch.describe()}, {arch.base} base")
        self.arch = arch
        self.maf = Flow(arch, dtype, seed, lr)
        self.dtype = self.maf.dtype
        self.hypers = self.maf.hypers
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per block height, made once

    def _through(self, eps: np.ndarray, height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """x = F(ε) (one pass) and the blocks' log|det ∂F_k/∂u_k| (K × n), as views of the work buffer of
        ``height`` ≥ n rows (the MAF's, made once per height; by default n)."""
        n = len(eps)
        height = n if height is None else height
        if height not in self._buffers:
            self._buffers[height] = np.empty(height, self.dtype), self.maf._work_for(height)
            compile_ahead.wait_for(self.maf.module, "log_prob")  # once: a cold start's helper may compile it
        log_density, work = self._buffers[height]
        self.maf.module.log_prob(eps, self.maf.theta, self.maf.const, work, log_density[:n])
        named = views(work, self.maf.layout.work, n)
        return named["u"][self.arch.couplings], named["ld"]

    def transform(self, eps: np.ndarray, batch: int = EVALUATION_ROWS) -> np.ndarray:
        """x = F(ε): the sampling direction, one pass of every MADE, in row blocks of ``batch`` (a row of
        the work buffer holds every block's activations: memory stays bounded for any n)."""
        eps = self.maf._check(eps, "IAF transform")
        out = np.empty_like(eps)
        height = min(batch, len(eps))
        for start in range(0, len(eps), height):
            out[start:start + height] = self._through(eps[start:start + height], height)[0]
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        if n <= 0:
            raise LayergenError(f"sample: -n must be a positive integer, got {n}")
        return self.transform(np.random.default_rng(seed).standard_normal((n, self.arch.dim)))

    def log_prob(self, x: np.ndarray, batch: int = EVALUATION_ROWS) -> np.ndarray:
        """log q(x) = log N(ε) − log|det ∂F/∂ε| with ε = F⁻¹(x) from the incremental inverse, in row blocks
        of ``batch``."""
        x = self.maf._check(x, "IAF log_prob")
        out = np.empty(len(x), self.dtype)
        height = min(batch, len(x))
        for start in range(0, len(x), height):
            eps = self.maf.inverse(x[start:start + height])
            _, logdets = self._through(eps, height)
            out[start:start + len(eps)] = standard_normal_log_density(eps) - logdets.sum(axis=0)
        return out

    def distill_step(self, teacher: Flow, eps: np.ndarray, weight: float = 1.0, clip: float = 0.0) -> float:
        """One Adam step on the reverse KL(q‖p) estimated on the batch ε; returns the estimate (nats)
        before the update: mean log N(ε) − mean log|det ∂F/∂ε| + mean(−log p(F(ε))).

        ``weight`` β < 1 steps on KL(q‖p^β/Z) instead (a tempered teacher: −H(q) − β E_q log p), and
        ``clip`` > 0 bounds each sample's ‖∂(−log p)/∂x‖ by it; the estimate returned is always the
        untempered, unclipped KL."""
        x, _ = self._through(eps)
        teacher_nll, g_x = teacher.input_gradient(x)  # ∂(mean −log p)/∂x at x = F(ε), rows scaled by 1/n
        if weight != 1.0 or clip > 0.0:
            weigh_and_clip_rows(g_x, weight, clip / len(eps))
        self.maf.step_count += 1
        h = self.hypers
        minus_logdet = self.maf.module.guided_step(
            eps, g_x, self.maf.theta, self.maf.const, self.maf.grad, self.maf._m, self.maf._v, self.maf._work_for(len(eps)),
            h["lr"], h["beta1"], h["beta2"], h["epsilon"], float(self.maf.step_count))
        return float(standard_normal_log_density(eps).mean() + minus_logdet + teacher_nll)


def standard_normal_log_density(eps: np.ndarray) -> np.ndarray:
    """log N(ε; 0, I) per row (a density value, no derivative)."""
    return -0.5 * np.einsum("ij,ij->i", eps, eps) - 0.5 * eps.shape[1] * math.log(2 * math.pi)
