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

import math
import shutil
import time
from collections.abc import Callable
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
from layergen.errors import LayergenError
from layergen.runtime.checkpoint import record_history


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


@dataclass
class DistillProgress:
    """Where a distillation stood when its checkpoint was written: the steps taken, the best KL on the
    held-out ε so far and its step, and the state of the generator that draws each step's ε."""

    step: int = 0
    best_kl: float = math.inf
    best_step: int = 0
    rng: dict | None = None


def distill(student: InverseAutoregressiveFlow, teacher, config: DistillConfig,  # type: ignore[no-untyped-def]
            save: Callable[[DistillProgress], None] | None = None,
            resume: DistillProgress | None = None) -> tuple[float, int, str]:
    """Adam on the reverse KL; returns (best KL on the fixed evaluation set, its step, why it stopped).
    ``save`` writes a checkpoint at the start and at each better held-out KL, the student then in its
    best state; ``resume`` continues from such a checkpoint (the student already loaded from it) with the
    steps after it, so a run stopped and resumed ends where the run that was never stopped ends."""
    rng = np.random.default_rng([config.seed, 9])
    eps = np.empty((config.batch, student.arch.dim), student.dtype)
    held_out = rng.standard_normal((4096, student.arch.dim)).astype(student.dtype)
    progress = resume or DistillProgress(rng=rng.bit_generator.state)
    rng.bit_generator.state = progress.rng
    best_state, best_kl, best_step, last_good = student.maf.state(), progress.best_kl, progress.best_step, student.maf.state()
    if save is not None:  # a resumed run too: it may continue in another folder, which then has a checkpoint
        save(progress)
    for step in range(progress.step, config.steps):
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
                if save is not None:
                    save(DistillProgress(step + 1, best_kl, best_step, rng.bit_generator.state))
    student.maf.restore(best_state)
    return best_kl, best_step, ""


def run_iaf_example(name: str, seed: int | None = None, out: Path | None = None, steps: int | None = None,
                    progress: bool = True) -> tuple[InverseAutoregressiveFlow, float, Path]:
    """``layergen train --example NAME`` of an IAF: train the teacher (its checkpoint in ``teacher/``), then
    distil the student, with its checkpoints in the run's folder."""
    arch, config = IAF_EXAMPLES[name]
    overrides = {k: v for k, v in (("seed", seed), ("steps", steps)) if v is not None}
    config = DistillConfig(**{**asdict(config), **overrides})
    folder = out or Path(config.out)
    from layergen.runtime.flow import Flow

    teacher_arch, teacher_config = FLOW_EXAMPLES[config.teacher]
    data = load_dataset(teacher_config.dataset)
    teacher = Flow(teacher_arch, np.float64, config.seed, teacher_config.lr)
    start = time.perf_counter()
    train_flow(teacher, data, teacher_config, folder / "teacher", progress)
    teacher_seconds = time.perf_counter() - start
    student = InverseAutoregressiveFlow(arch, np.float64, config.seed, config.lr)
    return finish_distillation(name, student, teacher, data, config, folder, None, teacher_seconds)


def resume_distillation(checkpoint: Path, out: Path, steps: int | None) -> tuple[InverseAutoregressiveFlow, float, Path]:
    """``layergen train --resume DIR`` of a distilled IAF: the student and its Adam state from the checkpoint,
    the teacher from ``teacher/`` beside it, and the steps after the checkpoint (to ``steps`` in all)."""
    from layergen.runtime.flow_checkpoint import load_flow, load_training_state

    student, _ = load_flow(checkpoint)
    meta = load_training_state(checkpoint, student.maf)
    if "distill" not in meta:
        raise LayergenError(f"resume: the IAF checkpoint in {checkpoint} was written before distillations could be "
                            "resumed; train it again with --example two-moons-iaf")
    progress, config = DistillProgress(**meta["distill"]), DistillConfig(**meta["distill_config"])
    if steps is not None:
        if steps <= progress.step:
            raise LayergenError(f"argument --steps: the checkpoint in {checkpoint} holds step {progress.step}; "
                                f"give more than {progress.step} steps to continue it")
        config = DistillConfig(**{**asdict(config), "steps": steps})
    teacher, _ = load_flow(checkpoint / "teacher")
    if out.resolve() != checkpoint.resolve():  # the run continues elsewhere, with its teacher beside it
        shutil.copytree(checkpoint / "teacher", out / "teacher", dirs_exist_ok=True)
    data = load_dataset(FLOW_EXAMPLES[config.teacher][1].dataset)
    return finish_distillation(meta.get("example", "two-moons-iaf"), student, teacher, data, config, out, progress, 0.0)


def finish_distillation(name: str, student: InverseAutoregressiveFlow, teacher, data, config: DistillConfig,  # type: ignore[no-untyped-def]
                        folder: Path, resume: DistillProgress | None,
                        teacher_seconds: float) -> tuple[InverseAutoregressiveFlow, float, Path]:
    """Distil (from ``resume`` on, when given), write the checkpoints and plots, print the report."""
    start = time.perf_counter()
    kl, best_step, stopped = distill(student, teacher, config,
                                     lambda progress: save_iaf(folder, student, data, config, progress, name), resume)
    seconds = time.perf_counter() - start
    record_history(folder, FlowHistory(best_step=best_step, stopped=stopped or f"distilled: KL(q‖p) {kl:.4f}"))
    plot_flow(student, data, folder)
    test_ll, teacher_ll = -mean_nll(student, data.test), -mean_nll(teacher, data.test)
    sample_ms = _ms(lambda: student.sample(10000)), _ms(lambda: teacher.sample(10000))
    trained = f"trained in {teacher_seconds:.1f} s" if resume is None else "loaded"
    print(f"{name}: IAF student, {student.arch.describe()}; teacher {config.teacher} {trained} "
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


def save_iaf(folder: Path, student: InverseAutoregressiveFlow, data, config: DistillConfig,  # type: ignore[no-untyped-def]
             progress: DistillProgress, example: str = "two-moons-iaf") -> None:
    """The MAF's checkpoint files with its Adam state, marked as an IAF so that sampling runs the one-pass
    direction, and the distillation's settings and progress, so that it can be resumed."""
    from layergen.runtime.flow_settings import FlowConfig

    flow_config = FlowConfig(dataset=data.name, steps=config.steps, batch=config.batch, lr=config.lr,
                             lr_final=config.lr_final, seed=config.seed, out=config.out)
    extra = {"teacher": config.teacher, "example": example, "distill_config": asdict(config),
             "distill": asdict(progress)}
    save_flow(folder, student.maf, data, flow_config, FlowHistory(best_step=progress.best_step), kind="iaf", extra=extra)
