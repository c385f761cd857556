"""Rendering one architecture into a module of ``@njit`` functions, ``predict``, ``train_step`` and
``train_step_regularised``, that call the generated kernels (003 §3-5); imported by path so Numba
caches it. The regularised step adds gradient clipping and max-norm (001 §10.1, 003 §6.2); it is a
function of its own so that a network trained without them never compiles them (Numba compiles a
function at its first call, and the clipping code is a fifth of a cold step's compile time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from layergen.paths import cache_root
from layergen.runtime.architecture import (
    Architecture, optimizer_hypers, optimizer_state_names, param_specs,
)
from layergen.runtime.kernel_catalog import own_module_path
from layergen.runtime.layout import Slot, view_code
from layergen.runtime.modules import import_generated
from layergen.runtime.node_calls import DROPOUT_ARGUMENTS, kernel_aliases, node_calls, planned_layout
from layergen.runtime.sharded import TWO_CORE_ROWS
from layergen.runtime.sharded_regularised import REGULARISED_ARGUMENTS, regularised_entries, regularised_step_bodies
from layergen.runtime.sharded_source import (
    TASK_ARGUMENTS, BlockUpdate, GradientArgument, entry_source, one_core_below, step_bodies)
from layergen.conventions import OPTIMIZER_GRADIENT, OPTIMIZER_PARAMETER


def network_dir() -> Path:
    return cache_root() / "networks"


@dataclass
class _Source:
    """The fused module's pieces, rendered by the network template."""

    #: alias → (spec name, path of the user's generated module, or "" for the built-in one)
    kernels: dict[str, tuple[str, str]] = field(default_factory=dict)
    functions: dict[str, tuple[str, str]] = field(default_factory=dict)
    predict_args: list[str] = field(default_factory=list)
    predict_body: list[str] = field(default_factory=list)
    predict_result: str = "x"
    #: the lines of ``gradients`` (forward, loss, backward; sets ``loss``), which every training step and
    #: the sharded step's C entry run inline
    gradients: list[str] = field(default_factory=list)
    #: module-level source of the sharded step's C entry points (``layergen.runtime.sharded_source``)
    entries: list[str] = field(default_factory=list)
    #: name → (arguments, body) of each training function; each returns ``loss``
    training: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def optimizer_call(arch: Architecture, block: str = "") -> str:
    """The in-place update of every trainable parameter at once: the optimizer's
    ``step_inplace`` kernel over the flat ``theta``, ``grad`` and state buffers; with ``block``
    (a slice such as ``_lo:_hi``) over that block only, the merged gradient in the thread's own
    ``grads[_c]`` (the sharded step, ``layergen.runtime.sharded``)."""
    args, _ = arch.kernel(arch.optimizer).KERNELS["step_inplace"]
    names = {OPTIMIZER_PARAMETER: "theta", OPTIMIZER_GRADIENT: "grad"}  # the spec's inputs → the step's buffers
    call = [f"h_{name}" if role == "hyper" else names.get(name, f"state_{name}") for name, role, _shape in args]
    if block:
        # grads[_c][...], not grads[_c, ...]: a row then a 1-D slice, both lowered elsewhere in the entry
        # already; the mixed index compiled 0.1 s longer the first time (fresh process)
        call = [f"grads[_c][{block}]" if c == "grad" else c if c.startswith("h_") else f"{c}[{block}]" for c in call]
    return f"opt_step({', '.join(call)})"


def penalty_lines(arch: Architecture, trainable: tuple[Slot, ...]) -> list[str]:
    """Lines adding the weight penalties to the objective and their gradients to the weights' gradients,
    before any clipping: λ₂/(2m) Σ‖W‖²_F (000 eq. 11, m the training examples) and λ₁ Σ|W| (003 §6.1),
    over the dense layers' weights only, not the biases (000 §6.3). Each gradient comes from its penalty
    spec's generated ``loss_grad``, written into the matching view of ``penalty`` (a buffer laid out like
    ``theta``) and added to the data term's gradient: the gradient of a sum is the sum of the gradients."""
    weights = [p.name for p in param_specs(arch) if p.init == "weights"]  # the dense layers' (000 §6.3)
    lines = ["if l2 > 0 or l1 > 0:  # 000 eq. 10-11, 003 §6.1",
             *["    " + line for line in view_code("penalty", trainable, prefix="p_")]]
    for name in weights:
        flat, into = f"{name}.reshape({name}.size)", f"p_{name}.reshape({name}.size)"
        lines += ["    if l2 > 0:", f"        loss += k_l2_penalty.loss_grad({flat}, {into}, l2, examples)",
                  f"        g_{name} += p_{name}",
                  "    if l1 > 0:", f"        loss += k_l1_penalty.loss_grad({flat}, {into}, l1)",
                  f"        g_{name} += p_{name}"]
    return lines


def draws_masks(arch: Architecture) -> bool:
    """Whether the training step draws dropout masks, and so takes ``DROPOUT_ARGUMENTS``."""
    return any(node.kind == "dropout" for node in arch.nodes())


def shardable(arch: Architecture) -> bool:
    """Whether the step may split the batch into shards: no node couples the samples of a batch (batch
    norm's statistics). Dropout does not: its masks are drawn by counter, a shard's rows of them exactly
    the whole batch's (``nodes.sample_keep_mask``)."""
    return not any(node.kind == "batch_norm" for node in arch.nodes())


def render_source(arch: Architecture, key: str) -> _Source:
    """Forward in order, backward in reverse order (003 §3-4), clipping, optimizer in place; ``key``
    (``arch.key()``, computed once by the caller) names the sharded step's C entry symbols."""
    src = _Source()
    kernels = kernel_aliases(arch)
    src.kernels = {alias: (name, own_module_path(name, arch.own_modules)) for name, alias in kernels.items()}
    src.functions = {"loss_grad": ("k_loss", "loss_grad"), "opt_step": ("k_opt", "step_inplace")}
    specs = param_specs(arch)
    calls = node_calls(arch)
    slots = planned_layout(arch, calls)
    views = ["_n = x.shape[0]", *view_code("theta", slots.trainable), *view_code("fixed", slots.fixed),
             *view_code("work", slots.work)]
    dropout = draws_masks(arch)
    # the masks' stream numbers travel with the hyperparameters (into the sharded step's float block too)
    opt_hypers = [f"h_{h}" for h in optimizer_hypers(arch)] + list(DROPOUT_ARGUMENTS) * dropout
    states = [f"state_{s}" for s in optimizer_state_names(arch)]
    src.predict_args = ["x", "theta", "fixed", "work"]
    src.predict_body = views + calls.predict_forward
    src.predict_result = calls.predict_result
    args = ["x", "target", "theta", "fixed", "grad", *states, "work", *opt_hypers]
    # forward, loss and backward, into ``grad``: shared by the serial and the sharded steps
    src.gradients = views + view_code("grad", slots.trainable, prefix="g_") + [line for line, _ in calls.training()]
    # the steps run the lines of ``gradients`` inline, not a call to a compiled ``gradients``: Numba would
    # compile that function, then generate its machine code again inside each step that calls it; a
    # whole-batch step's masks start at the batch's row 0 (a shard's at its first row: sharded_source)
    gradients = ["_row0 = 0"] * dropout + src.gradients
    weights = tuple(p.name for p in specs if p.init == "weights")
    max_norm = ["if max_norm > 0:  # 003 §6.2", *["    " + line for line in view_code("theta", slots.trainable)],
                *[f"    max_norm_columns({name}, max_norm)" for name in weights]]
    clipped = [*penalty_lines(arch, slots.trainable),
               "if clip_value > 0:  # 001 §10.1, by value", "    clip_by_value(grad, clip_value)",
               "if clip_norm > 0:  # 001 §10.1, by the global norm of all gradients",
               "    total = squared_norm(grad)", "    if total > clip_norm * clip_norm:",
               "        scale(grad, clip_norm / np.sqrt(total))", optimizer_call(arch), *max_norm]
    src.training = {
        "train_step": (args, one_core_below(TWO_CORE_ROWS, gradients + [optimizer_call(arch)])),
        "train_step_regularised": (args + list(REGULARISED_ARGUMENTS),
                                   one_core_below(TWO_CORE_ROWS, gradients + clipped))}
    if shardable(arch):
        arguments = [GradientArgument("x", "x", columns=arch.inputs),
                     GradientArgument("target", "target", columns=arch.targets),
                     GradientArgument("theta", "theta"), GradientArgument("fixed", "fixed"),
                     GradientArgument("grad", "grads"), GradientArgument("work", "works")]
        update = BlockUpdate(tuple(states), tuple(opt_hypers), optimizer_call(arch, "_lo:_hi"), slots.trainable,
                             weights)
        src.entries = entry_source("mlp", key, arguments, src.gradients, update)
        src.entries += regularised_entries(arguments, update)
        sharded_args = ["x", "target", "theta", "fixed", "grads", *states, "works", *TASK_ARGUMENTS, *opt_hypers]
        for dtype, body in step_bodies("mlp", key, arguments, update).items():
            src.training[f"train_step_sharded_{dtype}"] = (sharded_args, body)
        for dtype, body in regularised_step_bodies("mlp", key, arguments, update, max_norm).items():
            src.training[f"train_step_sharded_regularised_{dtype}"] = (sharded_args + list(REGULARISED_ARGUMENTS), body)
    return src


def build_module(arch: Architecture) -> ModuleType:
    """Render (once per architecture) and import the fused module."""
    from layergen.codegen.render import environment, write_if_changed

    key = arch.key()
    path = network_dir() / "mlp" / f"net_{key}.py"
    src = render_source(arch, key)
    summary = arch.describe()
    text = environment().get_template("network.py.j2").render(key=key, summary=summary, **src.__dict__)
    write_if_changed(path, text)
    return import_generated(path)
