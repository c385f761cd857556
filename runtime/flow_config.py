"""A flow's training configuration (TOML): the [flow] section makes a config a flow's, whose [data] names a
bundled data set or your own samples and whose [train] sets the steps. Every error names the key.

    [flow]                        # FlowArchitecture's fields; dim comes from the data
    transform = "realnvp"         # realnvp, nice, maf, sos
    couplings = 8
    activation = "leaky_relu alpha=0.1"
    specs = "my_specs"            # optional: your own activation specs, generated into [flow] generated

    [data]
    file = "points.csv"           # or dataset = "two-moons"; columns = [...], dequantise, split_seed

    [train]
    steps = 5000                  # batch, lr, lr_final, eval_every, patience, seed, dtype, out
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from layergen.errors import LayergenError
from layergen.runtime.config import check_sections, own_spec_modules
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import FlowData
from layergen.runtime.flow_files import load_flow_data
from layergen.runtime.flow_settings import FlowConfig

#: the keys of each section; [flow] takes FlowArchitecture's fields but dim (the data's) and own_modules
#: (which ``specs`` generates)
FLOW_SECTIONS: dict[str, set[str]] = {
    "flow": {f.name for f in fields(FlowArchitecture)} - {"dim", "own_modules"} | {"specs", "generated"},
    "data": {"dataset", "file", "columns", "dequantise", "split_seed"},
    "train": {"steps", "batch", "lr", "lr_final", "eval_every", "patience", "seed", "dtype", "out"},
}


def is_flow_config(raw: dict[str, Any]) -> bool:
    """Whether a config describes a flow (it has a [flow] section) rather than a network."""
    return "flow" in raw


def _data_settings(data: dict[str, Any], where: str, base: Path) -> dict[str, Any]:
    """[data], checked: the FlowConfig fields it sets, a file's path made absolute (relative to ``base``)."""
    if "file" in data and "dataset" in data:
        raise LayergenError(f"{where}: [data] give either dataset (a bundled one) or file (your own), not both")
    if "file" not in data:
        unused = sorted({"columns", "dequantise"} & set(data))
        if unused:
            raise LayergenError(f"{where}: [data] {', '.join(unused)} appl{'ies' if len(unused) == 1 else 'y'} to a "
                                "data file; add file = \"...\"")
        return dict(data)
    if not isinstance(data["file"], str) or not data["file"]:
        raise LayergenError(f"{where}: [data] file must be a path, got {data['file']!r}")
    columns = data.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise LayergenError(f"{where}: [data] columns must be a list of a .csv file's column names, got {columns!r}")
    if len(set(columns)) != len(columns):
        raise LayergenError(f"{where}: [data] columns names a column twice: {columns!r}")
    return {**data, "file": str((base / data["file"]).resolve()), "columns": columns}


def parse_flow(raw: dict[str, Any], where: str, base: Path = Path(),
               overrides: dict[str, Any] | None = None) -> tuple[FlowArchitecture, FlowConfig, FlowData]:
    """The architecture, settings and data of a flow's config; ``base`` is the config's folder, which its
    paths are relative to; ``overrides`` replace [train] keys (the command line's --seed, --steps)."""
    if "network" in raw:
        raise LayergenError(f"{where}: [network] and [flow] are two kinds of run; a config describes one of them")
    check_sections(raw, where, FLOW_SECTIONS)
    settings = {**raw.get("train", {}), **(overrides or {})}
    data_settings = _data_settings(raw.get("data", {}), where, base)
    settings.setdefault("out", f"runs/{Path(data_settings.get('file') or data_settings.get('dataset', 'two-moons')).stem}")
    try:
        config = FlowConfig(**settings, **data_settings)
    except LayergenError as exc:
        section = "data" if any(f"config: {key}" in str(exc) for key in FLOW_SECTIONS["data"]) else "train"
        raise LayergenError(f"{where}: [{section}] {str(exc).removeprefix('flow config: ')}") from exc
    try:
        data = load_flow_data(config)
    except LayergenError as exc:
        raise LayergenError(f"{where}: {exc}") from exc
    flow = dict(raw.get("flow", {}))
    own_modules = own_spec_modules(flow, where, base, section="flow")
    flow.pop("specs", None)
    flow.pop("generated", None)
    try:
        arch = FlowArchitecture(dim=int(data.train.shape[1]), **flow, own_modules=own_modules)
    except (LayergenError, TypeError) as exc:
        raise LayergenError(f"{where}: [flow] {str(exc).removeprefix('flow architecture: ')}") from exc
    return arch, config, data
