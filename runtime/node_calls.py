"""The kernel calls of a network's fused step, node by node, with the buffers each call reads and writes;
and the work layout planned from them (``runtime/liveness.py``).

Forward in topological order, backward in reverse order (003 §3-4): node k reads its input (``x`` or
``h{k-1}``) and writes ``h{k}``; its VJP reads its input and ``gh{k}`` (the gradient of its output) and
writes ``gh{k-1}``, the gradient of its input (none for the first node, whose input is the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from layergen.runtime.activation_settings import literal_arguments
from layergen.runtime.architecture import Architecture, layer_param_name
from layergen.runtime.kernel_catalog import layer_params
from layergen.runtime.layout import Layout, layout
from layergen.runtime.liveness import Access, share_dead_slots

EPS = 1e-5  # the ε of batch and layer norm

MOMENTUM = 0.1  # running averages of batch norm: M ← (1 − m) M + m · batch mean
#: the scalars a step of a network with dropout takes after the optimizer's hyperparameters: the numbers
#: of the masks' stream (``nodes.sample_keep_mask``), passed as floats like the hyperparameters
DROPOUT_ARGUMENTS = ("dropout_seed", "dropout_step")


@dataclass
class NodeCalls:
    """The lines of the forward pass in training and in evaluation (``predict``), the loss, and the
    backward pass in the order it runs; training lines carry their ``Access``."""

    train_forward: list[tuple[str, Access]] = field(default_factory=list)
    predict_forward: list[str] = field(default_factory=list)
    predict_result: str = "x"
    loss: tuple[str, Access] = ("", Access((), ()))
    backward: list[tuple[str, Access]] = field(default_factory=list)

    def training(self) -> list[tuple[str, Access]]:
        """Forward, loss and backward: the lines of a step's ``gradients``, in order."""
        return [*self.train_forward, self.loss, *self.backward]


def kernel_aliases(arch: Architecture) -> dict[str, str]:
    """Spec name → the name the fused module binds its generated kernels to."""
    kernels = {"dense": "k_dense", arch.loss_name: "k_loss", arch.optimizer: "k_opt"}
    for name in arch.kernel_names():
        kernels.setdefault(name, f"k_{name}")
    return kernels


def node_calls(arch: Architecture) -> NodeCalls:
    """Every node's forward and VJP calls, with the loss between them."""
    kernels = kernel_aliases(arch)
    nodes = arch.nodes()
    h = [f"h{k}" for k in range(len(nodes))]
    gh = [f"gh{k}" for k in range(len(nodes))]
    calls = NodeCalls()
    forward, predict, backward = calls.train_forward, calls.predict_forward, []
    current_predict = "x"
    for k, node in enumerate(nodes):
        inp = "x" if k == 0 else h[k - 1]
        g_in = None if k == 0 else gh[k - 1]
        i = node.index
        if node.kind == "dense":
            forward.append((f"k_dense.forward({inp}, W{i}, b{i}, {h[k]})", Access((inp,), (h[k],))))
            predict.append(f"k_dense.forward({current_predict}, W{i}, b{i}, {h[k]})")
            backward.append((f"k_dense.vjp_params({inp}, W{i}, b{i}, {gh[k]}, g_W{i}, g_b{i})", Access((inp, gh[k]), ()))
                            if g_in is None else
                            (f"k_dense.vjp({inp}, W{i}, b{i}, {gh[k]}, {g_in}, g_W{i}, g_b{i})",
                             Access((inp, gh[k]), (g_in,))))
        elif node.kind == "activation":
            # the layer's settings, else the spec's defaults, as literals: constants Numba folds into the kernel
            alias, extra = kernels[node.name], literal_arguments(arch.activation_hypers(node))
            # a layer of the user's may train parameters: its kernels take them after the input, its VJP
            # writes their gradients after the input's
            params = [layer_param_name(node, name) for name, _, _ in layer_params(arch.kernel(node.name))]
            own = "".join(f", {p}" for p in params)
            grads = "".join(f", g_{p}" for p in params)
            forward.append((f"{alias}.forward({inp}{own}, {h[k]}{extra})", Access((inp,), (h[k],))))
            predict.append(f"{alias}.forward({current_predict}{own}, {h[k]}{extra})")
            if g_in is not None or params:
                target = g_in or "g_input"  # the first layer's input is the data: its gradient is not used
                backward.append((f"{alias}.vjp({inp}{own}, {gh[k]}, {target}{grads}{extra})",
                                 Access((inp, gh[k]), (target,))))
        elif node.kind == "dropout":  # inverted dropout in training, the identity in evaluation
            mask = f"mask{k}"
            # the mask's stream: the network's seed, the step and the node; its rows from the shard's first
            # (``DROPOUT_ARGUMENTS``, ``_row0``: 0 in a whole-batch step)
            forward += [(f"sample_keep_mask({mask}, {node.p!r}, dropout_seed, dropout_step, {k}, _row0)",
                         Access((), (mask,))),
                        (f"k_dropout.forward({inp}, {mask}, {h[k]}, {node.p!r})", Access((inp, mask), (h[k],)))]
            if g_in is not None:
                backward.append((f"k_dropout.vjp({inp}, {mask}, {gh[k]}, {g_in}, {node.p!r})",
                                 Access((inp, mask, gh[k]), (g_in,))))
        elif node.kind == "batch_norm":
            forward += [(f"k_batch_norm_train.forward({inp}, A{i}, B{i}, {h[k]}, {EPS!r})", Access((inp,), (h[k],))),
                        (f"update_running_stats({inp}, M{i}, S{i}, {MOMENTUM!r})", Access((inp,), ()))]
            predict.append(f"k_batch_norm_eval.forward({current_predict}, A{i}, B{i}, M{i}, S{i}, {h[k]}, {EPS!r})")
            target = g_in or "g_input"
            backward.append((f"k_batch_norm_train.vjp({inp}, A{i}, B{i}, {gh[k]}, {target}, g_A{i}, g_B{i}, {EPS!r})",
                             Access((inp, gh[k]), (target,))))
        elif node.kind == "layer_norm":
            forward.append((f"k_layer_norm.forward({inp}, gamma{i}, beta{i}, {h[k]}, {EPS!r})",
                            Access((inp,), (h[k],))))
            predict.append(f"k_layer_norm.forward({current_predict}, gamma{i}, beta{i}, {h[k]}, {EPS!r})")
            target = g_in or "g_input"
            backward.append((f"k_layer_norm.vjp({inp}, gamma{i}, beta{i}, {gh[k]}, {target}, g_gamma{i}, "
                             f"g_beta{i}, {EPS!r})", Access((inp, gh[k]), (target,))))
        if node.kind != "dropout":
            current_predict = h[k]
    calls.predict_result = current_predict
    calls.loss = (loss_line(arch, h[-1], gh[-1]), Access((h[-1],), (gh[-1],)))
    calls.backward = list(reversed(backward))
    return calls


def loss_line(arch: Architecture, prediction: str, gradient: str) -> str:
    """The loss and its gradient into ``gradient``; a loss of several predictions (``prediction_columns``:
    the Gaussian NLL's [μ | s]) reads, and writes the gradients of, its column ranges of the output."""
    columns = arch.prediction_columns()
    extra = literal_arguments(arch.loss_hypers())  # the loss's settings, else its spec's defaults, as literals
    if len(columns) == 1:  # the whole array, not a slice of it: the kernel keeps its contiguous layout
        return f"loss = loss_grad({prediction}, target, {gradient}{extra})"
    reads = [f"{prediction}[:, {a}:{b}]" for a, b in columns]
    writes = [f"{gradient}[:, {a}:{b}]" for a, b in columns]
    return f"loss = loss_grad({', '.join(reads)}, target, {', '.join(writes)}{extra})"


def planned_layout(arch: Architecture, calls: NodeCalls | None = None) -> Layout:
    """The architecture's layout with its work buffers planned over the training step's calls (``calls``
    if the caller has them already): a node's output gradient takes the memory of an output no later
    call reads. ``predict`` runs forward calls only, which write the outputs, none of which share
    memory with one another (all are still live when the loss is computed)."""
    base = layout(arch)
    calls = calls or node_calls(arch)
    work = share_dead_slots(base.work, [access for _, access in calls.training()])
    return Layout(base.trainable, base.fixed, work)
