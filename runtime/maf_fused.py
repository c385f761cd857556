"""The loop bodies of a MAF block in the fused flow module (see ``runtime/maf.py`` for the masks).

Forward (density) and training are one pass of the MADE: every ŝ_i, t_i at once from x, then
the generated transformer on all columns. Sampling inverts a block **incrementally**: x_i needs
ŝ_i, t_i of x_{<i}, and a hidden unit of degree m depends on x_{≤m} only, so after x_m is known
the units of degree m are final. Walking the positions m = 1..D, each step computes the two head
rows of position m, solves x_m with the generated inverse, then the hidden units of degree m,
layer by layer. Every unit is computed once: the whole inverse costs one pass of the MADE (plus
transposes), not the D passes of a naive implementation. It runs feature-major (activations of
shape units × n) so the units of one degree are contiguous rows for BLAS.
"""

from __future__ import annotations

from layergen.runtime.activation_settings import literal_arguments
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.maf import degree_block


def _made_inputs(arch: FlowArchitecture, p: int, source: str) -> list[tuple[str, str]]:
    """(input, its gradient) of each MADE layer of a parity-p block reading ``source``; the gradients are
    one buffer per parity (``flow_architecture.BACKWARD_SCRATCH``), the inputs one per block."""
    return [(source, f"gc{p}")] + [(f"z{p}_{layer - 1}[_j]", f"gz{p}_{layer - 1}") for layer in range(1, arch.depth)]


def forward(arch: FlowArchitecture, p: int, out: str, bound: str) -> list[str]:
    """u[_k] → out with the block's log|det J| in ld[_k]."""
    lines, act = [], literal_arguments(arch.activation_hypers())
    for layer, (inp, _) in enumerate(_made_inputs(arch, p, "u[_k]")):
        lines += [f"k_made.forward({inp}, W{p}_{layer}[_j], b{p}_{layer}[_j], mask{p}_{layer}, a{p}_{layer}[_j], sf{layer})",
                  f"k_act.forward(a{p}_{layer}[_j], z{p}_{layer}[_j]{act})"]
    last, D = arch.depth - 1, arch.dim
    return lines + [f"k_made.forward(z{p}_{last}[_j], Wh{p}[_j], bh{p}[_j], maskh{p}, o{p}[_j], sfh)",
                    f"k_coupling.forward(u[_k], o{p}[_j][:, :{D}], o{p}[_j][:, {D}:], {out}, ld[_k], {bound})"]


def backward(arch: FlowArchitecture, p: int, upstream: str, bound: str) -> list[str]:
    """∂L/∂u[_k] and the block's parameter gradients from ∂L/∂out (``upstream``) and ∂L/∂ld[_k]."""
    last, D = arch.depth - 1, arch.dim
    lines = [f"k_coupling.forward_vjp(u[_k], o{p}[_j][:, :{D}], o{p}[_j][:, {D}:], {upstream}, gld[_k], gu[_k], "
             f"go{p}[:, :{D}], go{p}[:, {D}:], {bound})",
             f"k_made.vjp(z{p}_{last}[_j], Wh{p}[_j], bh{p}[_j], maskh{p}, go{p}, gz{p}_{last}, g_Wh{p}[_j], "
             f"g_bh{p}[_j], sbh)"]
    act = literal_arguments(arch.activation_hypers())
    for layer, (inp, g_inp) in reversed(list(enumerate(_made_inputs(arch, p, "u[_k]")))):
        lines += [f"k_act.vjp(a{p}_{layer}[_j], gz{p}_{layer}, ga{p}_{layer}{act})",
                  f"k_made.vjp({inp}, W{p}_{layer}[_j], b{p}_{layer}[_j], mask{p}_{layer}, ga{p}_{layer}, {g_inp}, "
                  f"g_W{p}_{layer}[_j], g_b{p}_{layer}[_j], sb{layer})"]
    return lines + [f"add_into(gc{p}, gu[_k])"]


def inverse(arch: FlowArchitecture, p: int, source: str, bound: str) -> list[str]:
    """u[_k] from the block's output ``source``, position by position (module docstring)."""
    D, H, depth = arch.dim, arch.hidden, arch.depth
    act = literal_arguments(arch.activation_hypers())
    blocks = [degree_block(m, D, H) for m in range(1, D)]  # hidden units of degree m: [lo, hi)
    lines = [f"transpose_into({source}, yT)", "fill_zero(xT)",
             f"_los = ({', '.join(str(lo) for lo, _ in blocks)},)", f"_his = ({', '.join(str(hi) for _, hi in blocks)},)"]
    for layer in range(depth):
        lines += [f"masked_transpose(W{p}_{layer}[_j], mask{p}_{layer}, wt{layer})", f"fill_zero(zT{layer})"]
    lines += [f"masked_transpose(Wh{p}[_j], maskh{p}, wth)",
              f"for _m in range(1, {D + 1}):",
              f"    _d = {'_m - 1' if p == 0 else f'{D} - _m'}  # the column at position _m of this block's order"]
    for row, name in (("_d", "s"), (f"{D} + _d", "t")):
        lines += [f"    matmul_into(wth[{row}:{row} + 1], zT{depth - 1}, oT[{row}:{row} + 1])  # {name} of column _d",
                  f"    add_row_bias(oT[{row}:{row} + 1], bh{p}[_j], {row})"]
    lines += [f"    k_coupling.inverse(yT[_d:_d + 1], oT[_d:_d + 1], oT[{D} + _d:{D} + _d + 1], xT[_d:_d + 1], ldT, {bound})",
              f"    if _m < {D}:  # the hidden units of degree _m are now final",
              "        _lo = _los[_m - 1]",
              "        _hi = _his[_m - 1]"]
    for layer in range(depth):
        below = "xT" if layer == 0 else f"zT{layer - 1}"
        lines += [f"        matmul_into(wt{layer}[_lo:_hi], {below}, aT{layer}[_lo:_hi])",
                  f"        add_row_bias(aT{layer}[_lo:_hi], b{p}_{layer}[_j], _lo)",
                  f"        k_act.forward(aT{layer}[_lo:_hi], zT{layer}[_lo:_hi]{act})"]
    return lines + ["transpose_into(xT, u[_k])"]
