"""Calling generated kernels generically, from the ``KERNELS`` metadata of their module."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

import numpy as np

#: Sizes used by the verification; any other symbolic size gets ``DEFAULT_SIZE``.
SIZES: dict[str, int] = {"N": 6, "D": 4, "P": 7}
DEFAULT_SIZE = 3


def resolve(shape: tuple[str, ...], sizes: Mapping[str, int] = SIZES) -> tuple[int, ...]:
    return tuple(int(s) if s.isdigit() else sizes.get(s, DEFAULT_SIZE) for s in shape)


class KernelCall:
    """One kernel of a generated module with its argument metadata."""

    def __init__(self, module: ModuleType, name: str) -> None:
        self.module = module
        self.name = name
        self.function = getattr(module, name)
        self.args, self.op_count = module.KERNELS[name]

    def names(self, *roles: str) -> list[str]:
        return [n for n, role, _ in self.args if role in roles]

    def shape(self, name: str) -> tuple[str, ...]:
        return next(s for n, _, s in self.args if n == name)

    def __call__(self, values: Mapping[str, object], dtype: type, sizes: Mapping[str, int] = SIZES
                 ) -> tuple[dict[str, np.ndarray], object]:
        """Call with ``values`` for every non-output argument; outputs are allocated here.

        Arrays are cast to ``dtype``; hyperparameters not given take their defaults.
        Returns the output arrays by name and the kernel's return value.
        """
        call_args: list[object] = []
        outputs: dict[str, np.ndarray] = {}
        for name, role, shape in self.args:
            if role == "scratch":  # caller-allocated working memory: NaN-filled, so reading it before writing shows
                call_args.append(np.full(resolve(shape, sizes), np.nan, dtype=dtype))
            elif role in ("output", "grad"):
                outputs[name] = np.full(resolve(shape, sizes), np.nan, dtype=dtype)
                call_args.append(outputs[name])
            elif role == "inout":  # updated in place: a copy goes in, and comes back as <name>_new
                outputs[f"{name}_new"] = np.array(values[name], dtype=dtype, order="C")
                call_args.append(outputs[f"{name}_new"])
            elif role == "hyper":
                call_args.append(float(values.get(name, self.module.HYPER_DEFAULTS[name])))
            else:
                call_args.append(np.array(values[name], dtype=dtype, order="C"))  # keeps 0-d arrays 0-d
        result = self.function(*call_args)
        return outputs, result
