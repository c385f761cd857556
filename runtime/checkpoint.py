"""Checkpoints of a supervised run, written atomically (a temporary file, then a rename), so a crash
never leaves a half-written one.

A checkpoint is the state after the best epoch so far (or a run's start, before any), complete and in
one file, ``checkpoint.npz``: the parameters, the optimizer's state, and a JSON description with the
step count (which, with the seed, numbers dropout's masks), the state of the generator that shuffles the
batches, the architecture, the settings, and how to rebuild and prepare the data (with
its SHA-256). Resuming from it repeats the epochs after the best one exactly as they ran, so a run
stopped at any point and resumed ends bit for bit where the uninterrupted run ends. ``checkpoint.json``
repeats the description for reading; at the end of a run it also records the whole history.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.data import Dataset
from layergen.runtime.kernel_catalog import own_fingerprints, refuse_changed_kernels
from layergen.runtime.network import Architecture, Network
from layergen.runtime.run_config import History, TrainConfig


def atomic_write(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path`` in one rename, with
    the permissions a file created by ``open`` would have (mkstemp's 0600 would hide plots and checkpoints
    from the user's group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
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
    #: how the training data was prepared (``Dataset.preprocessing``) and its SHA-256 (``Dataset.fingerprint``);
    #: empty in an older checkpoint
    preprocessing: dict
    data_sha256: str


def save_checkpoint(folder: Path, net: Network, config: TrainConfig, history: History, epoch: int,
                    data: Dataset | None = None, shuffle: dict | None = None) -> None:
    """``checkpoint.npz``: the parameters, the optimizer's state and the run's description as JSON text
    (``meta/json``): the architecture, the run's settings and history, the step count (which, with the
    seed, numbers dropout's masks), the shuffling generator's state (``shuffle``), how to rebuild the data
    (``data.source``) and how new data is prepared (``data.preprocessing()``, what ``layergen predict``
    reads). One file holds the whole state, so a crash can never pair one epoch's arrays with another's
    description; ``checkpoint.json`` repeats the description for people and tools."""
    meta = {"architecture": asdict(net.arch), "config": asdict(config), "epoch": epoch, "step": net.step_count,
            "history": asdict(history), "hypers": net.hypers, "shuffle": shuffle, "data": data.source if data else {},
            "data_sha256": data.fingerprint() if data else "", "preprocessing": data.preprocessing() if data else {},
            "own_kernels": own_fingerprints(net.arch.own_modules)}
    arrays = {**{f"param/{k}": v for k, v in net.params.items()}, **{f"state/{k}": v for k, v in net.state.items()},
              "meta/json": np.array(json.dumps(meta))}
    atomic_write(folder / "checkpoint.npz", lambda tmp: write_npz(tmp, arrays))
    write_description(folder, meta)


def write_description(folder: Path, meta: dict) -> None:
    """``checkpoint.json``: a checkpoint's description, for people and tools (and ``layergen sample``)."""
    atomic_write(folder / "checkpoint.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))


def record_history(folder: Path, history: object) -> None:
    """At the end of a run: the whole history (a network's ``History`` or a flow's ``FlowHistory``) into
    ``checkpoint.json``. The state, and the description a resumed run reads (in the .npz), stay those of
    the best epoch or step."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["history"] = asdict(history)
    write_description(folder, meta)


def checkpoint_data(folder: Path) -> dict:
    """The [data] section a checkpoint was trained on, so a resumed run sees the same split."""
    return json.loads((folder / "checkpoint.json").read_text()).get("data") or {"dataset": "digits", "split_seed": 0}


def load_checkpoint(folder: Path) -> Checkpoint:
    """The run in ``folder`` as its checkpoint holds it. The description comes from the .npz, which holds
    it with the arrays; a checkpoint written before it did is described by ``checkpoint.json``."""
    meta_path = folder / "checkpoint.json"
    if not meta_path.exists():
        raise LayergenError(f"resume: no checkpoint.json in {folder}")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") in ("flow", "iaf"):
        raise LayergenError(f"resume: {folder} holds a flow's checkpoint, not a network's (runtime/flow_checkpoint.py "
                            "loads it; layergen train --resume continues either)")
    with np.load(folder / "checkpoint.npz") as data:
        arrays = {key: data[key] for key in data.files}
    if "meta/json" in arrays:
        meta = json.loads(str(arrays.pop("meta/json")))
    config = TrainConfig(**meta["config"])
    arch = Architecture(**{k: tuple(v) if k in ("widths", "layers", "own_modules") else v
                           for k, v in meta["architecture"].items()})
    refuse_changed_kernels(meta.get("own_kernels", {}), arch.own_modules, folder)
    net = Network(arch,
                  np.dtype(config.dtype).type, config.seed, config.init,
                  {k: v for k, v in meta["hypers"].items() if k != "t"})
    for key, value in arrays.items():
        kind, name = key.split("/", 1)
        (net.params if kind == "param" else net.state)[name][...] = value
    net.step_count = meta["step"]
    epoch = meta["epoch"]
    # the history as far as the checkpoint's state (an older checkpoint's JSON records the epochs after it too)
    history = History(**{k: v[:epoch] if isinstance(v, list) else v for k, v in meta["history"].items()})
    history.stopped = ""
    return Checkpoint(net, config, history, epoch, meta.get("shuffle"), meta.get("preprocessing") or {},
                      meta.get("data_sha256", ""))


def check_same_data(checkpoint: Checkpoint, data: Dataset, folder: Path) -> None:
    """A resumed run must see the data it was trained on: the rebuilt dataset's SHA-256 equals the one the
    checkpoint recorded (an older checkpoint: its standardisation statistics and names)."""
    if checkpoint.data_sha256:
        if data.fingerprint() == checkpoint.data_sha256:
            return
        changed = "contents"
    else:
        rebuilt = json.loads(json.dumps(data.preprocessing()))  # as the checkpoint's JSON holds them
        if not checkpoint.preprocessing or rebuilt == checkpoint.preprocessing:
            return
        changed = ", ".join(sorted(k for k in rebuilt if rebuilt[k] != checkpoint.preprocessing.get(k)))
    raise LayergenError(f"resume: the {data.name} data is not what the run in {folder} was trained on (its {changed} "
                        "differ); resume with the same data, or start a new run")
