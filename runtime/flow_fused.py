"""Rendering a flow architecture into one module of three ``@njit`` functions:
``train_step`` (forward, NLL, backward, Adam), ``log_prob`` (per sample) and ``sample``
(the inverse direction). Every map, log-determinant, VJP, inverse and loss gradient is a
generated kernel; this module only orders the calls (the chain rule of the composition)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from layergen.runtime import maf_fused, mixture_fused
from layergen.runtime.activation_settings import literal_arguments
from layergen.runtime.flow_architecture import AFFINE_TRANSFORMS, BATCHNORM_RATE, FlowArchitecture, conditioning, lu_scratch
from layergen.runtime.fused import network_dir
from layergen.runtime.kernel_catalog import own_module_path
from layergen.runtime.sharded_source import TASK_ARGUMENTS, BlockUpdate, GradientArgument, entry_source, step_bodies
from layergen.runtime.layout import view_code
from layergen.runtime.modules import import_generated

#: Adam's hyperparameters, as the flow's training steps take them
HYPERS = ("h_lr", "h_beta1", "h_beta2", "h_epsilon", "h_t")


def _conditioner(arch: FlowArchitecture, p: int, source: str) -> list[str]:
    """ŝ and t of the current coupling of parity p (the two halves of o{p}[_j]) from the columns
    ``p::2`` of ``source``, which the coupling keeps."""
    # np.intp(p), not the literal p: Numba compiles a helper once per literal argument (0.1-0.2 s each)
    lines = [f"copy_columns({source}, np.intp({p}), c{p}[_j])"]
    inp, act = f"c{p}[_j]", literal_arguments(arch.activation_hypers())
    for layer in range(arch.depth):
        lines += [f"k_dense.forward({inp}, W{p}_{layer}[_j], b{p}_{layer}[_j], a{p}_{layer}[_j])",
                  f"k_act.forward(a{p}_{layer}[_j], z{p}_{layer}[_j]{act})"]
        inp = f"z{p}_{layer}[_j]"
    return lines + [f"k_dense.forward({inp}, Wh{p}[_j], bh{p}[_j], o{p}[_j])"]


def _halves(arch: FlowArchitecture, p: int, array: str, index: str = "[_j]") -> tuple[str, ...]:
    """The transformer's conditioning columns of the head output, one block of width d_out each:
    (ŝ, t) for Real NVP, (t,) for NICE, the seven SOS coefficients (a_01, ..., a_22, b); ``index``
    picks the coupling's array of a stack ("" for a buffer of the parity, ``BACKWARD_SCRATCH``)."""
    count = len(conditioning(arch.transformer))
    if count == 1:
        return (f"{array}{p}{index}",)
    width = arch.width(1 - p)
    return tuple(f"{array}{p}{index}[:, {i * width}:{(i + 1) * width}]" for i in range(count))


def _hyper(arch: FlowArchitecture, bound: str) -> list[str]:
    """The transformer's hyperparameters: the log-scale bound B of Real NVP and MAF; NICE has none; SOS
    keeps its spec's bracket default."""
    return [bound] if arch.transform in AFFINE_TRANSFORMS else []


def _moved(p: int, array: str) -> str:
    """The columns a coupling of parity p transforms."""
    return f"{array}[:, {1 - p}::2]"


def _per_parity(arch: FlowArchitecture, body: Callable[[int], list[str]]) -> list[str]:
    """The loop body over couplings _k: one branch per parity, each indexing its stacks with _j."""
    lines = ["    _j = _k // 2"]
    branches = [p for p in (0, 1) if arch.count(p)]
    for i, p in enumerate(branches):
        if len(branches) == 1:
            lines += ["    " + line for line in body(p)]
            break
        lines.append("    if _k % 2 == 0:" if i == 0 else "    else:")
        lines += ["        " + line for line in body(p)]
    return lines


def _stages(arch: FlowArchitecture) -> tuple[str, str]:
    """Where block k's coupling and its normalisation write: u[k] → coupling → v[k] → ActNorm or
    batch norm → m[k] → LU mixing → u[k + 1], each optional stage skipped (its input is then the next one's)."""
    after_norm = "m[_k]" if arch.mixing == "lu" else "u[_k + 1]"
    return ("v[_k]" if arch.normalised else after_norm), after_norm


def _norm(arch: FlowArchitecture, kernel: str, p: int, source: str, target: str, training: bool = False) -> list[str]:
    """A call of block k's normalisation: ActNorm (elementwise affine); the batch-norm flow with the
    batch statistics in training (000 eq. 75, 77; its VJP runs through them) and the running
    averages otherwise (eq. 76 for the inverse), training also updating those averages."""
    if arch.actnorm:
        factors = f"act_alpha{p}[_j], act_beta{p}[_j]"
        if kernel == "forward_vjp":
            return [f"k_affine.forward_vjp(v[_k], {factors}, {source}, glda[_k], gv[_k], g_act_alpha{p}[_j], g_act_beta{p}[_j])"]
        return [f"k_affine.{kernel}({source}, {factors}, {target}, lda[_k])"]
    if not arch.batchnorm:
        return []
    factors = f"bn_alpha{p}[_j], bn_beta{p}[_j]"
    moments = f"bn_mean{p}[_j], bn_var{p}[_j]"
    if kernel == "forward_vjp":
        return [f"k_bn.forward_vjp(v[_k], {factors}, {source}, glda[_k], gv[_k], g_bn_alpha{p}[_j], g_bn_beta{p}[_j])"]
    if training:
        return [f"k_bn.forward({source}, {factors}, {target}, lda[_k])",
                f"update_running_moments({source}, {moments}, {BATCHNORM_RATE!r})"]
    return [f"k_bn_eval.{kernel}({source}, {factors}, {moments}, {target}, lda[_k])"]


def _lu(arch: FlowArchitecture, kernel: str, p: int, *arrays: str) -> list[str]:
    """A call of the generated ``lu_linear`` kernel on block k's factors, with its scratch buffers."""
    if arch.mixing != "lu":
        return []
    scratch = [f"lus[{i}]" for i in range(lu_scratch(kernel))]
    factors = [f"luL{p}[_j]", f"luU{p}[_j]", f"luP{p}[_j]"]
    grads = [f"g_luL{p}[_j]", f"g_luU{p}[_j]"] if kernel == "forward_vjp" else []
    first, *rest = arrays
    return [f"k_lu.{kernel}({', '.join([first, *factors, *rest, *grads, *scratch])})"]


def _forward(arch: FlowArchitecture, bound: str, training: bool) -> list[str]:
    out, after_norm = _stages(arch)

    def coupling(p: int) -> list[str]:
        conditioning = _halves(arch, p, "o")
        lines = maf_fused.forward(arch, p, out, bound) if arch.transform == "maf" else _conditioner(arch, p, "u[_k]") + [
            f"copy_all(u[_k], {out})",
            f"k_coupling.forward({', '.join([_moved(p, 'u[_k]'), *conditioning, _moved(p, out), 'ld[_k]', *_hyper(arch, bound)])})"]
        lines += _norm(arch, "forward", p, "v[_k]", after_norm, training)
        return lines + _lu(arch, "forward", p, "m[_k]", "u[_k + 1]", "ldl[_k]")

    lines = ["copy_all(x, u[0])", f"for _k in range({arch.couplings}):", *_per_parity(arch, coupling)]
    if arch.base == "diagonal":
        lines.append(f"k_affine.forward(u[{arch.couplings}], base_alpha, base_beta, zb, ldb)")
    return lines


def _backward(arch: FlowArchitecture, bound: str) -> list[str]:
    upstream, after_norm = ("g" + stage for stage in _stages(arch))

    def coupling(p: int) -> list[str]:
        conditioning = _halves(arch, p, "o")
        gradients = _halves(arch, p, "go", index="")  # the gradients: one buffer per parity
        last = arch.depth - 1
        lines = _lu(arch, "forward_vjp", p, "m[_k]", "gu[_k + 1]", "gldl[_k]", "gm[_k]")
        lines += _norm(arch, "forward_vjp", p, after_norm, "gv[_k]")
        if arch.transform == "maf":
            return lines + maf_fused.backward(arch, p, upstream, bound)
        args = [_moved(p, 'u[_k]'), *conditioning, _moved(p, upstream), "gld[_k]", _moved(p, 'gu[_k]'), *gradients,
                *_hyper(arch, bound)]
        lines += [f"k_coupling.forward_vjp({', '.join(args)})",
                 f"k_dense.vjp(z{p}_{last}[_j], Wh{p}[_j], bh{p}[_j], go{p}, gz{p}_{last}, g_Wh{p}[_j], g_bh{p}[_j])"]
        act = literal_arguments(arch.activation_hypers())
        for layer in reversed(range(arch.depth)):
            inp, g_inp = (f"c{p}[_j]", f"gc{p}") if layer == 0 else (f"z{p}_{layer - 1}[_j]", f"gz{p}_{layer - 1}")
            lines += [f"k_act.vjp(a{p}_{layer}[_j], gz{p}_{layer}, ga{p}_{layer}{act})",
                      f"k_dense.vjp({inp}, W{p}_{layer}[_j], b{p}_{layer}[_j], ga{p}_{layer}, {g_inp}, "
                      f"g_W{p}_{layer}[_j], g_b{p}_{layer}[_j])"]
        return lines + [f"add_columns({upstream}, gc{p}, np.intp({p}), gu[_k])"]

    K = arch.couplings
    lines = [f"k_affine.forward_vjp(u[{K}], base_alpha, base_beta, gzb, gldb, gu[{K}], g_base_alpha, g_base_beta)"
             ] if arch.base == "diagonal" else []
    return lines + [f"for _k in range({K - 1}, -1, -1):", *_per_parity(arch, coupling)]


def _inverse(arch: FlowArchitecture, bound: str) -> list[str]:
    out, after_norm = _stages(arch)

    def coupling(p: int) -> list[str]:
        conditioning = _halves(arch, p, "o")
        lines = _lu(arch, "inverse", p, "u[_k + 1]", "m[_k]", "ldl[_k]")
        lines += _norm(arch, "inverse", p, after_norm, "v[_k]")
        if arch.transform == "maf":
            return lines + maf_fused.inverse(arch, p, out, bound)
        # coupling _k keeps the columns p::2, so its input and output agree there: condition on the output
        return lines + _conditioner(arch, p, out) + [
            f"copy_all({out}, u[_k])",
            f"k_coupling.inverse({', '.join([_moved(p, out), *conditioning, _moved(p, 'u[_k]'), 'ld[_k]', *_hyper(arch, bound)])})"]

    K = arch.couplings
    first = (f"k_affine.inverse(z, base_alpha, base_beta, u[{K}], ldb)" if arch.base == "diagonal"
             else f"copy_all(z, u[{K}])")
    return [first, f"for _k in range({K - 1}, -1, -1):", *_per_parity(arch, coupling)]


def shard_arguments(arch: FlowArchitecture) -> list[GradientArgument]:
    """The arguments of ``gradients`` and the sharded step's arrays they come from."""
    return [GradientArgument("x", "x", columns=arch.dim), GradientArgument("theta", "theta"),
            GradientArgument("const", "const"), GradientArgument("grad", "grads"), GradientArgument("work", "works")]


def block_update() -> BlockUpdate:
    """Adam's update of the parameter block ``_lo:_hi`` in the sharded step."""
    return BlockUpdate(("state_m", "state_v"), HYPERS, f"opt_step(theta[_lo:_hi], grads[_c][_lo:_hi], state_m[_lo:_hi], "
                                                       f"state_v[_lo:_hi], {', '.join(HYPERS)})")


def functions(arch: FlowArchitecture, key: str) -> tuple[dict[str, tuple[list[str], list[str], str]], list[str]]:
    """name → (arguments, body, result) of each compiled function of the flow's module, and the
    lines of ``gradients`` (forward, NLL and backward into ``grad``; sets ``loss``), which the training step
    and the sharded step's C entry run inline."""
    layout = arch.layout()
    views = ["_n = x.shape[0]", *view_code("theta", layout.trainable), *view_code("const", layout.fixed),
             *view_code("work", layout.work)]
    bound = repr(float(arch.bound))
    K = arch.couplings
    diagonal = arch.base == "diagonal"
    latent, g_latent = ("zb", "gzb") if diagonal else (f"u[{K}]", f"gu[{K}]")
    mixture = arch.base == "mixture"
    base_nll = (mixture_fused.nll_and_gradient(arch, latent, g_latent) if mixture
                else [f"loss = k_base.loss_grad({latent}, {g_latent})"])
    logdets = [f"for _k in range({K}):", "    loss += k_logdet.loss_grad(ld[_k], gld[_k])"]
    logdets += ["    loss += k_logdet.loss_grad(lda[_k], glda[_k])"] if arch.normalised else []
    logdets += ["    loss += k_logdet.loss_grad(ldl[_k], gldl[_k])"] if arch.mixing == "lu" else []
    logdets += ["loss += k_logdet.loss_grad(ldb, gldb)"] if diagonal else []
    step = f"opt_step(theta, grad, state_m, state_v, {', '.join(HYPERS)})"
    with_grads = views + view_code("grad", layout.trainable, prefix="g_") + _forward(arch, bound, True)
    gradients = with_grads + base_nll + logdets + _backward(arch, bound)
    # the same step with ∂L/∂latent given from outside instead of the base's NLL (the loss returned is then
    # the log-determinant part only): how an IAF student learns from a teacher's density (runtime/iaf.py)
    guided = with_grads + [f"copy_all(g_latent, {g_latent})", "loss = 0.0"] + logdets + _backward(arch, bound) + [step]
    before, base_term = (mixture_fused.per_sample(arch, latent) if mixture
                         else ([], f"k_base.loss({latent}[_i:_i + 1])"))
    per_sample = [*before, "for _i in range(_n):",
                  f"    _nll = {base_term}",
                  f"    for _k in range({K}):",
                  "        _nll += k_logdet.loss(ld[_k][_i:_i + 1])"]
    per_sample += ["        _nll += k_logdet.loss(lda[_k][_i:_i + 1])"] if arch.normalised else []
    per_sample += ["        _nll += k_logdet.loss(ldl[_k][_i:_i + 1])"] if arch.mixing == "lu" else []
    per_sample += ["    _nll += k_logdet.loss(ldb[_i:_i + 1])"] if diagonal else []
    per_sample += ["    out[_i] = -_nll"]
    hypers = list(HYPERS)
    sample = ["_n = z.shape[0]"] + view_code("theta", layout.trainable) + view_code("const", layout.fixed) \
        + view_code("work", layout.work)
    guided_step = {} if mixture else {  # a mixture's parameters would get no gradient from outside
        "guided_step": (["x", "g_latent", "theta", "const", "grad", "state_m", "state_v", "work", *hypers], guided, "loss")}
    sharded: dict[str, tuple[list[str], list[str], str]] = {}
    if not arch.batchnorm:  # batch norm's statistics couple the samples of a batch
        args = ["x", "theta", "const", "grads", "state_m", "state_v", "works", *TASK_ARGUMENTS, *hypers]
        for dtype, body in step_bodies("flow", key, shard_arguments(arch), block_update()).items():
            sharded[f"train_step_sharded_{dtype}"] = (args, body, "loss")
    return {
        # ``gradients`` inline, not called: Numba would compile it, then generate its machine code again here
        "train_step": (["x", "theta", "const", "grad", "state_m", "state_v", "work", *hypers], gradients + [step],
                       "loss"),
        **sharded,
        **guided_step,
        "log_prob": (["x", "theta", "const", "work", "out"], views + _forward(arch, bound, False) + per_sample, "out"),
        "sample": (["z", "theta", "const", "work"], sample + _inverse(arch, bound), "u[0]"),
    }, gradients


def build_flow_module(arch: FlowArchitecture) -> ModuleType:
    """Render (once per architecture) and import the flow's fused module."""
    from layergen.codegen.render import environment, write_if_changed

    key = arch.key()
    path = network_dir() / "flow" / f"flow_{key}.py"
    kernels = {"k_dense": "dense", **({"k_made": "masked_dense"} if arch.transform == "maf" else {}), "k_act": arch.activation_name, "k_coupling": arch.transformer, "k_affine": "affine_elementwise",
               "k_base": "standard_normal_nll", "k_logdet": "neg_logdet", "k_opt": "adam",
               **({"k_lu": "lu_linear"} if arch.mixing == "lu" else {}),
               **({"k_bn": "batch_norm_flow", "k_bn_eval": "batch_norm_flow_eval"} if arch.batchnorm else {}),
               **({"k_gauss": "diagonal_gaussian_logpdf", "k_mix": "mixture_nll"} if arch.base == "mixture" else {})}
    kernels = {alias: (spec, own_module_path(spec, arch.own_modules) if alias == "k_act" else "")
               for alias, spec in kernels.items()}  # the activation may be one of your specs, imported by its path
    summary = f"{arch.dim} dimensions; {arch.describe()}; log-scale bound {arch.bound}; {arch.base} base"
    compiled, gradients = functions(arch, key)
    entries = [] if arch.batchnorm else entry_source("flow", key, shard_arguments(arch), gradients, block_update())
    text = environment().get_template("flow.py.j2").render(key=key, summary=summary, kernels=kernels,
                                                           functions=compiled, entries=entries)
    write_if_changed(path, text)
    return import_generated(path)


def flow_dir() -> Path:
    return network_dir() / "flow"
