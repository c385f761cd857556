"""A supervised run's settings (``TrainConfig``, the [train] section of a config) and its record
(``History``: the losses and metrics per epoch, the best epoch, why it stopped early)."""

from __future__ import annotations

from dataclasses import dataclass, field

from layergen.errors import LayergenError


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
