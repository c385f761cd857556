"""The training loop: shuffled minibatches, validation, early stopping, checkpoints.

Early stopping (000 §6.3, 003 §6.3) keeps the weights of the best validation loss and
restores them at the end. A checkpoint is an ``.npz`` of every array (parameters, optimizer
state) plus a JSON description of the architecture and progress, each written to a temporary
file and renamed, so a crash never leaves a half-written checkpoint. A loss that turns NaN
stops training with a message and keeps the last good checkpoint.

The checkpoint is the state after the best epoch so far (a run's start, before any), complete:
besides the parameters and the optimizer's state, the step count and the states of the generators
that shuffle the batches and draw dropout's masks. Resuming from it repeats the epochs after the
best one exactly as they ran, so a run stopped at any point and resumed ends bit for bit where the
uninterrupted run ends; at the end of a run the JSON also records the whole history.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.data import Dataset, check_arrays
from layergen.runtime.evaluate import evaluate, training_targets
from layergen.runtime.network import Architecture, Network
from layergen.runtime.nodes import sampler_state, set_sampler_state
from layergen.runtime.regularise import learning_rate


@dataclass
class TrainConfig:
    epochs: int = 30
    batch: int = 128
    seed: int = 0
    patience: int = 10
    lr: float = 1e-3
    dtype: str = "float32"
    init: str = "he"
    progress: bool = True
    schedule: str = "constant"  # 000 §7.3: constant, inverse_time, exponential, inverse_sqrt
    decay: float = 1.0
    clip_value: float = 0.0  # 0: off
    clip_norm: float = 0.0
    max_norm: float = 0.0
    l2: float = 0.0  # λ of the L2 weight penalty λ/(2m) Σ‖W‖² (000 eq. 11); 0: off
    l1: float = 0.0  # λ of the L1 weight penalty λ Σ|W| (003 §6.1); 0: off

    def __post_init__(self) -> None:
        if self.batch <= 0:
            raise LayergenError(f"batch: must be a positive number of samples, got {self.batch}")
        if self.epochs <= 0:
            raise LayergenError(f"epochs: must be positive, got {self.epochs}")
        if self.dtype not in ("float32", "float64"):
            raise LayergenError(f"dtype: {self.dtype!r} is not valid; use float32 or float64")
        from layergen.runtime.regularise import SCHEDULES

        if self.schedule not in SCHEDULES:
            raise LayergenError(f"schedule: unknown {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        for name in ("clip_value", "clip_norm", "max_norm", "l2", "l1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise LayergenError(f"{name}: must be a number ≥ 0 (0 turns it off), got {value!r}")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # classification
    val_rmse: list[float] = field(default_factory=list)  # regression, in the targets' units
    best_epoch: int = -1
    stopped: str = ""


def atomic_write(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:  # closed (flushed) before atomic_write renames it
        np.savez(handle, **arrays)


@dataclass
class Checkpoint:
    """A run as ``load_checkpoint`` restores it: the network in its state after ``epoch`` epochs, the
    run's settings, its history up to then, and the state of the generator that shuffles the batches
    (None in a checkpoint written before checkpoints kept it)."""

    net: Network
    config: TrainConfig
    history: History
    epoch: int
    shuffle: dict | None


def save_checkpoint(folder: Path, net: Network, config: TrainConfig, history: History, epoch: int,
                    data: Dataset | None = None, shuffle: dict | None = None) -> None:
    """The parameters, optimizer state and, with dropout, the mask generator's state (.npz), and as JSON
    the architecture, the run's settings and history, the shuffling generator's state (``shuffle``), how
    to rebuild the data (``data.source``) and how new data is prepared (``data.preprocessing()``: what
    ``layergen predict`` reads); each written to a temporary file, then renamed."""
    arrays = {**{f"param/{k}": v for k, v in net.params.items()}, **{f"state/{k}": v for k, v in net.state.items()}}
    if net.draws_masks:
        arrays["rng/dropout"] = sampler_state()
    atomic_write(folder / "checkpoint.npz", lambda tmp: _write_npz(tmp, arrays))
    meta = {"architecture": asdict(net.arch), "config": asdict(config), "epoch": epoch, "step": net.step_count,
            "history": asdict(history), "hypers": net.hypers, "shuffle": shuffle, "data": data.source if data else {},
            "preprocessing": data.preprocessing() if data else {}}
    _write_meta(folder, meta)


def _write_meta(folder: Path, meta: dict) -> None:
    atomic_write(folder / "checkpoint.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))


def record_history(folder: Path, history: History) -> None:
    """At the end of a run: the whole history into the checkpoint's JSON, whose state stays that of the
    best epoch (a resumed run reads the history up to the checkpoint's epoch)."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["history"] = asdict(history)
    _write_meta(folder, meta)


def checkpoint_data(folder: Path) -> dict:
    """The [data] section a checkpoint was trained on, so a resumed run sees the same split."""
    return json.loads((folder / "checkpoint.json").read_text()).get("data") or {"dataset": "digits", "split_seed": 0}


def load_checkpoint(folder: Path) -> Checkpoint:
    meta_path = folder / "checkpoint.json"
    if not meta_path.exists():
        raise LayergenError(f"resume: no checkpoint.json in {folder}")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") in ("flow", "iaf"):
        raise LayergenError(f"resume: {folder} holds a flow's checkpoint; --resume continues a network's run "
                            "(a flow example trains again with --example NAME; layergen sample draws from it)")
    config = TrainConfig(**meta["config"])
    net = Network(Architecture(**{k: tuple(v) if k in ("widths", "layers") else v for k, v in meta["architecture"].items()}),
                  np.dtype(config.dtype).type, config.seed, config.init,
                  {k: v for k, v in meta["hypers"].items() if k != "t"})
    with np.load(folder / "checkpoint.npz") as data:
        for key in data.files:
            kind, name = key.split("/", 1)
            if kind == "rng":
                set_sampler_state(data[key])
            else:
                (net.params if kind == "param" else net.state)[name][...] = data[key]
    net.step_count = meta["step"]
    epoch = meta["epoch"]
    # the history as far as the checkpoint's state: a finished run's JSON records the epochs after it too
    history = History(**{k: v[:epoch] if isinstance(v, list) else v for k, v in meta["history"].items()})
    history.stopped = ""
    return Checkpoint(net, config, history, epoch, meta.get("shuffle"))


def regularise(net: Network, config: TrainConfig, examples: int) -> None:
    """The run's clipping, max-norm and weight penalties onto the network, whose step reads them;
    ``examples``, the training samples, is the m of the L2 penalty λ/(2m) Σ‖W‖² (000 eq. 11)."""
    net.clip_value, net.clip_norm, net.max_norm = config.clip_value, config.clip_norm, config.max_norm
    net.l2, net.l1, net.penalty_examples = config.l2, config.l1, examples


def train(net: Network, data: Dataset, config: TrainConfig, checkpoint_dir: Path | None = None,
          history: History | None = None, start_epoch: int = 0, shuffle: dict | None = None) -> History:
    """Epochs ``start_epoch`` to ``config.epochs`` of shuffled full minibatches, each followed by the
    validation loss; ``shuffle`` is the batch-shuffling generator's state to continue from (a
    checkpoint's). Writes a checkpoint into ``checkpoint_dir`` at the start when it holds none or the
    run starts afresh, and after each epoch that improves the validation loss."""
    check_arrays(data.train.x, data.train.y, data.classes, "train", net.arch.inputs)
    check_arrays(data.val.x, data.val.y, data.classes, "validation", net.arch.inputs)
    if data.target_columns != net.arch.targets:
        raise LayergenError(f"train: the {data.name} data has {data.target_columns} target column(s), but the "
                            f"network's loss {net.arch.loss} reads {net.arch.targets} from its {net.arch.sizes[-1]} "
                            "outputs")
    history = history or History()
    dtype = net.dtype
    x = np.ascontiguousarray(data.train.x, dtype=dtype)
    if config.batch > len(x):  # only full batches are trained: an epoch would have no step at all
        raise LayergenError(f"batch: {config.batch} is more than the {len(x)} training samples of {data.name}; "
                            f"use batch ≤ {len(x)}")
    targets = training_targets(data.train.y, data.classes, dtype)
    # a checkpoint from before checkpoints kept the generator's state resumes with a stream of its own
    rng = np.random.default_rng(config.seed + 1000 * start_epoch)
    if shuffle is not None:
        try:
            rng.bit_generator.state = shuffle
        except (TypeError, ValueError, KeyError) as error:
            raise LayergenError(f"checkpoint: shuffle is not the state of NumPy's PCG64 generator ({error})") from None
    best = {k: v.copy() for k, v in net.params.items()}
    best_loss = min(history.val_loss) if history.val_loss else math.inf
    epochs = range(start_epoch, config.epochs)
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(epochs, desc=f"{data.name}", unit="epoch")
        epochs = bar
    xb = np.empty((config.batch, x.shape[1]), dtype)
    tb = np.empty((config.batch, targets.shape[1]), dtype)
    regularise(net, config, len(x))
    if checkpoint_dir is not None and (start_epoch == 0 or not (checkpoint_dir / "checkpoint.json").exists()):
        save_checkpoint(checkpoint_dir, net, config, history, start_epoch, data, rng.bit_generator.state)
    for epoch in epochs:
        net.set_learning_rate(learning_rate(config.schedule, config.lr, config.decay, epoch))
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x) - config.batch + 1, config.batch):  # full batches; one buffer set
            idx = order[start:start + config.batch]
            np.take(x, idx, axis=0, out=xb)
            np.take(targets, idx, axis=0, out=tb)
            losses.append(net.step(xb, tb))
        train_loss = float(np.mean(losses))
        if not math.isfinite(train_loss):
            history.stopped = f"the training loss became {train_loss} in epoch {epoch}; kept the last good checkpoint"
            for k, v in best.items():
                net.params[k][...] = v
            break
        val_loss, val_metric = evaluate(net, data.val.x.astype(dtype), data.val.y, data.classes, data.target_std)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        (history.val_rmse if data.regression else history.val_accuracy).append(val_metric)
        if bar is not None:
            metric = {"val_rmse": f"{val_metric:.4g}"} if data.regression else {"val_acc": f"{val_metric:.3f}"}
            bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", **metric)
        if val_loss < best_loss:
            best_loss, history.best_epoch = val_loss, epoch
            best = {k: v.copy() for k, v in net.params.items()}
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, net, config, history, epoch + 1, data, rng.bit_generator.state)
        elif epoch - history.best_epoch >= config.patience:
            history.stopped = f"early stopping after epoch {epoch}: no better validation loss for {config.patience} epochs"
            break
    for k, v in best.items():  # restore the best weights (000 §6.3)
        net.params[k][...] = v
    if checkpoint_dir is not None:
        record_history(checkpoint_dir, history)
    return history


def plot(history: History, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(history.train_loss, label="train")
    left.plot(history.val_loss, label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    regression = bool(history.val_rmse)
    right.plot(history.val_rmse if regression else history.val_accuracy, color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("validation RMSE" if regression else "validation accuracy")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
