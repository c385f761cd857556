"""The training loop: shuffled minibatches, validation, early stopping, checkpoints.

Early stopping (000 §6.3, 003 §6.3) keeps the weights of the best validation loss and restores them
at the end. After each epoch that improves the validation loss the run is checkpointed
(``runtime/checkpoint.py``: complete and atomic, so a resumed run ends where the uninterrupted one
would). A loss that turns NaN stops training with a message and keeps the last good checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.checkpoint import atomic_write, record_history, save_checkpoint
from layergen.runtime.data import Dataset, check_arrays
from layergen.runtime.evaluate import evaluate, training_targets
from layergen.runtime.network import Network
from layergen.runtime.regularise import learning_rate
from layergen.runtime.run_config import History, TrainConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


def curves_figure(history: History) -> Figure:
    """The training curves per epoch, numbered from 1 as the command line reports them: the training loss
    (the mean over the epoch's minibatches) and the validation loss, and the validation accuracy (or RMSE
    for a regression). A dashed line marks the best epoch, whose weights early stopping restored (000 §6.3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.val_loss) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, history.train_loss, label="train")
    left.plot(epochs, history.val_loss, label="validation")
    left.set_ylabel("loss")
    regression = bool(history.val_rmse)
    right.plot(epochs, history.val_rmse if regression else history.val_accuracy, color="tab:green")
    right.set_ylabel("validation RMSE" if regression else "validation accuracy")
    for axes in (left, right):
        if history.best_epoch >= 0:
            axes.axvline(history.best_epoch + 1, color="grey", linestyle="--", linewidth=1,
                         label=f"best epoch ({history.best_epoch + 1}), restored")
        axes.set_xlabel("epoch")
    left.legend()
    fig.tight_layout()
    return fig


def plot(history: History, path: Path) -> None:
    """``curves_figure`` written atomically as a PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(history)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
