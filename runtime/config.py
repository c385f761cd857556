"""Training configurations (TOML) and the built-in examples; every error names the key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from layergen.errors import LayergenError
from layergen.runtime.network import Architecture
from layergen.runtime.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATASETS = ("digits",)
SECTIONS = {
    "data": {"dataset", "split_seed"},
    "network": {"hidden", "layers", "activation", "loss", "optimizer", "init"},
    "train": {"epochs", "batch", "seed", "patience", "lr", "dtype", "out", "schedule", "decay", "clip_value",
              "clip_norm", "max_norm", "l2", "l1"},
}

#: digits-mlp: an MLP 64-128-128-10 (ReLU, softmax cross-entropy, Adam, batch 128, 30 epochs).
EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "digits-mlp": {
        "data": {"dataset": "digits", "split_seed": 0},
        "network": {"hidden": [128, 128], "activation": "relu", "loss": "softmax_cross_entropy", "optimizer": "adam"},
        "train": {"epochs": 30, "batch": 128, "seed": 0, "lr": 1e-3, "out": "runs/digits-mlp"},
    },
}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LayergenError(f"{path}: cannot read the config: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayergenError(f"{path}: malformed TOML: {exc}") from exc


def parse(raw: dict[str, Any], where: str, classes: int, features: int) -> tuple[Architecture, TrainConfig, Path]:
    for section, value in raw.items():
        if section not in SECTIONS:
            raise LayergenError(f"{where}: unknown section [{section}]; valid: {', '.join(f'[{s}]' for s in SECTIONS)}")
        unknown = set(value) - SECTIONS[section]
        if unknown:
            raise LayergenError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in [{section}]; valid: "
                                f"{', '.join(sorted(SECTIONS[section]))}")
    net = raw.get("network", {})
    hidden = net.get("hidden", [128, 128])
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise LayergenError(f"{where}: [network] hidden must be a list of positive integers, got {hidden!r}")
    layers = net.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise LayergenError(f"{where}: [network] layers must be a list of strings such as \"dense 128\", got {layers!r}")
    try:
        arch = Architecture(inputs=features, widths=(*hidden, classes), activation=net.get("activation", "relu"),
                            loss=net.get("loss", "softmax_cross_entropy"), optimizer=net.get("optimizer", "adam"),
                            layers=tuple(layers))
    except LayergenError as exc:
        raise LayergenError(f"{where}: [network] {exc}") from exc
    train = dict(raw.get("train", {}))
    out = Path(train.pop("out", "runs/train"))
    try:
        config = TrainConfig(**train, init=net.get("init", "he"))
    except TypeError as exc:
        raise LayergenError(f"{where}: [train] {exc}") from exc
    except LayergenError as exc:
        raise LayergenError(f"{where}: [train] {exc}") from exc
    return arch, config, out


def dataset_name(raw: dict[str, Any], where: str) -> tuple[str, int]:
    data = raw.get("data", {})
    name = data.get("dataset", "digits")
    if name not in DATASETS:
        raise LayergenError(f"{where}: [data] unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return name, int(data.get("split_seed", 0))
