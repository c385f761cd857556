"""`layergen train` for flows: a built-in example or a flow's config, trained, checkpointed, plotted and
reported (test log-likelihood, and the bar it has to clear: the generator's exact density for the 2-D toys,
a full-covariance Gaussian for dequantised and for your own data)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import DATASETS, FlowData, gaussian_log_likelihood
from layergen.runtime.flow_files import load_flow_data
from layergen.runtime.flow_plots import plot_curves, plot_flow, plot_samples
from layergen.runtime.flow_checkpoint import FlowResume
from layergen.runtime.flow_settings import FlowConfig, FlowHistory
from layergen.runtime.flow_train import FLOW_EXAMPLES, mean_nll, train_flow


def run_example(name: str, seed: int | None = None, out: Path | None = None, steps: int | None = None,
                progress: bool = True) -> tuple[Flow, FlowHistory, float, Path]:
    """``layergen train --example NAME``: a built-in flow example, with the command line's overrides."""
    if name not in FLOW_EXAMPLES:
        raise LayergenError(f"argument --example: unknown flow example {name!r}; valid: {', '.join(FLOW_EXAMPLES)}")
    arch, config = FLOW_EXAMPLES[name]
    config = FlowConfig(**{**asdict(config), **{k: v for k, v in (("seed", seed), ("steps", steps)) if v is not None}})
    data = load_flow_data(config)
    return run_flow(name, arch, config, data, out or Path(config.out), progress)


def run_flow(name: str, arch: FlowArchitecture, config: FlowConfig, data: FlowData, folder: Path,
             progress: bool = True, resumed: tuple[Flow, FlowResume] | None = None) -> tuple[Flow, FlowHistory, float, Path]:
    """Compile (or load) the flow's step, train it (``train_flow``; ``resumed``: continue the run of a
    checkpoint, whose flow ``load_flow_run`` loaded), with its checkpoints and plots in ``folder``, and
    print the report; returns the flow, its history, the test log-likelihood (model units) and the folder."""
    flow = Flow(arch, np.dtype(config.dtype).type, config.seed, config.lr) if resumed is None else resumed[0]
    start = time.perf_counter()
    flow.warm_up(config.batch)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    history = train_flow(flow, data, config, folder, progress, None if resumed is None else resumed[1])
    seconds = time.perf_counter() - start
    test_ll = -mean_nll(flow, data.test)
    written = ("checkpoint, density.png, samples.png" if arch.dim == 2 else "checkpoint, samples.png") + " and curves.png"
    plot_curves(history, folder / "curves.png")
    if arch.dim == 2:
        plot_flow(flow, data, folder)
    else:
        plot_samples(flow, data, folder)
    print(f"{name}: {arch.describe()}; "
          f"{history.steps[-1] if history.steps else 0} steps of batch {config.batch} in {seconds:.1f} s "
          f"(best at step {history.best_step}); compile or cache load {compile_seconds:.1f} s")
    if history.stopped:
        print(history.stopped)
    report(config, data, test_ll, f"{written} in {folder}")
    return flow, history, test_ll, folder


def report(config: FlowConfig, data: FlowData, test_ll: float, written: str) -> None:
    """The test log-likelihood and what to read it against."""
    units = "standardised data" if data.log_jacobian != 0.0 else "data units"
    in_data_units = f"; {test_ll - data.log_jacobian:.4f} in the data's units" if config.file else ""
    print(f"test log-likelihood {test_ll:.4f} nats per sample ({units}{in_data_units}); {written}")
    if data.bin_width is not None:
        baseline = gaussian_log_likelihood(data)
        print(f"dequantised: {data.bits_per_dim(test_ll):.4f} bits per dimension; the full-covariance Gaussian "
              f"baseline: {data.bits_per_dim(baseline):.4f} bits per dimension ({baseline:.2f} nats, standardised)")
    elif config.file:  # the bar a flow has to clear on your data
        baseline = gaussian_log_likelihood(data)
        print(f"a full-covariance Gaussian fitted to the training split scores {baseline:.4f} ({units}; "
              f"{baseline - data.log_jacobian:.4f} in the data's units) on the same test points")
    if config.dataset == "power":  # (a file's run has no dataset)
        from layergen.runtime.flow_power import PAPER_TABLE_1

        print("MAF paper, Table 1 (POWER, test log-likelihood): "
              + ", ".join(f"{model} {value:+.2f}" for model, value in PAPER_TABLE_1.items()))
    exact = None if config.file else DATASETS[config.dataset][1]
    if exact is not None:
        optimum = float(exact(data.test * data.std + data.mean).mean()) + data.log_jacobian
        print(f"the generator's exact density scores {optimum:.4f} on the same test points ({units}); "
              f"gap {optimum - test_ll:.4f} nats")
