"""A supervised run's settings (``TrainConfig``, the [train] section of a config) and its record
(``History``: the losses and metrics per epoch, the best epoch, why it stopped early)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from layergen.errors import LayergenError
from layergen.runtime.initialise import INITIALISERS


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
    #: the optimizer's hyperparameters set in its config entry ("adam beta2=0.99"); lr is ``lr`` above
    optimizer_settings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_integer("batch", self.batch, 1, "a positive number of samples")
        check_integer("epochs", self.epochs, 1, "a positive integer")
        check_integer("patience", self.patience, 1, "a positive number of epochs without a better validation loss")
        check_integer("seed", self.seed, 0, "an integer ≥ 0")
        if not is_number(self.lr) or not 0 < self.lr < math.inf:
            raise LayergenError(f"lr: must be a finite number > 0, got {self.lr!r}")
        if self.dtype not in ("float32", "float64"):
            raise LayergenError(f"dtype: {self.dtype!r} is not valid; use float32 or float64")
        if self.init not in INITIALISERS:
            raise LayergenError(f"init: unknown scheme {self.init!r}; valid: {', '.join(INITIALISERS)}")
        from layergen.runtime.regularise import SCHEDULES

        if self.schedule not in SCHEDULES:
            raise LayergenError(f"schedule: unknown {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if not is_number(self.decay) or not 0 <= self.decay < math.inf or (self.schedule == "inverse_sqrt"
                                                                          and self.decay == 0):
            raise LayergenError(f"decay: must be a finite number ≥ 0 (> 0 for inverse_sqrt, whose rate it scales), "
                                f"got {self.decay!r}")
        for name in ("clip_value", "clip_norm", "max_norm", "l2", "l1"):
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value < math.inf:
                raise LayergenError(f"{name}: must be a number ≥ 0 (0 turns it off), got {value!r}")


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_integer(name: str, value: object, least: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise LayergenError(f"{name}: must be {what}, got {value!r}")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # classification
    val_rmse: list[float] = field(default_factory=list)  # regression, in the targets' units
    best_epoch: int = -1
    stopped: str = ""
