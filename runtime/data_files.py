"""Your own data for `layergen train`: a `.npz` file with arrays ``x`` and ``y``, or a `.csv` file with a
header row whose target column(s) ``[data] target`` names. Every problem is reported with the file, the
config key and what would be valid; the values themselves are checked by ``data.check_arrays``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError

TASKS = ("classification", "regression")

FORMATS = ".npz (arrays x and y) or .csv (a header row; [data] target names the target column or columns)"


def read_npz(path: Path, needed: dict[str, str]) -> list[np.ndarray]:
    """The arrays ``needed`` names (array → what it holds, for the error) from a .npz file, in that order."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in needed if key not in arrays.files]
            if missing:
                held = ", ".join(arrays.files) or "none"
                wanted = " and ".join(f"{key} ({what})" for key, what in needed.items())
                raise LayergenError(f"{path}: no array {' or '.join(missing)}; it holds {held}, and a data file "
                                    f"needs {wanted}")
            return [arrays[key] for key in needed]
    except (OSError, ValueError) as exc:  # not a zip archive, or an object array
        raise LayergenError(f"{path}: cannot read it as .npz: {exc}") from exc


@dataclass
class DataFile:
    """A data file's samples: features ``x``, labels or targets ``y`` and the number of ``classes`` (0: a
    regression), with the names of the feature and target columns (a .csv's header) and of the classes
    (a .csv's text labels, in the sorted order that numbers them)."""

    x: np.ndarray
    y: np.ndarray
    classes: int
    feature_names: list[str] | None = None
    target_names: list[str] | None = None
    class_names: list[str] | None = None


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A .csv file's header and its rows of values, each with its line number; blank lines skipped."""
    try:  # the csv module for quoted fields; utf-8-sig drops the byte-order mark spreadsheets write
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LayergenError(f"{path}: cannot read it as .csv: {exc}") from exc
    if len(rows) < 2:
        raise LayergenError(f"{path}: a .csv data file needs a header row and at least one row of values")
    header = [name.strip() for name in rows[0][1]]
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise LayergenError(f"{path}: line {line} has {len(row)} values, the header has {len(header)} columns")
    return header, rows[1:]


def float_columns(path: Path, header: list[str], rows: list[tuple[int, list[str]]], columns: list[int]) -> np.ndarray:
    """The values of ``columns`` (indices into the header) as floats; a cell that is not a number is reported
    with its line and column."""
    x = np.empty((len(rows), len(columns)))
    for i, (line, row) in enumerate(rows):
        for k, j in enumerate(columns):
            try:
                x[i, k] = float(row[j])
            except ValueError:
                raise LayergenError(f"{path}: line {line}, column {header[j]!r}: {row[j].strip()!r} is not a "
                                    "number") from None
    return x


def _read_csv(path: Path, target: str | list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features as floats; the target column(s) as floats, or as text when any target is not a number
    (class names, which ``read_data_file`` numbers); and the header."""
    header, rows = read_table(path)
    if target is None:
        raise LayergenError(f"{path}: [data] target: name the target column (or a list of them); the columns are "
                            f"{', '.join(header)}")
    targets = [target] if isinstance(target, str) else list(target)
    unknown = [name for name in targets if name not in header]
    if unknown or not targets:
        raise LayergenError(f"[data] target: no column {', '.join(map(repr, unknown)) or '(none given)'} in {path}; "
                            f"its columns are {', '.join(header)}")
    columns = [header.index(name) for name in targets]
    x = float_columns(path, header, rows, [j for j in range(len(header)) if j not in columns])
    text = np.array([[row[j].strip() for j in columns] for _, row in rows], dtype=str)
    try:
        return x, text.astype(np.float64), header
    except ValueError:
        return x, text, header


def read_data_file(path: Path, target: str | list[str] | None, task: str | None, classes: int | None) -> DataFile:
    """The samples of a data file; ``classes`` is 0 for a regression. The task is ``task`` if given,
    else a classification when ``y`` is one column of integers in a .npz or a .csv target column with
    text (class names, numbered 0, 1, ... in sorted order); a .csv's numeric targets are read as floats,
    so they make a regression unless ``task = "classification"``."""
    if not path.is_file():
        raise LayergenError(f"[data] file: {path} does not exist; give a data file: {FORMATS}")
    if task is not None and task not in TASKS:
        raise LayergenError(f"[data] task: unknown {task!r}; valid: {', '.join(TASKS)}")
    features = targets = names = None
    if path.suffix == ".npz":
        if target is not None:
            raise LayergenError(f"[data] target: applies to a .csv file; {path.name} holds its targets in y")
        x, y = read_npz(path, {"x": "samples × features", "y": "labels or targets"})
    elif path.suffix == ".csv":
        x, y, header = _read_csv(path, target)
        targets = [target] if isinstance(target, str) else list(target or [])
        features = [name for name in header if name not in targets]
    else:
        raise LayergenError(f"[data] file: {path.name}: unknown format {path.suffix!r}; use {FORMATS}")
    if y.dtype.kind == "U":  # a .csv's target column with text: class names, numbered in sorted order
        if task == "regression" or y.shape[1] != 1:
            raise LayergenError(f"{path}: the target column(s) hold text such as {str(y.flat[0])!r}; a regression "
                                "needs numbers, and class names go in one target column")
        unique, y = np.unique(y[:, 0], return_inverse=True)
        names, task = [str(name) for name in unique], "classification"
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise LayergenError(f"{path}: x and y must be numeric arrays, got {x.dtype} and {y.dtype}")
    task = task or ("classification" if np.issubdtype(y.dtype, np.integer) and y.ndim == 1 else "regression")
    if task == "regression":
        return DataFile(x.astype(np.float64), (y.reshape(-1, 1) if y.ndim == 1 else y).astype(np.float64), 0,
                        features, targets)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or (y.size and y.min() < 0):
        raise LayergenError(f"{path}: a classification needs one column of class labels 0, 1, 2, ...; y has shape "
                            f"{y.shape}" + (f" and values in [{np.nanmin(y)}, {np.nanmax(y)}]" if y.size else ""))
    found = int(y.max()) + 1 if y.size else 0
    if classes is not None and (not isinstance(classes, int) or classes < max(found, 2)):
        raise LayergenError(f"[data] classes: {classes!r} is too few for the labels in {path} (up to {found - 1}); "
                            f"give an integer ≥ {max(found, 2)} or leave it out")
    return DataFile(x.astype(np.float64), y.astype(np.int64), classes or max(found, 2), features, targets, names)
