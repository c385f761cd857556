"""Network architectures: layer nodes parsed from a list, their parameters, the optimizer's metadata."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from numbers import Real
from pathlib import Path
from types import ModuleType

from layergen.errors import LayergenError
from layergen.runtime.activation_settings import Settings, activation_hypers, split_settings
from layergen.runtime.kernel_catalog import (
    builtin_activations, builtin_layers, builtin_optimizers, kernel_module, layer_params, loss_predictions,
    own_kernels,
)
from layergen.runtime.modules import load_builtin, module_fingerprint
from layergen.conventions import OPTIMIZER_GRADIENT, OPTIMIZER_PARAMETER, describe, in_domain


LOSSES = ("softmax_cross_entropy", "mse", "bce_logits", "mae", "gaussian_nll")


@cache
def dropout_domain() -> str:
    """The values dropout's p may take: the range its spec declares (``HYPER_DOMAINS`` of the module)."""
    return str(load_builtin("dropout").HYPER_DOMAINS["p"])


def layer_help(activations: Sequence[str]) -> str:
    return ("dense <units>, dropout <p>, batch_norm, layer_norm, or an activation (" + ", ".join(activations)
            + "), optionally with hyperparameters such as 'leaky_relu alpha=0.2'")


@dataclass(frozen=True)
class Node:
    """One layer of a sequential network: ``kind`` with its ``width`` out and options."""

    kind: str  # dense, activation, dropout, batch_norm, layer_norm
    width: int
    name: str = ""  # the activation's spec name
    p: float = 0.0  # dropout probability
    index: int = 0  # per-kind counter: W{index}, A{index}, ...
    hypers: Settings = ()  # an activation's settings, (name, value) as the layer gave them


def parse_layers(inputs: int, layers: Sequence[str], activations: Sequence[str],
                 why_not: Callable[[str], str] = lambda name: "") -> list[Node]:
    """The nodes of a layer list such as ("dense 128", "relu", "dropout 0.2", "dense 10"); ``activations``:
    the activation specs the network may use; ``why_not``: why a spec of the user's named as a layer is
    not one of them (``OwnKernels.why_not``)."""
    nodes: list[Node] = []
    width = inputs
    counters: dict[str, int] = {}
    for text in layers:
        word, _, arg = str(text).strip().partition(" ")
        try:
            if word == "dense":
                width = int(arg)
                if width <= 0:
                    raise ValueError
                node = Node("dense", width)
            elif word == "dropout":
                p = float(arg)
                if not in_domain(p, dropout_domain()):  # the range the spec declares, [0, 1)
                    raise ValueError
                node = Node("dropout", width, p=p)
            elif word in ("batch_norm", "layer_norm") and not arg:
                node = Node(word, width)
            elif word in activations:
                _, settings = split_settings(text, f"architecture: bad layer {text!r}")
                node = Node("activation", width, name=word, hypers=settings)
            else:
                raise LayergenError(f"architecture: unknown layer {text!r}{why_not(word)}; valid: {layer_help(activations)}")
        except ValueError:
            raise LayergenError(f"architecture: bad layer {text!r}: dense needs a positive integer, dropout a "
                                f"probability {describe(dropout_domain())}") from None
        # activations count by name: a layer of the user's with parameters names them prelu0_a, prelu1_a, ...
        counter = node.name if node.kind == "activation" else node.kind
        nodes.append(Node(node.kind, node.width, node.name, node.p, counters.get(counter, 0), node.hypers))
        counters[counter] = counters.get(counter, 0) + 1
    if not nodes or nodes[-1].kind != "dense":
        raise LayergenError("architecture: the last layer must be `dense <outputs>` (the loss reads its output)")
    return nodes


@dataclass(frozen=True)
class Architecture:
    """A sequential network: ``layers`` such as ("dense 128", "relu", "dropout 0.2", "dense 10"),
    or, when ``layers`` is empty, dense layers of ``widths`` with ``activation`` between them.
    ``own_modules``: kernel modules generated from the user's specs (their absolute paths), whose
    activations and optimizers the network may name besides the built-in catalog's."""

    inputs: int
    widths: tuple[int, ...] = ()
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "adam"
    layers: tuple[str, ...] = ()
    own_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.inputs <= 0 or (not self.layers and (not self.widths or any(w <= 0 for w in self.widths))):
            raise LayergenError(f"architecture: inputs and every width must be positive, got {self.inputs} and {self.widths}")
        # absolute: the fused module imports them by path, from the cache's folder
        object.__setattr__(self, "own_modules", tuple(str(Path(path).resolve()) for path in self.own_modules))
        own = own_kernels(self.own_modules)
        # its name; its settings are checked with the nodes below
        activation, _ = split_settings(self.activation, f"architecture: bad layer {self.activation!r}")
        for name, value, valid in (("activation", activation, self.activations()), ("loss", self.loss_name, (*LOSSES, *own.losses)),
                                   ("optimizer", self.optimizer, (*builtin_optimizers(), *own.optimizers))):
            if value not in valid:
                raise LayergenError(f"architecture: unknown {name} {value!r}{own.why_not(value, name)}; valid: "
                                    f"{', '.join(valid)}")
        nodes = self.nodes()  # validates the layer list
        for node in nodes:
            if node.kind == "activation":
                self.activation_hypers(node)  # validates its settings
        self.loss_hypers()  # validates its settings
        predictions = self.predictions()
        if nodes[-1].width % len(predictions):
            raise LayergenError(f"architecture: loss {self.loss_name} reads {len(predictions)} predictions per target "
                                f"({', '.join(predictions)}), side by side, so the last dense layer needs a width of "
                                f"{len(predictions)} × targets; got {nodes[-1].width}")

    def activations(self) -> tuple[str, ...]:
        """The activation specs this network may use: the built-in catalog's and the user's own, with the
        user's layers that train parameters of their own (``kernel_catalog.layer_misfit``)."""
        own = own_kernels(self.own_modules)
        return (*builtin_activations(), *builtin_layers(), *own.activations, *own.layers)

    def kernel(self, name: str) -> ModuleType:
        """The generated module of spec ``name``: the user's own if it is one of them, else the built-in one."""
        return kernel_module(name, self.own_modules)

    @property
    def loss_name(self) -> str:
        """The loss's spec name, without the settings ``loss`` may carry ("huber delta=0.5")."""
        return split_settings(self.loss, f"architecture: bad loss {self.loss!r}", "a loss's", "'huber delta=0.5'")[0]

    def loss_hypers(self) -> dict[str, float]:
        """The hyperparameters the loss runs with, in its kernels' order: its spec's defaults with the settings
        ``loss`` gives in their place, each checked against the domain its symbol declares."""
        name, settings = split_settings(self.loss, f"architecture: bad loss {self.loss!r}", "a loss's", "'huber delta=0.5'")
        return activation_hypers(name, settings, self.kernel(name), "architecture", "loss")

    def activation_hypers(self, node: Node) -> dict[str, float]:
        """The hyperparameters activation ``node`` runs with, in its kernels' order: the spec's defaults, with
        the layer's settings in their place. Each setting must name one of them and lie in the domain its
        symbol declares (``HYPER_DOMAINS``; ``layergen.spec.domains``): the kernels are derived under it."""
        return activation_hypers(node.name, node.hypers, self.kernel(node.name), "architecture")

    def nodes(self) -> list[Node]:
        if self.layers:
            return parse_layers(self.inputs, self.layers, self.activations(), own_kernels(self.own_modules).why_not)
        words: list[str] = []
        for i, width in enumerate(self.widths):
            words.append(f"dense {width}")
            if i < len(self.widths) - 1:
                words.append(self.activation)
        return parse_layers(self.inputs, words, self.activations())

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.inputs, *[n.width for n in self.nodes() if n.kind == "dense"])

    def describe(self) -> str:
        """The network as a user reads it: ``64 → 128 → 128 → 10 relu/softmax_cross_entropy/adam`` for dense
        widths with one activation between them; from a layer list, every layer in order, such as
        ``64 → dense 128 → batch_norm → tanh → dense 10; mse/adam``."""
        if not self.layers:
            return f"{' → '.join(map(str, self.sizes))} {self.activation}/{self.loss}/{self.optimizer}"
        return f"{' → '.join([str(self.inputs), *(str(layer).strip() for layer in self.layers)])}; {self.loss}/{self.optimizer}"

    def predictions(self) -> list[str]:
        """The names of the predictions the loss reads per target column, in its kernel's order: one for most
        losses, μ and s for the Gaussian NLL (001 §3.12), as many as a loss of your own declares."""
        return loss_predictions(self.kernel(self.loss_name))

    @property
    def targets(self) -> int:
        """The columns of a training target: the outputs divided among the loss's predictions."""
        return self.sizes[-1] // len(self.predictions())

    def prediction_columns(self) -> list[tuple[int, int]]:
        """The output columns ``(start, stop)`` that each prediction argument of the loss reads, in the loss
        kernel's order: all of them, or one block of ``targets`` columns per prediction (the Gaussian NLL's
        [μ | s])."""
        k = self.targets
        return [(i * k, (i + 1) * k) for i in range(len(self.predictions()))]

    def kernel_names(self) -> list[str]:
        # the weight penalties (000 eq. 11, 003 §6.1): every network's regularised step may add them
        names = {"dense", self.loss_name, self.optimizer, "l1_penalty", "l2_penalty"}
        for node in self.nodes():
            names |= {"activation": {node.name}, "dropout": {"dropout"}, "batch_norm": {"batch_norm_train", "batch_norm_eval"},
                      "layer_norm": {"layer_norm"}}.get(node.kind, set())
        return sorted(names)

    def key(self) -> str:
        kernels = {n: module_fingerprint(self.kernel(n)) for n in self.kernel_names()}
        text = json.dumps({"arch": asdict(self), "kernels": kernels, "template": _template_hash()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def _template_hash() -> str:
    here = Path(__file__).parent
    # with the node functions the fused step calls: Numba's cache would not notice their changes either
    # and the modules that write its lines and lay out its buffers: the Python side allocates by the same layout
    parts = [here.parent / "codegen" / "templates" / "network.py.j2", here / "fused.py", here / "architecture.py",
             here / "nodes.py", here / "regularise.py", here / "sharded.py", here / "blas.py", here / "flat_view.py",
             here / "node_calls.py", here / "liveness.py", here / "layout.py", here / "sharded_source.py",
             here / "sharded_regularised.py", here / "gemm.py", here / "modules.py", here / "threads.py",
             # what a layer's calls look like: its parameters, its settings as literals
             here / "kernel_catalog.py", here / "activation_settings.py"]
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:12]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    trainable: bool
    init: str | float  # weights, zeros, ones, or the starting value a layer's spec declares

def param_specs(arch: Architecture) -> list[ParamSpec]:
    specs: list[ParamSpec] = []
    width = arch.inputs
    for node in arch.nodes():
        i = node.index
        if node.kind == "dense":
            specs += [ParamSpec(f"W{i}", (width, node.width), True, "weights"), ParamSpec(f"b{i}", (1, node.width), True, "zeros")]
        elif node.kind == "batch_norm":
            specs += [ParamSpec(f"A{i}", (width,), True, "ones"), ParamSpec(f"B{i}", (width,), True, "zeros"),
                      ParamSpec(f"M{i}", (width,), False, "zeros"), ParamSpec(f"S{i}", (width,), False, "ones")]
        elif node.kind == "layer_norm":
            specs += [ParamSpec(f"gamma{i}", (width,), True, "ones"), ParamSpec(f"beta{i}", (width,), True, "zeros")]
        elif node.kind == "activation":  # a layer of the user's may train parameters: per feature, or one
            specs += [ParamSpec(layer_param_name(node, name), (width,) if shape else (), True, float(init))
                      for name, shape, init in layer_params(arch.kernel(node.name))]
        width = node.width
    return specs


def layer_param_name(node: Node, param: str) -> str:
    """The network's name of parameter ``param`` of activation-kind ``node``: ``prelu0_a`` for the first
    PReLU layer's ``a``."""
    return f"{node.name}{node.index}_{param}"


def optimizer_state_names(arch: Architecture) -> list[str]:
    args, _ = arch.kernel(arch.optimizer).KERNELS["step_inplace"]
    return [n for n, role, _ in args if role in ("input", "inout") and n not in (OPTIMIZER_PARAMETER, OPTIMIZER_GRADIENT)]


def optimizer_hypers(arch: Architecture) -> dict[str, float]:
    return dict(arch.kernel(arch.optimizer).HYPER_DEFAULTS)


def optimizer_hypers_with(arch: Architecture, overrides: dict[str, float]) -> dict[str, float]:
    hypers = optimizer_hypers(arch)
    unknown = set(overrides) - set(hypers)
    if unknown:
        raise LayergenError(f"optimizer {arch.optimizer}: unknown hyperparameter(s) {sorted(unknown)}; valid: {sorted(hypers)}")
    domains = getattr(arch.kernel(arch.optimizer), "HYPER_DOMAINS", {})
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, Real) or not in_domain(float(value), domains.get(name, "real")):
            raise LayergenError(f"optimizer {arch.optimizer}: hyperparameter {name} must be "
                                f"{describe(domains.get(name, 'real'))}, got {value!r}")
    hypers.update({k: float(v) for k, v in overrides.items()})
    return hypers
