"""The ``layergen`` commands that run the trained models: train (networks; flows in ``cli_flows``) and
predict (a network's checkpoint on new data, or a flow's log-density of it)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from layergen.errors import LayergenError


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from layergen.runtime import config as cfg
    from layergen.runtime.network import Network
    from layergen.runtime.evaluate import evaluate, gaussian_coverage
    from layergen.runtime.checkpoint import check_same_data, checkpoint_data, load_checkpoint
    from layergen.runtime.train import plot, regularise, train

    from layergen.cli_flows import holds_a_flow, train_a_flow
    from layergen.runtime.flow_config import is_flow_config
    from layergen.runtime.flow_train import FLOW_EXAMPLES
    from layergen.runtime.iaf_train import IAF_EXAMPLES

    raw = cfg.load_toml(args.config) if args.config is not None and args.resume is None else None
    flow_config = raw is not None and is_flow_config(raw)
    examples = (*FLOW_EXAMPLES, *IAF_EXAMPLES)
    if args.resume is not None and holds_a_flow(args.resume) or args.resume is None and (
            flow_config or args.config is None and (args.example is None or args.example in examples)):
        return train_a_flow(args, raw)
    if args.steps is not None:
        raise LayergenError("argument --steps: sets a flow's training steps; a network trains for [train] epochs "
                            "(--epochs)")
    shuffle = None
    if args.epochs is not None and args.epochs < 1:
        raise LayergenError(f"argument --epochs: must be a positive integer, got {args.epochs}")
    if args.seed is not None and args.seed < 0:
        raise LayergenError(f"argument --seed: must be an integer ≥ 0, got {args.seed}")
    if args.resume is not None:
        if args.config is not None or args.example is not None:
            raise LayergenError("argument --resume: continues the run its checkpoint describes; give no CONFIG "
                                "or --example with it")
        resumed = load_checkpoint(args.resume)
        net, config, history, epoch, shuffle = (resumed.net, resumed.config, resumed.history, resumed.epoch,
                                                resumed.shuffle)
        if args.seed is not None:
            raise LayergenError(f"argument --seed: a resumed run keeps the seed it started with ({config.seed}); "
                                "start a new run for another seed")
        if args.epochs is not None:  # the run's length, so it can be extended
            if args.epochs <= epoch:
                raise LayergenError(f"argument --epochs: the checkpoint in {args.resume} holds epoch {epoch}; "
                                    f"give more than {epoch} epochs to continue it")
            config.epochs = args.epochs
        out, raw, where = args.out or args.resume, {"data": checkpoint_data(args.resume)}, str(args.resume)
    else:
        if (args.config is None) == (args.example is None):
            raise LayergenError("argument CONFIG: give a CONFIG.toml or --example NAME (one of: "
                                + ", ".join(cfg.EXAMPLES) + ")")
        if args.example is not None:
            if args.example not in cfg.EXAMPLES:
                raise LayergenError(f"argument --example: unknown example {args.example!r}; valid: "
                                    f"{', '.join([*FLOW_EXAMPLES, *IAF_EXAMPLES, *cfg.EXAMPLES])}")
            raw, where = cfg.EXAMPLES[args.example], f"example {args.example}"
        else:
            where = str(args.config)
    # a config's data file is relative to the config; a checkpoint records it as an absolute path
    base = args.config.parent if args.config is not None else Path.cwd()
    data = cfg.load_data(raw, where, base)
    if args.resume is not None:
        check_same_data(resumed, data, args.resume)
    name = data.name
    if args.resume is None:
        overrides = {k: v for k, v in (("seed", args.seed), ("epochs", args.epochs)) if v is not None}
        raw = {**raw, "train": {**raw.get("train", {}), **overrides}}
        arch, config, out = cfg.parse(raw, where, data.target_columns, data.features, data.regression, base)
        out = args.out or out
        net = Network(arch, np.dtype(config.dtype).type, config.seed, config.init,
                      {**config.optimizer_settings, "lr": config.lr})
        history, epoch = None, 0
    config.progress = not args.quiet
    # a run resumed in its own folder continues that folder's checkpoint; any other writes its own at its start
    started = 0.0 if args.resume is not None and out == args.resume else time.time()
    start = time.perf_counter()
    regularise(net, config, len(data.train.x))
    net.warm_up(config.batch)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    try:
        history = train(net, data, config, out, history, epoch, shuffle)
    except KeyboardInterrupt:
        # the checkpoint is complete and atomic (runtime/checkpoint.py): a resumed run ends where this one would have
        epoch = saved_since(out, started, "epoch")
        print("interrupted before the run's first checkpoint" if epoch is None else
              f"interrupted; the checkpoint in {out} holds epoch {epoch}, the best so far; continue with "
              f"layergen train --resume {out}", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    if history.stopped:
        print(history.stopped)
    plot(history, out / "curves.png")
    x_test = data.test.x.astype(net.dtype)
    loss, metric = evaluate(net, x_test, data.test.y, data.classes, data.target_std)
    epochs = len(history.val_loss)
    print(f"{name}: {net.arch.describe()}, "
          f"{epochs} epoch{'s' * (epochs != 1)} in {seconds:.1f} s (best epoch {history.best_epoch + 1}); "
          f"compile or cache load {compile_seconds:.1f} s")
    if not data.regression:
        print(f"test accuracy {metric:.4f}, test loss {loss:.4f}; checkpoint and curves.png in {out}")
        return 0
    # the RMSE of always predicting the training mean: the bar a regressor has to clear
    baseline = float(np.sqrt(np.mean((data.test.y * data.target_std) ** 2)))
    covered = (f"; μ ± 1.96σ covers {gaussian_coverage(net, x_test, data.test.y):.1%} of the test targets"
               if net.arch.loss_name == "gaussian_nll" else "")
    print(f"test RMSE {metric:.2f} (predicting the training mean: {baseline:.2f}), test loss {loss:.4f}{covered}; "
          f"checkpoint and curves.png in {out}")
    return 0


def saved_since(folder: Path, started: float, key: str) -> object:
    """``key`` of the checkpoint a run stopped by Ctrl-C left in ``folder``, or None when it wrote none
    (a checkpoint older than the run is an earlier run's)."""
    saved = folder / "checkpoint.json"
    if not saved.exists() or saved.stat().st_mtime < started:
        return None
    return json.loads(saved.read_text())[key]


def cmd_predict(args: argparse.Namespace) -> int:
    from layergen.cli_flows import holds_a_flow
    from layergen.runtime.predict import flow_log_densities, load_preprocessing, predictions, read_features, write_table
    from layergen.runtime.checkpoint import atomic_write, load_checkpoint

    if not (args.checkpoint / "checkpoint.json").is_file():
        raise LayergenError(f"predict: no checkpoint.json in {args.checkpoint}; give a folder written by layergen train")
    if holds_a_flow(args.checkpoint):  # a flow's prediction: the density of each sample
        header, rows = flow_log_densities(args.checkpoint, args.data)
    else:
        preprocessing = load_preprocessing(args.checkpoint)
        net = load_checkpoint(args.checkpoint).net
        header, rows = predictions(net, preprocessing, read_features(args.data, preprocessing, net.arch.inputs))
    if args.out is None:
        write_table(sys.stdout, header, rows)
        return 0
    text = io.StringIO()
    write_table(text, header, rows)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text.getvalue()))
    print(f"wrote {len(rows)} predictions ({', '.join(header)}) to {args.out}")
    return 0
