"""Distilling an IAF student from a trained teacher flow (000 §10.4; Parallel WaveNet's probability
density distillation): train the teacher by maximum likelihood, then the student by the reverse
KL(q‖p) on fresh ε ~ N(0, I) each step, keeping the parameters of the best KL on a fixed ε set.

Two measures make the reverse KL usable on a multimodal teacher. Its gradient is the teacher's
∂(−log p)/∂x at the student's samples, and off the data a flow's log-density falls to −10⁹, so the
first steps' gradients are ~10⁶: they fill Adam's second moment for thousands of steps, and later
single outliers throw the student into a corner. Each sample's teacher gradient is therefore
clipped by norm (001 §10.1, ``clip``). And the reverse KL is mode-seeking: a student that first
meets one moon stays there (KL → log 2). Tempering, KL(q‖p^β/Z) with β rising linearly from
``anneal_from`` to 1 over ``anneal`` steps, lets the entropy term spread the student over both
moons before the teacher's full weight applies."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import load_dataset
from layergen.runtime.flow_plots import plot_flow
from layergen.runtime.flow_checkpoint import save_flow
from layergen.runtime.flow_settings import FlowHistory
from layergen.runtime.flow_train import FLOW_EXAMPLES, mean_nll, train_flow
from layergen.runtime.iaf import InverseAutoregressiveFlow
from layergen.runtime.checkpoint import atomic_write


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = "two-moons"  # a FLOW_EXAMPLES entry, trained first
    steps: int = 6000
    batch: int = 256
    lr: float = 1e-3
    lr_final: float = 5e-5
    eval_every: int = 250
    clip: float = 50.0  # bound on each sample's ‖∂(−log p)/∂x‖ (0: no clipping)
    anneal: int = 1500  # steps over which the teacher's weight β rises to 1 (0: β = 1 throughout)
    anneal_from: float = 0.02
    seed: int = 0
    out: str = "runs/two-moons-iaf"


#: name → (student architecture, distillation config)
IAF_EXAMPLES: dict[str, tuple[FlowArchitecture, DistillConfig]] = {
    "two-moons-iaf": (FlowArchitecture(2, 8, 64, 2, transform="maf"), DistillConfig()),
}


def distill(student: InverseAutoregressiveFlow, teacher, config: DistillConfig) -> tuple[float, int, str]:  # type: ignore[no-untyped-def]
    """Adam on the reverse KL; returns (best KL on the fixed evaluation set, its step, why it stopped)."""
    rng = np.random.default_rng([config.seed, 9])
    eps = np.empty((config.batch, student.arch.dim), student.dtype)
    held_out = rng.standard_normal((4096, student.arch.dim)).astype(student.dtype)
    best_state, best_kl, best_step, last_good = student.maf.state(), math.inf, 0, student.maf.state()
    for step in range(config.steps):
        student.hypers["lr"] = config.lr * (config.lr_final / config.lr) ** (step / config.steps)
        rng.standard_normal(out=eps, dtype=eps.dtype)  # fresh ε in place: no per-step allocation
        weight = min(1.0, config.anneal_from + step / config.anneal) if config.anneal > 0 else 1.0
        kl = student.distill_step(teacher, eps, weight, config.clip)
        if not math.isfinite(kl):
            student.maf.restore(last_good)
            return best_kl, best_step, f"the KL estimate became {kl} at step {step + 1}; kept the last good parameters"
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            x = student.transform(held_out)
            held_kl = float(np.mean(student.log_prob(x)) - np.mean(teacher.log_prob(x)))
            student.maf.state(into=last_good)
            if held_kl < best_kl:
                best_kl, best_step = held_kl, step + 1
                student.maf.state(into=best_state)
    student.maf.restore(best_state)
    return best_kl, best_step, ""


def run_iaf_example(name: str, seed: int | None = None, out: Path | None = None, steps: int | None = None,
                    progress: bool = True) -> tuple[InverseAutoregressiveFlow, float, Path]:
    arch, config = IAF_EXAMPLES[name]
    overrides = {k: v for k, v in (("seed", seed), ("steps", steps)) if v is not None}
    config = DistillConfig(**{**asdict(config), **overrides})
    folder = out or Path(config.out)
    from layergen.runtime.flow import Flow

    teacher_arch, teacher_config = FLOW_EXAMPLES[config.teacher]
    data = load_dataset(teacher_config.dataset)
    teacher = Flow(teacher_arch, np.float64, config.seed, teacher_config.lr)
    start = time.perf_counter()
    train_flow(teacher, data, teacher_config, None, progress)
    teacher_seconds = time.perf_counter() - start
    student = InverseAutoregressiveFlow(arch, np.float64, config.seed, config.lr)
    start = time.perf_counter()
    kl, best_step, stopped = distill(student, teacher, config)
    seconds = time.perf_counter() - start
    save_iaf(folder, student, data, config, kl)
    plot_flow(student, data, folder)
    test_ll, teacher_ll = -mean_nll(student, data.test), -mean_nll(teacher, data.test)
    sample_ms = _ms(lambda: student.sample(10000)), _ms(lambda: teacher.sample(10000))
    print(f"{name}: IAF student, {arch.describe()}; teacher {config.teacher} trained in {teacher_seconds:.1f} s "
          f"(test log-likelihood {teacher_ll:.4f}); {config.steps} reverse-KL steps of batch {config.batch} in "
          f"{seconds:.1f} s (best at step {best_step}), KL(q‖p) {kl:.4f} nats on 4096 held-out ε")
    if stopped:
        print(stopped)
    print(f"test log-likelihood {test_ll:.4f} nats per sample (standardised data, through the incremental inverse); "
          f"10000 samples in {sample_ms[0]:.1f} ms (one pass; the teacher's {sample_ms[1]:.1f} ms); "
          f"checkpoint, density.png and samples.png in {folder}")
    return student, test_ll, folder


def _ms(run) -> float:  # type: ignore[no-untyped-def]
    run()  # compiled or loaded from the cache first
    start = time.perf_counter()
    run()
    return 1000 * (time.perf_counter() - start)


def save_iaf(folder: Path, student: InverseAutoregressiveFlow, data, config: DistillConfig, kl: float) -> None:  # type: ignore[no-untyped-def]
    """The MAF's checkpoint files, marked as an IAF so that sampling runs the one-pass direction."""
    from layergen.runtime.flow_settings import FlowConfig

    flow_config = FlowConfig(dataset=data.name, steps=config.steps, batch=config.batch, lr=config.lr,
                             lr_final=config.lr_final, seed=config.seed, out=config.out)
    save_flow(folder, student.maf, data, flow_config, FlowHistory(stopped=f"distilled: KL(q‖p) {kl:.4f}"))
    meta_path = folder / "checkpoint.json"
    meta = {**json.loads(meta_path.read_text()), "kind": "iaf", "teacher": config.teacher}
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))

