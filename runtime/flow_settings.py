"""A flow run's settings (``FlowConfig``: the [data] and [train] sections of a flow's config) and its
record (``FlowHistory``: the NLLs at each evaluation, the best step, why it stopped early)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from layergen.errors import LayergenError
from layergen.runtime.flow_data import DATASETS
from layergen.runtime.run_config import check_integer, is_number


@dataclass
class FlowConfig:
    """A flow run's settings: its data (a bundled ``dataset``, or your own ``file``, see
    ``runtime/flow_files.py``) and its training (the [data] and [train] sections of a flow's config)."""

    dataset: str = "two-moons"
    steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-3  # exponential decay from lr to lr_final over the steps (000 §7.3)
    eval_every: int = 100
    patience: int = 10  # evaluations without a better validation NLL before stopping
    seed: int = 0
    dtype: str = "float64"
    out: str = "runs/two-moons"
    file: str = ""  # your own samples (.csv or .npz), an absolute path; then ``dataset`` is unused
    columns: list[str] = field(default_factory=list)  # a .csv file's columns to model (empty: all)
    dequantise: bool = False  # integer-valued data: add U(0, 1) noise to each value (000 §10.5)
    split_seed: int = 0  # the seed of the data's split (and of a bundled generator's draws)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "patience"):
            check_integer(f"flow config: {name}", getattr(self, name), 1, "a positive integer")
        for name in ("seed", "split_seed"):
            check_integer(f"flow config: {name}", getattr(self, name), 0, "an integer ≥ 0")
        for name in ("lr", "lr_final"):
            if not is_number(getattr(self, name)) or not 0 < getattr(self, name) < math.inf:
                raise LayergenError(f"flow config: {name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.file:
            self.dataset = ""  # the data are the file's; the checkpoint should not name a bundled set
        elif self.dataset not in DATASETS:
            raise LayergenError(f"flow config: dataset {self.dataset!r} is unknown; valid: {', '.join(DATASETS)}")
        if self.dtype not in ("float32", "float64"):
            raise LayergenError(f"flow config: dtype must be float32 or float64, got {self.dtype!r}")
        if not isinstance(self.dequantise, bool):
            raise LayergenError(f"flow config: dequantise must be true or false, got {self.dequantise!r}")


@dataclass
class FlowHistory:
    steps: list[int] = field(default_factory=list)
    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_step: int = 0
    stopped: str = ""
