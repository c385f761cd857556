"""Training configurations (TOML) and the built-in examples; every error names the key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from layergen.errors import LayergenError
from layergen.runtime.activation_settings import split_settings
from layergen.runtime.architecture import LOSSES, optimizer_hypers_with
from layergen.runtime.data import DATASETS, Dataset, from_file
from layergen.runtime.kernel_catalog import kernel_module, loss_predictions, own_kernels
from layergen.runtime.initialise import INITIALISERS
from layergen.runtime.network import Architecture
from layergen.runtime.run_config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = {
    "data": {"dataset", "split_seed", "file", "target", "task", "classes"},
    "network": {"hidden", "layers", "activation", "loss", "optimizer", "init", "specs", "generated"},
    "train": {"epochs", "batch", "seed", "patience", "lr", "dtype", "out", "schedule", "decay", "clip_value",
              "clip_norm", "max_norm", "l2", "l1"},
}

#: digits-mlp: an MLP 64-128-128-10 (ReLU, softmax cross-entropy, Adam, batch 128, 30 epochs);
#: diabetes-gaussian: a regressor 10-32-2 predicting a mean and a log-variance per patient (Gaussian
#: negative log-likelihood, 001 §3.12; ReLU, Adam, batch 32, up to 300 epochs, early stopping).
EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "digits-mlp": {
        "data": {"dataset": "digits", "split_seed": 0},
        "network": {"hidden": [128, 128], "activation": "relu", "loss": "softmax_cross_entropy", "optimizer": "adam"},
        "train": {"epochs": 30, "batch": 128, "seed": 0, "lr": 1e-3, "out": "runs/digits-mlp"},
    },
    "diabetes-gaussian": {
        "data": {"dataset": "diabetes", "split_seed": 0},
        "network": {"hidden": [32], "activation": "relu", "loss": "gaussian_nll", "optimizer": "adam"},
        "train": {"epochs": 300, "batch": 32, "seed": 0, "lr": 1e-3, "patience": 30, "out": "runs/diabetes-gaussian"},
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


#: losses that compare with class labels; the rest compare with numbers (regression, or one-hot rows)
CLASSIFICATION_LOSSES = ("softmax_cross_entropy", "bce_logits")


def check_sections(raw: dict[str, Any], where: str, sections: dict[str, set[str]] = SECTIONS) -> None:
    """Every top-level entry is a known section (a network's ``SECTIONS``, or a flow's), a table of known keys."""
    for section, value in raw.items():
        if section not in sections:
            raise LayergenError(f"{where}: unknown section [{section}]; valid: {', '.join(f'[{s}]' for s in sections)}")
        if not isinstance(value, dict):
            raise LayergenError(f"{where}: {section} must be a section, [{section}] with its keys below it; got "
                                f"{section} = {value!r}")
        unknown = set(value) - sections[section]
        if unknown:
            raise LayergenError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in [{section}]; valid: "
                                f"{', '.join(sorted(sections[section]))}")


def own_spec_modules(net: dict[str, Any], where: str, base: Path, section: str = "network") -> tuple[str, ...]:
    """``[network] specs`` (or ``[flow] specs``, ``section``): folders of your own specs
    (``<folder>/<group>/<name>.py``, relative to the config's folder ``base``), whose activations and
    optimizers the network (a flow's conditioners: activations) may name. Their kernel modules are
    generated as `layergen generate --specs DIR --out DIR` does (written only when changed) into the
    section's ``generated``, by default `generated` beside the config; returned as absolute paths."""
    from layergen.codegen import generate
    from layergen.spec.loader import discover

    folders = net.get("specs", [])
    if isinstance(folders, str):
        folders = [folders]
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise LayergenError(f"{where}: [{section}] specs must be a folder of your specs, or a list of them, got "
                            f"{folders!r}")
    generated = net.get("generated", "generated")
    if not folders:
        if "generated" in net:
            raise LayergenError(f"{where}: [{section}] generated is where the modules of your specs go; add "
                                "specs = \"my_specs\" or leave generated out")
        return ()
    if not isinstance(generated, str):
        raise LayergenError(f"{where}: [{section}] generated must be a folder, got {generated!r}")
    missing = [f for f in folders if not (base / f).is_dir()]
    if missing:
        raise LayergenError(f"{where}: [{section}] specs: no folder {base / missing[0]} (relative to the config's "
                            "folder)")
    try:
        specs = discover([base / f for f in folders], include_builtin=False)
        report = generate(specs, base / generated)
    except LayergenError as exc:
        raise LayergenError(f"{where}: [{section}] specs: {exc}") from exc
    for path in report.written:
        print(f"wrote {path}")
    return tuple(sorted(str(path.resolve()) for path in (*report.written, *report.unchanged)))


#: what an optimizer's config entry may not set, and why
RESERVED_OPTIMIZER_SETTINGS = {"lr": "[train] lr sets it (and [train] schedule its decay)",
                               "t": "it is the step count, which the run keeps"}


def optimizer_settings(text: object, where: str) -> tuple[str, dict[str, float]]:
    """``[network] optimizer``: the optimizer's name, then its hyperparameters as for an activation
    ("adam beta2=0.99", "sgd_momentum gamma=0.95"); lr and t are the run's."""
    if not isinstance(text, str):
        raise LayergenError(f"{where}: [network] optimizer must be an optimizer's name, with any settings "
                            f"(\"adam beta2=0.99\"), got {text!r}")
    name, settings = split_settings(text, f"{where}: [network] bad optimizer {text!r}", "an optimizer's",
                                      "'adam beta2=0.99'")
    for key, _ in settings:
        if key in RESERVED_OPTIMIZER_SETTINGS:
            raise LayergenError(f"{where}: [network] optimizer: {key} cannot be set here; "
                                f"{RESERVED_OPTIMIZER_SETTINGS[key]}")
    return name, dict(settings)


def loss_prediction_names(name: str, own_modules: tuple[str, ...]) -> list[str]:
    """The predictions loss ``name`` reads per target column (``kernel_catalog.loss_predictions``), for sizing
    the last layer; ["prediction"] for a name that is no usable loss, which ``Architecture`` then refuses with
    the reason."""
    if name not in LOSSES and name not in own_kernels(own_modules).losses:
        return ["prediction"]
    return loss_predictions(kernel_module(name, own_modules))


def parse(raw: dict[str, Any], where: str, columns: int, features: int,
          regression: bool = False, base: Path = Path()) -> tuple[Architecture, TrainConfig, Path]:
    """The architecture, training settings and output folder of a config, for data of ``features`` input
    columns and ``columns`` target columns (the classes, or the regression targets when ``regression``);
    ``base``: the config's folder, which its paths are relative to."""
    check_sections(raw, where)
    net = raw.get("network", {})
    hidden = net.get("hidden", [128, 128])
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise LayergenError(f"{where}: [network] hidden must be a list of positive integers, got {hidden!r}")
    layers = net.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise LayergenError(f"{where}: [network] layers must be a list of strings such as \"dense 128\", got {layers!r}")
    if "layers" in net:
        if not layers:
            raise LayergenError(f"{where}: [network] layers is empty; list the layers, the last one `dense <outputs>`, "
                                "or leave layers out to use hidden")
        both = sorted({"hidden", "activation"} & set(net))
        if both:  # the layer list would silently win over them
            raise LayergenError(f"{where}: [network] give either layers (the network layer by layer) or hidden and "
                                f"activation, not both; this config has layers and {' and '.join(both)}")
    loss = net.get("loss", "mse" if regression else "softmax_cross_entropy")
    loss_name = str(loss).strip().partition(" ")[0]  # a loss's settings follow its name: "huber delta=0.5"
    if regression and loss_name in CLASSIFICATION_LOSSES:
        raise LayergenError(f"{where}: [network] loss {loss!r} compares with class labels, but the data is a "
                            f"regression; valid: mse, mae, gaussian_nll")
    own = own_spec_modules(net, where, base)
    predictions = loss_prediction_names(loss_name, own)
    if not regression and len(predictions) > 1:
        raise LayergenError(f"{where}: [network] loss {loss!r} reads {len(predictions)} predictions per target "
                            f"({', '.join(predictions)}), a regression loss, but the data has class labels; valid: "
                            f"{', '.join(l for l in LOSSES if len(loss_prediction_names(l, ())) == 1)}")
    outputs = columns * len(predictions)
    optimizer, settings = optimizer_settings(net.get("optimizer", "adam"), where)
    try:
        arch = Architecture(inputs=features, widths=(*hidden, outputs), activation=net.get("activation", "relu"),
                            loss=loss, optimizer=optimizer, layers=tuple(layers), own_modules=own)
        optimizer_hypers_with(arch, settings)  # names and domains, checked here to name the key
    except LayergenError as exc:
        raise LayergenError(f"{where}: [network] {exc}") from exc
    if arch.targets != columns:
        raise LayergenError(f"{where}: [network] layers: the last dense layer has {arch.sizes[-1]} outputs; the "
                            f"data has {columns} target column(s), so it needs `dense {outputs}`")
    init = net.get("init", "he")
    if init not in INITIALISERS:  # 003 §7
        raise LayergenError(f"{where}: [network] init: unknown scheme {init!r}; valid: {', '.join(INITIALISERS)}")
    train = dict(raw.get("train", {}))
    out = Path(train.pop("out", "runs/train"))
    try:
        config = TrainConfig(**train, init=init, optimizer_settings=settings)
    except TypeError as exc:
        raise LayergenError(f"{where}: [train] {exc}") from exc
    except LayergenError as exc:
        raise LayergenError(f"{where}: [train] {exc}") from exc
    return arch, config, out


def load_data(raw: dict[str, Any], where: str, base: Path) -> Dataset:
    """The [data] section's dataset: a bundled one by name (``dataset``, digits by default), or a file of
    your own (``file``, relative to ``base``, the config's folder; with ``target``, ``task``, ``classes``)."""
    check_sections(raw, where)
    data = raw.get("data", {})
    seed = data.get("split_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LayergenError(f"{where}: [data] split_seed must be an integer ≥ 0, got {seed!r}")
    if "file" not in data:
        unused = sorted({"target", "task", "classes"} & set(data))
        if unused:
            raise LayergenError(f"{where}: [data] {', '.join(unused)} appl{'ies' if len(unused) == 1 else 'y'} to a data "
                                "file; add file = \"...\"")
        name = data.get("dataset", "digits")
        if name not in DATASETS:
            raise LayergenError(f"{where}: [data] unknown dataset {name!r}; valid: {', '.join(DATASETS)}, or your "
                                "own data with file = \"data.npz\" or \"data.csv\"")
        return DATASETS[name](seed)
    if "dataset" in data:
        raise LayergenError(f"{where}: [data] give either dataset (a bundled one) or file (your own), not both")
    if not isinstance(data["file"], str):
        raise LayergenError(f"{where}: [data] file must be a path, got {data['file']!r}")
    try:
        return from_file(base / data["file"], data.get("target"), data.get("task"), data.get("classes"), seed)
    except LayergenError as exc:
        raise LayergenError(f"{where}: {exc}") from exc
