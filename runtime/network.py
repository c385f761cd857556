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


@dataclass(frozen=True)
class Architecture:
    """A sequential MLP: dense layers of ``widths`` with ``activation`` between them."""

    inputs: int
    widths: tuple[int, ...]
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        if self.inputs <= 0 or not self.widths or any(w <= 0 for w in self.widths):
            raise LayergenError(f"architecture: inputs and every width must be positive, got {self.inputs} and {self.widths}")
        for name, value, valid in (("activation", self.activation, ACTIVATIONS), ("loss", self.loss, LOSSES),
                                   ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in valid:
                raise LayergenError(f"architecture: unknown {name} {value!r}; valid: {', '.join(valid)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.inputs, *self.widths)

    def key(self) -> str:
        kernels = {n: load_builtin(n).SPEC_HASH for n in ("dense", self.activation, self.loss, self.optimizer)}
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


def render_source(arch: Architecture) -> _Source:
    src = _Source()
    src.kernels = {"k_dense": "dense", "k_act": arch.activation, "k_loss": arch.loss, "k_opt": arch.optimizer}
    src.functions = {"dense_forward": ("k_dense", "forward"), "dense_vjp": ("k_dense", "vjp"),
                     "dense_vjp_params": ("k_dense", "vjp_params"),
                     "act_forward": ("k_act", "forward"), "act_vjp": ("k_act", "vjp"),
                     "loss_grad": ("k_loss", "loss_grad"), "opt_step": ("k_opt", "step_inplace")}
    n_layers = len(arch.widths)
    params = [p for i in range(n_layers) for p in (f"W{i}", f"b{i}")]
    act_hypers = [f"a_{h}" for h in load_builtin(arch.activation).HYPER_DEFAULTS]
    states = [f"{s}_{p}" for p in params for s in optimizer_state_names(arch)]
    opt_hypers = [f"h_{h}" for h in optimizer_hypers(arch)]
    # buffers: z_i pre-activations, a_i activations (a_{-1} = x), and their gradients
    z = [f"z{i}" for i in range(n_layers)]
    a = [f"a{i}" for i in range(n_layers - 1)]
    gz = [f"gz{i}" for i in range(n_layers)]
    ga = [f"ga{i}" for i in range(n_layers - 1)]
    grads = [f"g_{p}" for p in params]
    src.predict_args = ["x", *params, *z, *a, *act_hypers]
    for i in range(n_layers):
        inp = "x" if i == 0 else a[i - 1]
        src.predict_body.append(f"dense_forward({inp}, W{i}, b{i}, {z[i]})")
        if i < n_layers - 1:
            src.predict_body.append(f"act_forward({z[i]}, {a[i]}{''.join(', ' + h for h in act_hypers)})")
    src.predict_result = z[-1]  # type: ignore[attr-defined]
    src.train_args = ["x", "target", *params, *grads, *states, *z, *a, *gz, *ga, *act_hypers, *opt_hypers,
                      "clip_value", "clip_norm", "max_norm"]
    src.train_body = list(src.predict_body)
    src.train_body.append(f"loss = loss_grad({z[-1]}, target, {gz[-1]})")
    for i in reversed(range(n_layers)):
        inp = "x" if i == 0 else a[i - 1]
        if i == 0:  # nothing upstream of the input needs ∂L/∂x
            src.train_body.append(f"dense_vjp_params({inp}, W{i}, b{i}, {gz[i]}, g_W{i}, g_b{i})")
        else:
            src.train_body.append(f"dense_vjp({inp}, W{i}, b{i}, {gz[i]}, {ga[i - 1]}, g_W{i}, g_b{i})")
        if i > 0:
            src.train_body.append(f"act_vjp({z[i - 1]}, {ga[i - 1]}, {gz[i - 1]}{''.join(', ' + h for h in act_hypers)})")
    src.train_body.append("if clip_value > 0:  # 001 §10.1, by value")
    src.train_body += [f"    clip_by_value(g_{p}, clip_value)" for p in params]
    src.train_body.append("if clip_norm > 0:  # 001 §10.1, by the global norm of all gradients")
    src.train_body.append("    total = " + " + ".join(f"squared_norm(g_{p})" for p in params))
    src.train_body.append("    if total > clip_norm * clip_norm:")
    src.train_body += [f"        scale(g_{p}, clip_norm / np.sqrt(total))" for p in params]
    for p in params:
        src.train_body.append(optimizer_call(arch, p))
    src.train_body.append("if max_norm > 0:  # 003 §6.2")
    src.train_body += [f"    max_norm_columns(W{i}, max_norm)" for i in range(n_layers)]
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
    n_layers = len(arch.widths)
    out: dict[str, np.ndarray] = {}
    for i, width in enumerate(arch.widths):
        out[f"z{i}"] = np.zeros((batch, width), dtype)
        out[f"gz{i}"] = np.zeros((batch, width), dtype)
        if i < n_layers - 1:
            out[f"a{i}"] = np.zeros((batch, width), dtype)
            out[f"ga{i}"] = np.zeros((batch, width), dtype)
    return out


def parameter_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (fan_in, fan_out) in enumerate(zip(arch.sizes[:-1], arch.sizes[1:])):
        shapes[f"W{i}"] = (fan_in, fan_out)
        shapes[f"b{i}"] = (1, fan_out)
    return shapes


def initialise(arch: Architecture, seed: int, dtype: type, scheme: str = "he") -> dict[str, np.ndarray]:
    """Seeded initialisers of 003 §7: LeCun U(±√(3/n_i)), Xavier U(±√(6/(n_i+n_{i+1}))),
    He N(0, 2/n_i) (standard deviation √(2/n_i)); biases start at zero."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, shape in parameter_shapes(arch).items():
        if name.startswith("b"):
            params[name] = np.zeros(shape, dtype)
            continue
        fan_in, fan_out = shape
        if scheme == "lecun":
            bound = np.sqrt(3.0 / fan_in)
            value = rng.uniform(-bound, bound, shape)
        elif scheme == "xavier":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-bound, bound, shape)
        elif scheme == "he":
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        else:
            raise LayergenError(f"init: unknown scheme {scheme!r}; valid: lecun, xavier, he")
        params[name] = value.astype(dtype)
    return params


class Network:
    """Parameters, optimizer state and buffers of one architecture; ``step`` and ``predict``."""

    def __init__(self, arch: Architecture, dtype: type = np.float32, seed: int = 0, init: str = "he",
                 optimizer_hypers: dict[str, float] | None = None) -> None:
        self.arch = arch
        self.dtype = np.dtype(dtype).type
        self.module = build_module(arch)
        self.params = initialise(arch, seed, self.dtype, init)
        self.grads = {p: np.zeros_like(v) for p, v in self.params.items()}
        self.state = {f"{s}_{p}": np.zeros_like(v) for p, v in self.params.items() for s in optimizer_state_names(arch)}
        self.hypers = optimizer_hypers_with(arch, optimizer_hypers or {})
        self.act_hypers = tuple(float(v) for v in load_builtin(arch.activation).HYPER_DEFAULTS.values())
        self.step_count = 0
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        self._arg_cache: dict[int, list[object]] = {}
        self._names = list(parameter_shapes(arch))
        self._state_names = optimizer_state_names(arch)
        self._hyper_values = [float(v) for v in self.hypers.values()]
        self._t_index = list(self.hypers).index("t") if "t" in self.hypers else None
        self.clip_value = 0.0  # 0 turns each off
        self.clip_norm = 0.0
        self.max_norm = 0.0

    def _buffers_for(self, batch: int) -> dict[str, np.ndarray]:
        if batch not in self._buffers:  # once per distinct batch size, never per step
            self._buffers[batch] = buffers(self.arch, batch, self.dtype)
        return self._buffers[batch]

    def _param_list(self) -> list[np.ndarray]:
        return [self.params[p] for p in self._names]

    def _train_args(self, batch: int) -> list[object]:
        """Every argument of train_step but x, target and the hyperparameters: built once
        per batch size, so a step costs one compiled call and no Python bookkeeping."""
        if batch not in self._arg_cache:
            buf = self._buffers_for(batch)
            n = len(self.arch.widths)
            self._arg_cache[batch] = [
                *self._param_list(), *[self.grads[p] for p in self._names],
                *[self.state[f"{s}_{p}"] for p in self._names for s in self._state_names],
                *[buf[f"z{i}"] for i in range(n)], *[buf[f"a{i}"] for i in range(n - 1)],
                *[buf[f"gz{i}"] for i in range(n)], *[buf[f"ga{i}"] for i in range(n - 1)]]
        return self._arg_cache[batch]

    def step(self, x: np.ndarray, target: np.ndarray) -> float:
        """One training step on a batch; returns the loss before the update."""
        self.step_count += 1
        if self._t_index is not None:  # Adam's bias correction needs the step number
            self._hyper_values[self._t_index] = float(self.step_count)
        return float(self.module.train_step(x, target, *self._train_args(x.shape[0]), *self.act_hypers,
                                            *self._hyper_values, self.clip_value, self.clip_norm, self.max_norm))

    def set_learning_rate(self, lr: float) -> None:
        self.hypers["lr"] = lr
        self._hyper_values = [float(v) for v in self.hypers.values()]
        if self._t_index is not None:
            self._hyper_values[self._t_index] = float(self.step_count)

    def predict(self, x: np.ndarray) -> np.ndarray:
        buf = self._buffers_for(x.shape[0])
        n = len(self.arch.widths)
        out = self.module.predict(x, *self._param_list(), *[buf[f"z{i}"] for i in range(n)],
                                  *[buf[f"a{i}"] for i in range(n - 1)], *self.act_hypers)
        return out.copy()


def optimizer_hypers_with(arch: Architecture, overrides: dict[str, float]) -> dict[str, float]:
    hypers = optimizer_hypers(arch)
    unknown = set(overrides) - set(hypers)
    if unknown:
        raise LayergenError(f"optimizer {arch.optimizer}: unknown hyperparameter(s) {sorted(unknown)}; valid: {sorted(hypers)}")
    hypers.update({k: float(v) for k, v in overrides.items()})
    return hypers


