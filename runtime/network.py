"""Sequential networks assembled from generated kernels, with one fused training step.

The runtime adds no math of its own: every forward map, VJP, loss gradient and optimizer
update is a generated, verified kernel. ``NetworkBuilder`` writes one module per
architecture (``train_step`` and ``predict``, each one ``@njit`` call) into the cache folder
and imports it by path, so Numba's cache makes the second run warm. The chain rule of the
composition is the only thing this file contributes (003 §3-4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from layergen.errors import LayergenError
from layergen.paths import cache_root
from layergen.runtime.modules import import_generated, load_builtin

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "hard_tanh", "softplus", "gelu", "silu")
LOSSES = ("softmax_cross_entropy", "mse", "bce_logits", "mae")
OPTIMIZERS = ("adam", "sgd", "sgd_momentum", "momentum_ema", "rmsprop", "adagrad")


LAYER_HELP = "dense <units>, dropout <p>, batch_norm, layer_norm, or an activation (" + ", ".join(ACTIVATIONS) + ")"


@dataclass(frozen=True)
class Node:
    """One layer of a sequential network: ``kind`` with its ``width`` out and options."""

    kind: str  # dense, activation, dropout, batch_norm, layer_norm
    width: int
    name: str = ""  # the activation's spec name
    p: float = 0.0  # dropout probability
    index: int = 0  # per-kind counter: W{index}, A{index}, ...


def parse_layers(inputs: int, layers: Sequence[str]) -> list[Node]:
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
                if not 0.0 <= p < 1.0:
                    raise ValueError
                node = Node("dropout", width, p=p)
            elif word in ("batch_norm", "layer_norm") and not arg:
                node = Node(word, width)
            elif word in ACTIVATIONS and not arg:
                node = Node("activation", width, name=word)
            else:
                raise LayergenError(f"architecture: unknown layer {text!r}; valid: {LAYER_HELP}")
        except ValueError:
            raise LayergenError(f"architecture: bad layer {text!r}: dense needs a positive integer, dropout a "
                                "probability in [0, 1)") from None
        nodes.append(Node(node.kind, node.width, node.name, node.p, counters.get(node.kind, 0)))
        counters[node.kind] = counters.get(node.kind, 0) + 1
    if not nodes or nodes[-1].kind != "dense":
        raise LayergenError("architecture: the last layer must be `dense <outputs>` (the loss reads its output)")
    return nodes


@dataclass(frozen=True)
class Architecture:
    """A sequential network: ``layers`` such as ("dense 128", "relu", "dropout 0.2", "dense 10"),
    or, when ``layers`` is empty, dense layers of ``widths`` with ``activation`` between them."""

    inputs: int
    widths: tuple[int, ...] = ()
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "adam"
    layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.inputs <= 0 or (not self.layers and (not self.widths or any(w <= 0 for w in self.widths))):
            raise LayergenError(f"architecture: inputs and every width must be positive, got {self.inputs} and {self.widths}")
        for name, value, valid in (("activation", self.activation, ACTIVATIONS), ("loss", self.loss, LOSSES),
                                   ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in valid:
                raise LayergenError(f"architecture: unknown {name} {value!r}; valid: {', '.join(valid)}")
        self.nodes()  # validates the layer list

    def nodes(self) -> list[Node]:
        if self.layers:
            return parse_layers(self.inputs, self.layers)
        words: list[str] = []
        for i, width in enumerate(self.widths):
            words.append(f"dense {width}")
            if i < len(self.widths) - 1:
                words.append(self.activation)
        return parse_layers(self.inputs, words)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.inputs, *[n.width for n in self.nodes() if n.kind == "dense"])

    def kernel_names(self) -> list[str]:
        names = {"dense", self.loss, self.optimizer}
        for node in self.nodes():
            names |= {"activation": {node.name}, "dropout": {"dropout"}, "batch_norm": {"batch_norm_train", "batch_norm_eval"},
                      "layer_norm": {"layer_norm"}}.get(node.kind, set())
        return sorted(names)

    def key(self) -> str:
        kernels = {n: load_builtin(n).SPEC_HASH for n in self.kernel_names()}
        text = json.dumps({"arch": asdict(self), "kernels": kernels, "template": _template_hash()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def _template_hash() -> str:
    return hashlib.sha256((Path(__file__).parents[1] / "codegen" / "templates" / "network.py.j2").read_bytes()
                          + Path(__file__).read_bytes()).hexdigest()[:12]


def network_dir() -> Path:
    return cache_root() / "networks"


@dataclass
class _Source:
    """The fused module's pieces, rendered by the network template."""

    kernels: dict[str, str] = field(default_factory=dict)
    functions: dict[str, tuple[str, str]] = field(default_factory=dict)
    predict_args: list[str] = field(default_factory=list)
    predict_body: list[str] = field(default_factory=list)
    train_args: list[str] = field(default_factory=list)
    train_body: list[str] = field(default_factory=list)


def optimizer_call(arch: Architecture, param: str) -> str:
    """The in-place update of one parameter (the optimizer's ``step_inplace`` kernel)."""
    args, _ = load_builtin(arch.optimizer).KERNELS["step_inplace"]
    call = []
    for name, role, _shape in args:
        if role == "hyper":
            call.append(f"h_{name}")
        elif name == "theta":
            call.append(f"{param}.reshape(-1)")
        elif name == "g":
            call.append(f"g_{param}.reshape(-1)")
        else:
            call.append(f"{name}_{param}.reshape(-1)")
    return f"opt_step({', '.join(call)})"


def optimizer_state_names(arch: Architecture) -> list[str]:
    args, _ = load_builtin(arch.optimizer).KERNELS["step_inplace"]
    return [n for n, role, _ in args if role in ("input", "inout") and n not in ("theta", "g")]


def optimizer_hypers(arch: Architecture) -> dict[str, float]:
    return dict(load_builtin(arch.optimizer).HYPER_DEFAULTS)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    trainable: bool
    init: str  # weights, zeros, ones


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
        width = node.width
    return specs


def _hyper_literals(spec: str) -> str:
    """An activation's hyperparameters, as literal defaults in the generated call."""
    return "".join(f", {float(v)!r}" for v in load_builtin(spec).HYPER_DEFAULTS.values())


EPS = 1e-5  # the ε of batch and layer norm
MOMENTUM = 0.1  # running averages of batch norm: M ← (1 − m) M + m · batch mean


def render_source(arch: Architecture) -> _Source:
    """Forward in order, backward in reverse order (003 §3-4), clipping, optimizer in place."""
    src = _Source()
    nodes = arch.nodes()
    kernels = {"dense": "k_dense", arch.loss: "k_loss", arch.optimizer: "k_opt"}
    for name in arch.kernel_names():
        kernels.setdefault(name, f"k_{name}")
    src.kernels = {alias: name for name, alias in kernels.items()}
    src.functions = {"loss_grad": ("k_loss", "loss_grad"), "opt_step": ("k_opt", "step_inplace")}
    specs = param_specs(arch)
    trainable = [p.name for p in specs if p.trainable]
    states = [f"{s}_{p}" for p in trainable for s in optimizer_state_names(arch)]
    opt_hypers = [f"h_{h}" for h in optimizer_hypers(arch)]
    h = [f"h{k}" for k in range(len(nodes))]
    gh = [f"gh{k}" for k in range(len(nodes))]
    masks = [f"mask{k}" for k, n in enumerate(nodes) if n.kind == "dropout"]
    train_fwd: list[str] = []
    predict_fwd: list[str] = []
    backward: list[str] = []
    current_predict = "x"
    for k, node in enumerate(nodes):
        inp = "x" if k == 0 else h[k - 1]
        g_in = None if k == 0 else gh[k - 1]
        i = node.index
        if node.kind == "dense":
            call = f"k_dense.forward({inp}, W{i}, b{i}, {h[k]})"
            train_fwd.append(call)
            predict_fwd.append(f"k_dense.forward({current_predict}, W{i}, b{i}, {h[k]})")
            backward.append(f"k_dense.vjp_params({inp}, W{i}, b{i}, {gh[k]}, g_W{i}, g_b{i})" if g_in is None else
                            f"k_dense.vjp({inp}, W{i}, b{i}, {gh[k]}, {g_in}, g_W{i}, g_b{i})")
        elif node.kind == "activation":
            alias, extra = kernels[node.name], _hyper_literals(node.name)
            train_fwd.append(f"{alias}.forward({inp}, {h[k]}{extra})")
            predict_fwd.append(f"{alias}.forward({current_predict}, {h[k]}{extra})")
            if g_in is not None:
                backward.append(f"{alias}.vjp({inp}, {gh[k]}, {g_in}{extra})")
        elif node.kind == "dropout":  # inverted dropout in training, the identity in evaluation
            train_fwd += [f"sample_keep_mask(mask{k}, {node.p!r})", f"k_dropout.forward({inp}, mask{k}, {h[k]}, {node.p!r})"]
            if g_in is not None:
                backward.append(f"k_dropout.vjp({inp}, mask{k}, {gh[k]}, {g_in}, {node.p!r})")
        elif node.kind == "batch_norm":
            train_fwd += [f"k_batch_norm_train.forward({inp}, A{i}, B{i}, {h[k]}, {EPS!r})",
                          f"update_running_stats({inp}, M{i}, S{i}, {MOMENTUM!r})"]
            predict_fwd.append(f"k_batch_norm_eval.forward({current_predict}, A{i}, B{i}, M{i}, S{i}, {h[k]}, {EPS!r})")
            backward.append(f"k_batch_norm_train.vjp({inp}, A{i}, B{i}, {gh[k]}, {g_in or 'g_input'}, g_A{i}, g_B{i}, {EPS!r})")
        elif node.kind == "layer_norm":
            call = f"k_layer_norm.forward({inp}, gamma{i}, beta{i}, {h[k]}, {EPS!r})"
            train_fwd.append(call)
            predict_fwd.append(f"k_layer_norm.forward({current_predict}, gamma{i}, beta{i}, {h[k]}, {EPS!r})")
            backward.append(f"k_layer_norm.vjp({inp}, gamma{i}, beta{i}, {gh[k]}, {g_in or 'g_input'}, g_gamma{i}, g_beta{i}, {EPS!r})")
        if node.kind != "dropout":
            current_predict = h[k]
    grads = [f"g_{p}" for p in trainable]
    params = [p.name for p in specs]
    src.predict_args = ["x", *params, *h]
    src.predict_body = predict_fwd
    src.predict_result = current_predict  # type: ignore[attr-defined]
    src.train_args = ["x", "target", *params, *grads, *states, *h, *gh, *masks, "g_input", *opt_hypers,
                      "clip_value", "clip_norm", "max_norm"]
    src.train_body = train_fwd + [f"loss = loss_grad({h[-1]}, target, {gh[-1]})"] + list(reversed(backward))
    src.train_body.append("if clip_value > 0:  # 001 §10.1, by value")
    src.train_body += [f"    clip_by_value(g_{p}, clip_value)" for p in trainable]
    src.train_body.append("if clip_norm > 0:  # 001 §10.1, by the global norm of all gradients")
    src.train_body.append("    total = " + " + ".join(f"squared_norm(g_{p})" for p in trainable))
    src.train_body.append("    if total > clip_norm * clip_norm:")
    src.train_body += [f"        scale(g_{p}, clip_norm / np.sqrt(total))" for p in trainable]
    src.train_body += [optimizer_call(arch, p) for p in trainable]
    src.train_body.append("if max_norm > 0:  # 003 §6.2")
    src.train_body += [f"    max_norm_columns({p.name}, max_norm)" for p in specs if p.name.startswith("W")]
    return src


def build_module(arch: Architecture) -> ModuleType:
    """Render (once per architecture) and import the fused module."""
    from layergen.codegen.render import environment, write_if_changed

    key = arch.key()
    path = network_dir() / "mlp" / f"net_{key}.py"
    src = render_source(arch)
    summary = " → ".join(str(s) for s in arch.sizes) + f"; {arch.activation}, {arch.loss}, {arch.optimizer}"
    text = environment().get_template("network.py.j2").render(key=key, summary=summary, **src.__dict__)
    write_if_changed(path, text)
    return import_generated(path)


def buffers(arch: Architecture, batch: int, dtype: type) -> dict[str, np.ndarray]:
    """Each node's output and its gradient; dropout masks; ∂L/∂x when a norm layer comes first."""
    out: dict[str, np.ndarray] = {}
    for k, node in enumerate(arch.nodes()):
        out[f"h{k}"] = np.zeros((batch, node.width), dtype)
        out[f"gh{k}"] = np.zeros((batch, node.width), dtype)
        if node.kind == "dropout":
            out[f"mask{k}"] = np.zeros((batch, node.width), dtype)
    out["g_input"] = np.zeros((batch, arch.inputs), dtype)
    return out


def parameter_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    return {p.name: p.shape for p in param_specs(arch)}


def initialise(arch: Architecture, seed: int, dtype: type, scheme: str = "he") -> dict[str, np.ndarray]:
    """Seeded initialisers of 003 §7 for weights: LeCun U(±√(3/n_i)), Xavier U(±√(6/(n_i+n_{i+1}))),
    He N(0, 2/n_i) (standard deviation √(2/n_i)); biases and shifts 0, scales 1."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for spec in param_specs(arch):
        if spec.init != "weights":
            params[spec.name] = (np.ones if spec.init == "ones" else np.zeros)(spec.shape, dtype)
            continue
        fan_in, fan_out = spec.shape
        if scheme == "lecun":
            bound = np.sqrt(3.0 / fan_in)
            value = rng.uniform(-bound, bound, spec.shape)
        elif scheme == "xavier":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-bound, bound, spec.shape)
        elif scheme == "he":
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), spec.shape)
        else:
            raise LayergenError(f"init: unknown scheme {scheme!r}; valid: lecun, xavier, he")
        params[spec.name] = value.astype(dtype)
    return params


class Network:
    """Parameters, optimizer state and buffers of one architecture; ``step`` and ``predict``."""

    def __init__(self, arch: Architecture, dtype: type = np.float32, seed: int = 0, init: str = "he",
                 optimizer_hypers: dict[str, float] | None = None) -> None:
        from layergen.runtime.nodes import seed_sampler

        self.arch = arch
        self.dtype = np.dtype(dtype).type
        self.module = build_module(arch)
        self.specs = param_specs(arch)
        self.params = initialise(arch, seed, self.dtype, init)
        trainable = [p.name for p in self.specs if p.trainable]
        self.grads = {p: np.zeros_like(self.params[p]) for p in trainable}
        self._state_names = optimizer_state_names(arch)
        self.state = {f"{s}_{p}": np.zeros_like(self.params[p]) for p in trainable for s in self._state_names}
        self.hypers = optimizer_hypers_with(arch, optimizer_hypers or {})
        self.step_count = 0
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        self._arg_cache: dict[int, list[object]] = {}
        self._trainable = trainable
        self._hyper_values = [float(v) for v in self.hypers.values()]
        self._t_index = list(self.hypers).index("t") if "t" in self.hypers else None
        self.clip_value = 0.0  # 0 turns each off
        self.clip_norm = 0.0
        self.max_norm = 0.0
        seed_sampler(seed)

    def _buffers_for(self, batch: int) -> dict[str, np.ndarray]:
        if batch not in self._buffers:  # once per distinct batch size, never per step
            self._buffers[batch] = buffers(self.arch, batch, self.dtype)
        return self._buffers[batch]

    def _param_list(self) -> list[np.ndarray]:
        return [self.params[p.name] for p in self.specs]

    def _train_args(self, batch: int) -> list[object]:
        """Every argument of train_step but x, target and the hyperparameters: built once
        per batch size, so a step costs one compiled call and no Python bookkeeping."""
        if batch not in self._arg_cache:
            buf = self._buffers_for(batch)
            nodes = self.arch.nodes()
            self._arg_cache[batch] = [
                *self._param_list(), *[self.grads[p] for p in self._trainable],
                *[self.state[f"{s}_{p}"] for p in self._trainable for s in self._state_names],
                *[buf[f"h{k}"] for k in range(len(nodes))], *[buf[f"gh{k}"] for k in range(len(nodes))],
                *[buf[f"mask{k}"] for k, n in enumerate(nodes) if n.kind == "dropout"], buf["g_input"]]
        return self._arg_cache[batch]

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        """One training step on a batch; returns the loss before the update."""
        self.step_count += 1
        if self._t_index is not None:  # Adam's bias correction needs the step number
            self._hyper_values[self._t_index] = float(self.step_count)
        return float(self.module.train_step(x, target, *self._train_args(x.shape[0]), *self._hyper_values,
                                            self.clip_value, self.clip_norm, self.max_norm))

    def set_learning_rate(self, lr: float) -> None:
        self.hypers["lr"] = lr
        self._hyper_values = [float(v) for v in self.hypers.values()]
        if self._t_index is not None:
            self._hyper_values[self._t_index] = float(self.step_count)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Evaluation mode: dropout is the identity, batch norm uses its running averages."""
        buf = self._buffers_for(x.shape[0])
        n = len(self.arch.nodes())
        out = self.module.predict(x, *self._param_list(), *[buf[f"h{k}"] for k in range(n)])
        return out.copy()


def optimizer_hypers_with(arch: Architecture, overrides: dict[str, float]) -> dict[str, float]:
    hypers = optimizer_hypers(arch)
    unknown = set(overrides) - set(hypers)
    if unknown:
        raise LayergenError(f"optimizer {arch.optimizer}: unknown hyperparameter(s) {sorted(unknown)}; valid: {sorted(hypers)}")
    hypers.update({k: float(v) for k, v in overrides.items()})
    return hypers


