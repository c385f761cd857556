"""Rendering a Real NVP architecture into one module of three ``@njit`` functions:
``train_step`` (forward, NLL, backward, Adam), ``log_prob`` (per sample) and ``sample``
(the inverse direction). Every map, log-determinant, VJP, inverse and loss gradient is a
generated kernel; this module only orders the calls (the chain rule of the composition)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.fused import network_dir
from layergen.runtime.layout import view_code
from layergen.runtime.modules import import_generated


def _conditioner(arch: FlowArchitecture, k: int, source: str) -> list[str]:
    """ŝ and t of coupling k (the two halves of o{k}) from the kept columns of ``source``."""
    lines = [f"copy_columns({source}, {arch.kept(k)}, c{k})"]
    inp = f"c{k}"
    for layer in range(arch.depth):
        lines += [f"k_dense.forward({inp}, W{k}_{layer}, b{k}_{layer}, a{k}_{layer})",
                  f"k_act.forward(a{k}_{layer}, z{k}_{layer})"]
        inp = f"z{k}_{layer}"
    return lines + [f"k_dense.forward({inp}, Wh{k}, bh{k}, o{k})"]


def _halves(arch: FlowArchitecture, k: int, array: str) -> tuple[str, str]:
    half = arch.width(1 - arch.kept(k))
    return f"{array}[:, :{half}]", f"{array}[:, {half}:]"


def _moved(arch: FlowArchitecture, k: int, array: str) -> str:
    """The columns coupling k transforms."""
    return f"{array}[:, {1 - arch.kept(k)}::2]"


def _forward(arch: FlowArchitecture, bound: str) -> list[str]:
    lines = ["copy_all(x, u0)"]
    for k in range(arch.couplings):
        s, t = _halves(arch, k, f"o{k}")
        lines += _conditioner(arch, k, f"u{k}")
        lines += [f"copy_all(u{k}, u{k + 1})",
                  f"k_coupling.forward({_moved(arch, k, f'u{k}')}, {s}, {t}, {_moved(arch, k, f'u{k + 1}')}, ld{k}, {bound})"]
    return lines


def _backward(arch: FlowArchitecture, bound: str) -> list[str]:
    lines: list[str] = []
    for k in reversed(range(arch.couplings)):
        s, t = _halves(arch, k, f"o{k}")
        gs, gt = _halves(arch, k, f"go{k}")
        last = f"z{k}_{arch.depth - 1}"
        lines += [f"k_coupling.forward_vjp({_moved(arch, k, f'u{k}')}, {s}, {t}, {_moved(arch, k, f'gu{k + 1}')}, gld{k}, "
                  f"{_moved(arch, k, f'gu{k}')}, {gs}, {gt}, {bound})",
                  f"k_dense.vjp({last}, Wh{k}, bh{k}, go{k}, gz{k}_{arch.depth - 1}, g_Wh{k}, g_bh{k})"]
        for layer in reversed(range(arch.depth)):
            inp, g_inp = (f"c{k}", f"gc{k}") if layer == 0 else (f"z{k}_{layer - 1}", f"gz{k}_{layer - 1}")
            lines += [f"k_act.vjp(a{k}_{layer}, gz{k}_{layer}, ga{k}_{layer})",
                      f"k_dense.vjp({inp}, W{k}_{layer}, b{k}_{layer}, ga{k}_{layer}, {g_inp}, g_W{k}_{layer}, g_b{k}_{layer})"]
        lines.append(f"add_columns(gu{k + 1}, gc{k}, {arch.kept(k)}, gu{k})")
    return lines


def functions(arch: FlowArchitecture) -> dict[str, tuple[list[str], list[str], str]]:
    layout = arch.layout()
    views = ["_n = x.shape[0]", *view_code("theta", layout.trainable), *view_code("work", layout.work)]
    bound = repr(float(arch.bound))
    K = arch.couplings
    nll = [f"loss = k_base.loss_grad(u{K}, gu{K})"] + [f"loss += k_logdet.loss_grad(ld{k}, gld{k})" for k in range(K)]
    train = views + view_code("grad", layout.trainable, prefix="g_") + _forward(arch, bound) + nll + _backward(arch, bound)
    train.append("opt_step(theta, grad, state_m, state_v, h_lr, h_beta1, h_beta2, h_epsilon, h_t)")
    per_sample = ["for _i in range(_n):",
                  f"    _nll = k_base.loss(u{K}[_i:_i + 1])"] + [
                  f"    _nll += k_logdet.loss(ld{k}[_i:_i + 1])" for k in range(K)] + ["    out[_i] = -_nll"]
    sample = ["_n = z.shape[0]"] + view_code("theta", layout.trainable) + view_code("work", layout.work)
    sample.append(f"copy_all(z, u{K})")
    for k in reversed(range(K)):
        s, t = _halves(arch, k, f"o{k}")
        sample += _conditioner(arch, k, f"u{k + 1}")  # coupling k keeps these columns: u{k} and u{k+1} agree
        sample += [f"copy_all(u{k + 1}, u{k})",
                   f"k_coupling.inverse({_moved(arch, k, f'u{k + 1}')}, {s}, {t}, {_moved(arch, k, f'u{k}')}, ld{k}, {bound})"]
    return {
        "train_step": (["x", "theta", "grad", "state_m", "state_v", "work", "h_lr", "h_beta1", "h_beta2", "h_epsilon", "h_t"],
                       train, "loss"),
        "log_prob": (["x", "theta", "work", "out"], views + _forward(arch, bound) + per_sample, "out"),
        "sample": (["z", "theta", "work"], sample, "u0"),
    }


def build_flow_module(arch: FlowArchitecture) -> ModuleType:
    """Render (once per architecture) and import the flow's fused module."""
    from layergen.codegen.render import environment, write_if_changed

    key = arch.key()
    path = network_dir() / "flow" / f"flow_{key}.py"
    kernels = {"k_dense": "dense", "k_act": arch.activation, "k_coupling": "real_nvp_coupling",
               "k_base": "standard_normal_nll", "k_logdet": "neg_logdet", "k_opt": "adam"}
    summary = (f"Real NVP, {arch.dim} dimensions, {arch.couplings} couplings, conditioners "
               f"{arch.depth}×{arch.hidden} {arch.activation}, log-scale bound {arch.bound}")
    text = environment().get_template("flow.py.j2").render(key=key, summary=summary, kernels=kernels,
                                                           functions=functions(arch))
    write_if_changed(path, text)
    return import_generated(path)


def flow_dir() -> Path:
    return network_dir() / "flow"
