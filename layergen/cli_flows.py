"""The ``layergen`` commands for flows: train (the default example, --example NAME, a config with a [flow]
section, --resume of a flow's run) and sample (a flow's checkpoint)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from layergen.cli_runtime import saved_since
from layergen.errors import LayergenError


def holds_a_flow(folder: Path) -> bool:
    """Whether a checkpoint's folder holds a flow's run (else a network's, or none)."""
    meta = folder / "checkpoint.json"
    if not meta.is_file():
        return False
    try:
        description = json.loads(meta.read_text())
    except ValueError as exc:
        raise LayergenError(f"{meta}: not valid JSON ({exc}); the checkpoint is damaged") from None
    return isinstance(description, dict) and description.get("kind") in ("flow", "iaf")


def train_a_flow(args: argparse.Namespace, raw: dict | None) -> int:
    """`layergen train` of a flow: the default example, --example NAME, a config with a [flow] section, or
    --resume of a flow's run."""
    from layergen.runtime.flow_config import parse_flow
    from layergen.runtime.flow_run import run_example, run_flow
    from layergen.runtime.flow_train import FLOW_EXAMPLES
    from layergen.runtime.iaf_train import IAF_EXAMPLES, run_iaf_example

    if args.epochs is not None:
        raise LayergenError("argument --epochs: a flow trains for a number of steps (random minibatches); use --steps")
    if args.resume is not None and (args.config is not None or args.example is not None):
        raise LayergenError("argument --resume: continues the run its checkpoint describes; give no CONFIG "
                            "or --example with it")
    if raw is not None and args.example is not None:
        raise LayergenError("argument CONFIG: give a CONFIG.toml or --example NAME, not both")
    if args.steps is not None and args.steps < 1:
        raise LayergenError(f"argument --steps: must be a positive integer, got {args.steps}")
    if args.seed is not None and args.seed < 0:
        raise LayergenError(f"argument --seed: must be an integer ≥ 0, got {args.seed}")
    started, folder = time.time(), None
    try:
        if args.resume is not None:
            folder = args.out or args.resume
            resume_a_flow(args, folder)
        elif raw is None and args.example in IAF_EXAMPLES:  # its checkpoints start when the teacher is trained
            folder = args.out or Path(IAF_EXAMPLES[args.example][1].out)
            run_iaf_example(args.example, args.seed, args.out, args.steps, progress=not args.quiet)
        elif raw is None:
            name = args.example or "two-moons"
            folder = args.out or Path(FLOW_EXAMPLES[name][1].out)
            run_example(name, args.seed, args.out, args.steps, progress=not args.quiet)
        else:
            overrides = {k: v for k, v in (("seed", args.seed), ("steps", args.steps)) if v is not None}
            arch, config, data = parse_flow(raw, str(args.config), args.config.parent, overrides)
            folder = args.out or Path(config.out)
            run_flow(data.name, arch, config, data, folder, progress=not args.quiet)
    except KeyboardInterrupt:  # a flow's training writes its state at its start and at each better validation NLL
        step = None if folder is None else saved_since(folder, started, "step")
        held = "the flow as it started" if step == 0 else f"the best flow so far (step {step})"
        print("interrupted before the flow's first checkpoint" if step is None else
              f"interrupted; the checkpoint in {folder} holds {held}; continue with layergen train --resume "
              f"{folder}, or draw from it with layergen sample {folder}", file=sys.stderr)
        return 130
    return 0


def resume_a_flow(args: argparse.Namespace, folder: Path) -> None:
    """Continue the flow's run in ``args.resume`` (to ``--steps`` in all, when given), writing into ``folder``."""
    from layergen.runtime.flow_checkpoint import check_same_flow_data, load_flow_run
    from layergen.runtime.flow_files import load_flow_data
    from layergen.runtime.flow_run import run_flow

    if json.loads((args.resume / "checkpoint.json").read_text()).get("kind") == "iaf":
        from layergen.runtime.iaf_train import resume_distillation

        if args.seed is not None:
            raise LayergenError("argument --seed: a resumed run keeps the seed it started with; start a new run for "
                                "another seed")
        resume_distillation(args.resume, folder, args.steps)
        return
    flow, config, resume = load_flow_run(args.resume)
    if args.seed is not None:
        raise LayergenError(f"argument --seed: a resumed run keeps the seed it started with ({config.seed}); "
                            "start a new run for another seed")
    if args.steps is not None:  # the run's length, so it can be extended
        if args.steps <= flow.step_count:
            raise LayergenError(f"argument --steps: the checkpoint in {args.resume} holds step {flow.step_count}; "
                                f"give more than {flow.step_count} steps to continue it")
        config.steps = args.steps
    data = load_flow_data(config)
    check_same_flow_data(resume, data)
    run_flow(data.name, flow.arch, config, data, folder, not args.quiet, (flow, resume))


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from layergen.runtime.checkpoint import atomic_write
    from layergen.runtime.flow_checkpoint import load_flow
    from layergen.runtime.predict import write_table

    if args.seed < 0:
        raise LayergenError(f"argument --seed: must be an integer ≥ 0, got {args.seed}")
    if args.out is not None and args.out.suffix not in (".npy", ".csv"):
        raise LayergenError(f"argument --out: {args.out.name}: write the samples to a .npy file (an array) or a .csv "
                            "file (a header row with the data's column names)")
    flow, meta = load_flow(args.checkpoint)
    samples = flow.sample(args.n, args.seed) * np.array(meta["data"]["std"]) + np.array(meta["data"]["mean"])
    if args.out is None:
        np.savetxt(sys.stdout, samples, fmt="%.6f")
        return 0
    if args.out.suffix == ".csv":  # the training file's column names, so the samples read like the data
        names = meta["data"].get("names") or [f"x{j}" for j in range(samples.shape[1])]
        text = io.StringIO()
        write_table(text, names, samples.tolist())
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text.getvalue()))
    else:
        def write_npy(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # closed (flushed) before atomic_write renames it
                np.save(handle, samples)

        atomic_write(args.out, write_npy)
    print(f"wrote {args.n} samples of {meta['data']['name']} to {args.out}")
    return 0
