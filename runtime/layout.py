"""Where every array of a network lives: a few flat, aligned buffers and named views into them.

Why flat: the fused step then takes a handful of arrays instead of one per parameter,
gradient, optimizer state and activation (each array argument costs the dispatcher an
unboxing), and the optimizer updates all trainable parameters in one contiguous loop
instead of one call per tensor. Every view starts on a 64-byte boundary so BLAS sees aligned
operands. Padding between views is zero in ``theta`` and ``grad`` and stays zero under every
optimizer of the catalog (a zero gradient with zero state leaves a zero parameter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layergen.runtime.architecture import Architecture, param_specs

ALIGN_BYTES = 64


def aligned_zeros(size: int, dtype: type) -> np.ndarray:
    """A zeroed 1-D array of ``size`` elements whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(size + ALIGN_BYTES // itemsize, dtype)
    skip = (-raw.ctypes.data % ALIGN_BYTES) // itemsize
    return raw[skip:skip + size]


def _aligned(count: int, itemsize: int) -> int:
    step = ALIGN_BYTES // itemsize
    return -(-count // step) * step


@dataclass(frozen=True)
class Slot:
    """A named view of ``rows`` × ``cols`` elements: ``rows`` = 0 means one row per sample of the
    batch, ``cols`` = 0 means a 1-D view (of ``rows`` elements, or one per sample). ``stack`` > 0
    adds a leading axis of that length: ``stack`` such views back to back, so generated code can
    loop over identical layers (``view[j]`` is the j-th, contiguous) instead of unrolling them."""

    name: str
    rows: int
    cols: int
    stack: int = 0
    #: the slot whose memory this one reuses (``runtime/liveness.py``: that slot's last use comes before
    #: this one's first write); "" for a slot with memory of its own
    shares: str = ""
    #: a 0-d view of one element (a layer's parameter of shape ()), which ``rows`` = 1 then holds
    scalar: bool = False

    def count(self, batch: int) -> int:
        return max(self.stack, 1) * (self.rows or batch) * max(self.cols, 1)

    def shape(self, batch: int) -> tuple[int, ...]:
        if self.scalar:
            return ()
        base = (self.rows or batch, self.cols) if self.cols else (self.rows or batch,)
        return (self.stack, *base) if self.stack else base

    def shape_code(self, batch: str) -> str:
        """The view's shape as generated source, ``batch`` naming the batch size."""
        if self.scalar:
            return "()"
        parts = [str(self.stack)] if self.stack else []
        parts += [str(self.rows or batch)] + ([str(self.cols)] if self.cols else [])
        return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"

    def count_code(self, batch: str) -> str:
        return f"{self.stack} * " * bool(self.stack) + f"{self.rows or batch} * {max(self.cols, 1)}"


def offsets(slots: tuple[Slot, ...], batch: int, itemsize: int) -> tuple[list[int], int]:
    """Each slot's aligned start and the buffer's total size; a slot that shares another's memory starts
    where that one does and takes no room of its own."""
    own: dict[str, int] = {}
    total = 0
    for slot in slots:
        if not slot.shares:
            own[slot.name] = total
            total += _aligned(slot.count(batch), itemsize)
    return [own[slot.shares or slot.name] for slot in slots], total


@dataclass(frozen=True)
class Layout:
    """``trainable`` parameters (updated by the optimizer), ``fixed`` ones (batch norm's running
    averages) and the per-batch ``work`` buffers (node outputs, their gradients, dropout masks,
    the gradient of the input)."""

    trainable: tuple[Slot, ...]
    fixed: tuple[Slot, ...]
    work: tuple[Slot, ...]


def _slot(name: str, shape: tuple[int, ...]) -> Slot:
    if not shape:
        return Slot(name, 1, 0, scalar=True)
    return Slot(name, shape[0], shape[1]) if len(shape) == 2 else Slot(name, shape[0], 0)


def layout(arch: Architecture) -> Layout:
    specs = param_specs(arch)
    work: list[Slot] = []
    for k, node in enumerate(arch.nodes()):
        work += [Slot(f"h{k}", 0, node.width), Slot(f"gh{k}", 0, node.width)]
        if node.kind == "dropout":
            work.append(Slot(f"mask{k}", 0, node.width))
    work.append(Slot("g_input", 0, arch.inputs))
    return Layout(tuple(_slot(p.name, p.shape) for p in specs if p.trainable),
                  tuple(_slot(p.name, p.shape) for p in specs if not p.trainable), tuple(work))


def views(flat: np.ndarray, slots: tuple[Slot, ...], batch: int = 0) -> dict[str, np.ndarray]:
    """The named views into one flat buffer laid out by ``offsets``."""
    starts, _ = offsets(slots, batch, flat.itemsize)
    return {s.name: flat[o:o + s.count(batch)].reshape(s.shape(batch)) for s, o in zip(slots, starts)}


def allocate(slots: tuple[Slot, ...], dtype: type, batch: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    _, total = offsets(slots, batch, np.dtype(dtype).itemsize)
    flat = aligned_zeros(max(total, 1), dtype)
    return flat, views(flat, slots, batch)


def allocate_stacked(slots: tuple[Slot, ...], dtype: type, copies: int,
                     batch: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``copies`` flat buffers as the rows of one 2-D array (each row aligned: a buffer's size is a
    multiple of the alignment) and the named views into the first."""
    _, total = offsets(slots, batch, np.dtype(dtype).itemsize)
    stacked = aligned_zeros(copies * max(total, 1), dtype).reshape(copies, max(total, 1))
    return stacked, views(stacked[0], slots, batch)


def view_code(flat: str, slots: tuple[Slot, ...], prefix: str = "", batch: str = "_n") -> list[str]:
    """Generated lines binding each slot's view inside the fused step (no copies, no allocation),
    the same offsets as ``offsets``; those of batch-sized views depend on the batch, so the
    step computes them. The views are ``flat_view`` intrinsics (cheap to compile, no bounds
    check), so the lines end by checking that the last view ends within the buffer."""
    if not slots:
        return []
    lines = [f"_a = {ALIGN_BYTES} // {flat}.itemsize", "_o = 0"]
    for slot in (s for s in slots if not s.shares):
        count = slot.count_code(batch)
        lines.append(f"{prefix}{slot.name} = flat_view({flat}, _o, {slot.shape_code(batch)})")
        # rounded up to a multiple of _a, a power of two: a mask, where // lowered Python's floor
        # division (sign fix-ups) into every step (0.06–0.11 s of the MLP's cold entry)
        lines.append(f"_o += ({count} + _a - 1) & -_a")
    lines += [f"if _o > {flat}.shape[0]:",
              f"    raise ValueError('{flat}: the buffer is smaller than its layout (another batch size or model?)')"]
    lines += [f"{prefix}{slot.name} = {prefix}{slot.shares}  # the same memory" for slot in slots if slot.shares]
    return lines
