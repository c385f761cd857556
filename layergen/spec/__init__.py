"""The spec language (see ``declare``), stable functions and spec discovery."""

from layergen.spec.declare import (
    D,
    N,
    Elementwise,
    Expanded,
    LogSumExp,
    MatrixMap,
    Mean,
    Param,
    Reduction,
    Spec,
    Sum,
    broadcast_rows,
)
from layergen.spec.functions import log_sigmoid, sigmoid, softplus

__all__ = [
    "D", "N", "Elementwise", "Expanded", "LogSumExp", "MatrixMap", "Mean", "Param",
    "Reduction", "Spec", "Sum", "broadcast_rows", "log_sigmoid", "sigmoid", "softplus",
]
