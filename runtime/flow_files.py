"""Your own samples for a flow: a `.csv` file with a header row (every column, or those ``[data] columns``
names, is one dimension of the density) or a `.npz` file with an array ``x`` (samples × dimensions).
Every problem is reported with the file, the config key and what would be valid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.data_files import float_columns, read_npz, read_table
from layergen.runtime.flow_data import FlowData, check_points, dequantised, load_dataset, split
from layergen.runtime.flow_settings import FlowConfig

FORMATS = ".csv (a header row; each column, or those [data] columns names, one dimension) or .npz (an array x)"

#: each of the three splits needs a sample, and a density needs two dimensions
LEAST_SAMPLES = 6


def read_points(path: Path, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """The samples (rows) of a data file and the names of their dimensions (a .npz's: x0, x1, ...)."""
    if not path.is_file():
        raise LayergenError(f"[data] file: {path} does not exist; give a data file: {FORMATS}")
    if path.suffix == ".npz":
        if columns:
            raise LayergenError(f"[data] columns: applies to a .csv file; {path.name} holds its samples in x")
        (x,) = read_npz(path, {"x": "samples × dimensions"})
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
            raise LayergenError(f"{path}: x must be a numeric array of samples × dimensions, got shape {x.shape} "
                                f"and dtype {x.dtype}")
        return x.astype(np.float64), [f"x{j}" for j in range(x.shape[1])]
    if path.suffix != ".csv":
        raise LayergenError(f"[data] file: {path.name}: unknown format {path.suffix!r}; use {FORMATS}")
    header, rows = read_table(path)
    unknown = [name for name in columns if name not in header]
    if unknown:
        raise LayergenError(f"[data] columns: no column {', '.join(map(repr, unknown))} in {path}; its columns are "
                            f"{', '.join(header)}")
    names = columns or header
    return float_columns(path, header, rows, [header.index(name) for name in names]), names


def file_data(path: Path, columns: list[str], dequantise: bool, seed: int) -> FlowData:
    """A data file's samples split 2/3 train, 1/6 validation, 1/6 test (``seed``) and standardised with
    the training split's statistics, or dequantised first (``dequantise``: integer-valued data)."""
    x, names = read_points(path, columns)
    if x.shape[1] < 2:
        raise LayergenError(f"{path}: a flow models a density of ≥ 2 dimensions; the data has {x.shape[1]} column"
                            f"{'s' * (x.shape[1] != 1)} ({', '.join(names) or 'none'})")
    if len(x) < LEAST_SAMPLES:
        raise LayergenError(f"{path}: {len(x)} sample(s); a flow needs at least {LEAST_SAMPLES}, so that the "
                            "training, validation and test splits each hold some")
    check_points(x, x.shape[1], str(path))
    if dequantise:
        fractional = np.argwhere(x != np.round(x))
        if len(fractional):
            row, column = map(int, fractional[0])
            raise LayergenError(f"[data] dequantise: column {names[column]!r} of {path} holds {float(x[row, column])} "
                                f"(sample {row}); dequantisation spreads integer values over their bins [v, v + 1), "
                                "so it needs integers; leave it out for continuous data")
        return replace(dequantised(path.stem, x, seed), names=tuple(names))
    constant = [name for name, spread in zip(names, x.std(axis=0)) if spread == 0]
    if constant:
        raise LayergenError(f"{path}: column {', '.join(map(repr, constant))} holds one value only; a density over it "
                            "is unbounded. Drop it ([data] columns lists the ones to model), or, for integer-valued "
                            "data, set [data] dequantise = true")
    return replace(split(path.stem, x, seed, standardise=True), names=tuple(names))


def load_flow_data(config: FlowConfig) -> FlowData:
    """A flow run's data as its settings name it: your own ``file`` when given, else the bundled ``dataset``."""
    if config.file:
        return file_data(Path(config.file), config.columns, config.dequantise, config.split_seed)
    return load_dataset(config.dataset, config.split_seed)
