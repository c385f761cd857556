"""Which generated kernel modules a network may call, read off the modules themselves.

A network calls an activation as ``forward(x, y, *hypers)`` and ``vjp(x, grad_y, grad_x, *hypers)`` (a layer
with parameters of its own takes them after ``x``, and its VJP writes their gradients after ``grad_x``), and
an optimizer as ``step_inplace(theta, g, *state, *hypers)``. Any module whose kernels have those shapes
fits, so a spec added to ``specs/activations`` or ``specs/optimizers`` (then ``layergen generate``) is
usable in a network without a list to extend; so is a spec of the user's own, generated from a folder
named in the run's config (``[network] specs``), whose module paths an ``Architecture`` carries.
The built-in losses are a fixed list: what the runtime reports for them (probabilities, a predicted
variance) depends on their meaning, not on their kernels' shapes. A loss of the user's that compares one
prediction with one target (``loss_misfit``) reports what any loss does: the accuracy of the largest
output for class labels, the RMSE for numeric targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from layergen.errors import LayergenError
from layergen.runtime.modules import builtin_root, import_generated, load_builtin, module_fingerprint

#: an activation's arrays: one input and one output of a batch's shape, as the network's nodes pass them
_MAP_FORWARD = [("input", ("N", "D")), ("output", ("N", "D"))]
_MAP_VJP = [("input", ("N", "D")), ("grad_output", ("N", "D")), ("grad", ("N", "D"))]
#: the shapes a layer's trainable parameter may take: one value per feature, or one for the layer
PARAM_SHAPES = (("D",), ())


def layer_params(module: ModuleType) -> list[tuple[str, tuple[str, ...], float | None]]:
    """A map module's parameters in its kernels' order, each as (name, shape, declared init or None)."""
    inits = getattr(module, "PARAM_INITS", {})
    return [(name, tuple(shape), inits.get(name)) for name, role, shape in module.KERNELS["forward"][0] if role == "param"]


def layer_misfit(module: ModuleType, with_params: bool = True) -> str:
    """Why a generated module cannot be a layer of a network ("" when it can): it must be a map of one
    (N, D) array to one of the same shape (elementwise or row by row), with hyperparameters only after
    the arrays, each with a default, as the fused step passes them (``node_calls``). Between input and
    output its forward may take trainable parameters of shape (D,) or (), each with a declared starting
    value (``Param(..., init=v)``), whose gradients its VJP writes after the input's; a flow's conditioner
    (``with_params=False``) takes none."""
    if getattr(module, "KIND", None) != "map":
        return f"it is a {getattr(module, 'KIND', '?')} spec, not a map"
    kernels = module.KERNELS
    if "forward" not in kernels or "vjp" not in kernels:
        return "it has no forward and vjp kernels"
    if not getattr(module, "SAMPLE_BY_SAMPLE", True):
        return ("it mixes the samples of a batch (a statistic over the batch, axis=0), so a prediction would depend "
                "on the other rows of its block and a step split over the cores would differ from the whole "
                "batch's; a layer may reduce over a sample's features (axis=1, as layer_norm does), and "
                "batch_norm keeps running averages for prediction")
    params = layer_params(module)
    if params and not with_params:
        return f"it has parameters ({', '.join(name for name, _, _ in params)}), and a flow's conditioner trains none"
    vjp_grads = {name for name, role, _ in kernels["vjp"][0] if role == "grad"}
    for name, shape, init in params:
        if f"grad_{name}" not in vjp_grads:
            return f"its parameter {name} is not trainable; a network trains every parameter of a layer"
        if shape not in PARAM_SHAPES:
            return (f"its parameter {name} has shape {shape}; a layer's parameter is one value per feature (D,) "
                    "or one for the layer ()")
        if init is None:
            return (f"its parameter {name} declares no starting value; declare it as "
                    f"Param({'(D,)' if shape else '()'}, init=...) in the spec's params")
    grads = [("grad", shape) for _, shape, _ in params]
    param_args = [("param", shape) for _, shape, _ in params]
    forward = [_MAP_FORWARD[0], *param_args, _MAP_FORWARD[1]]
    vjp = [_MAP_VJP[0], *param_args, *_MAP_VJP[1:], *grads]
    return _arguments_misfit(module, {"forward": forward, "vjp": vjp},
                             "a network's layer takes one input x of shape (N, D) and returns one output of that "
                             "shape, with trainable parameters of shape (D,) or () between them")


def _arguments_misfit(module: ModuleType, expected: dict[str, list[tuple[str, tuple[str, ...]]]], rule: str) -> str:
    """Why the module's kernels do not take the arrays ``expected`` (kernel → (role, shape) in order), followed
    by hyperparameters that all have defaults, as the fused steps call them ("" when they do); ``rule`` says
    what a fitting kernel takes."""
    for kernel, arrays_expected in expected.items():
        arguments = module.KERNELS[kernel][0]
        arrays = [(role, tuple(shape)) for _, role, shape in arguments if role != "hyper"]
        hypers = [name for name, role, _ in arguments if role == "hyper"]
        if arrays != arrays_expected or [r for _, r, _ in arguments][len(arrays):] != ["hyper"] * len(hypers):
            return f"its {kernel} takes {', '.join(f'{n} ({r}, {s})' for n, r, s in arguments)}; {rule}"
        if hypers != list(module.HYPER_DEFAULTS):
            return f"its {kernel}'s hyperparameters {hypers} do not all have defaults"
    return ""


def activation_misfit(module: ModuleType) -> str:
    """Why a generated module cannot be an activation ("" when it can): a layer (``layer_misfit``) without
    parameters, as a flow's conditioner calls it."""
    return layer_misfit(module, with_params=False)


def is_optimizer(module: ModuleType) -> bool:
    """An optimizer step spec: validation has checked that it takes theta and g and updates theta."""
    return getattr(module, "KIND", None) == "optimizer_step" and "step_inplace" in module.KERNELS


@cache
def builtin_activations() -> tuple[str, ...]:
    """The built-in catalog's activations a network can use, by spec name."""
    return tuple(path.stem for path in sorted((builtin_root() / "activations").glob("*.py"))
                 if path.stem != "__init__" and not activation_misfit(load_builtin(path.stem, "activations")))


@cache
def builtin_layers() -> tuple[str, ...]:
    """The built-in catalog's layers with parameters of their own that a network can use by name, as it uses
    a user's (``layer_misfit``): a spec added to ``specs/layers`` or ``specs/activations`` whose parameters
    declare their starting values. (Dense, dropout and the normalisations have their own nodes.)"""
    found = []
    for group in ("activations", "layers"):
        for path in sorted((builtin_root() / group).glob("*.py")):
            module = load_builtin(path.stem, group) if path.stem != "__init__" else None
            if module is not None and layer_params(module) and not layer_misfit(module):
                found.append(path.stem)
    return tuple(found)


@cache
def builtin_optimizers() -> tuple[str, ...]:
    """The built-in catalog's optimizer steps, by spec name."""
    return tuple(path.stem for path in sorted((builtin_root() / "optimizers").glob("*.py"))
                 if path.stem != "__init__" and is_optimizer(load_builtin(path.stem, "optimizers")))


def _builtin_names() -> set[str]:
    return {path.stem for path in builtin_root().glob("*/*.py")} - {"__init__"}


def own_module(path: str) -> ModuleType:
    """A kernel module generated from the user's specs, by its file; a clear error when it is gone."""
    if not Path(path).is_file():
        raise LayergenError(f"kernel module {path}: no such file; it is generated from your specs by "
                            "`layergen generate --specs DIR --out DIR` (a run's config does it: [network] specs)")
    return import_generated(Path(path))


def own_module_path(name: str, own_modules: Sequence[str]) -> str:
    """The one of ``own_modules`` (paths of modules generated from the user's specs) whose file is
    ``<name>.py``, or "" when spec ``name`` is not one of the user's."""
    return next((path for path in own_modules if Path(path).stem == name), "")


def kernel_module(name: str, own_modules: Sequence[str] = ()) -> ModuleType:
    """The generated module of spec ``name``: the user's own (``own_module_path``), else the built-in one."""
    path = own_module_path(name, own_modules)
    return own_module(path) if path else load_builtin(name)


@dataclass(frozen=True)
class OwnKernels:
    """What the user's generated modules offer a network, by name: activations (which a flow's conditioner
    may use too), layers with trainable parameters, losses and optimizers; and why each other module is none
    of them (for the error when a config names it)."""

    activations: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    misfits: tuple[tuple[str, str], ...] = ()

    def why_not(self, name: str, wanted: str = "activation") -> str:
        """", or what makes the user's spec ``name`` unusable where a config named it: as a network's
        ``activation`` (or layer), a flow conditioner's activation (``flow activation``), a ``loss`` or an
        ``optimizer``."""
        why = next((why for n, why in self.misfits if n == name), "")
        if why:
            return f" (your spec {name!r} is not usable in a network: {why})"
        if wanted == "flow activation" and name in self.layers:
            return (f" (your spec {name!r} is not usable in a flow's conditioner: it trains parameters of its "
                    "own, and a conditioner's activation has none)")
        for what, names in (("an activation", self.activations), ("a layer", self.layers), ("a loss", self.losses),
                            ("an optimizer", self.optimizers)):
            if name in names:
                return f" (your spec {name!r} is {what}, not {'an' if wanted[0] in 'aeiou' else 'a'} {wanted})"
        return ""


def loss_predictions(module: ModuleType) -> list[str]:
    """The names of the predictions a loss module's ``loss`` kernel reads, in its order: one for most losses,
    two for the Gaussian NLL (μ, s); the network's output columns hold them side by side, one block of
    D columns each (``Architecture.prediction_columns``)."""
    return [name for name, role, _ in module.KERNELS["loss"][0] if role == "input"]


def loss_misfit(module: ModuleType) -> str:
    """Why a generated loss module cannot be a network's loss ("" when it can): its kernels must compare k ≥ 1
    predictions (N, D) with one target of that shape, as ``loss(pred_1, ..., pred_k, target)`` and
    ``loss_grad(pred_1, ..., pred_k, target, grad_pred_1, ..., grad_pred_k)`` with hyperparameters only after
    them, each with a default; and it must be the batch mean L = (1/N) Σ ℓ (003 §2), whose gradient keeps its
    scale at every batch size and whose shards merge by their share of the rows (``runtime/sharded.py``)."""
    kernels = module.KERNELS
    if "loss" not in kernels or "loss_grad" not in kernels:
        return "it has no loss and loss_grad kernels"
    k = max(len(loss_predictions(module)), 1)
    predictions, target = [("input", ("N", "D"))] * k, [("target", ("N", "D"))]
    misfit = _arguments_misfit(module, {"loss": predictions + target,
                                        "loss_grad": predictions + target + [("grad", ("N", "D"))] * k},
                               "a network's loss compares one or more predictions of shape (N, D) with one target "
                               "of that shape")
    if misfit:
        return misfit
    if getattr(module, "LOSS_REDUCTION", "mean") != "mean":
        return (f"it sums over the batch (reduction = {module.LOSS_REDUCTION!r}); a network's loss is the batch "
                "mean, reduction = 'mean'")
    return ""


@cache
def own_kernels(own_modules: tuple[str, ...]) -> OwnKernels:
    """Sort the user's modules into activations, layers with parameters, losses, optimizers and misfits. A
    module may not share its name with a built-in spec, so that a name in a config means one kernel."""
    found: dict[str, list[str]] = {"activations": [], "layers": [], "losses": [], "optimizers": []}
    misfits: list[tuple[str, str]] = []
    builtin = _builtin_names()
    for path in own_modules:
        name = Path(path).stem
        if name in builtin:
            raise LayergenError(f"spec {name!r} ({path}): a built-in spec has that name; rename yours (its file "
                                "and its name = ...), so that a name in a config means one kernel")
        module = own_module(path)
        kind = getattr(module, "KIND", "?")
        if is_optimizer(module):
            found["optimizers"].append(name)
            continue
        misfit = (loss_misfit(module) if kind == "loss" else layer_misfit(module) if kind == "map" else
                  f"it is a {kind} spec; a network calls maps, losses and optimizer steps")
        if misfit:
            misfits.append((name, misfit))
        else:
            found["losses" if kind == "loss" else "layers" if layer_params(module) else "activations"].append(name)
    return OwnKernels(**{key: tuple(names) for key, names in found.items()}, misfits=tuple(misfits))


def own_fingerprints(own_modules: Sequence[str]) -> dict[str, str]:
    """The hash of each kernel module generated from the user's specs, by path: what a checkpoint records."""
    return {path: module_fingerprint(own_module(path)) for path in own_modules}


def refuse_changed_kernels(recorded: dict[str, str], own_modules: Sequence[str], folder: Path) -> None:
    """A clear error when one of ``own_modules`` differs from the hash the checkpoint in ``folder`` recorded:
    its weights were trained through the kernels as they were."""
    changed = [path for path, fingerprint in own_fingerprints(own_modules).items() if recorded.get(path) != fingerprint]
    if changed:
        raise LayergenError(f"{folder}: the kernel module {changed[0]} has changed since this checkpoint was "
                            "written (its spec, or layergen's code generator); restore that spec, or train anew")
