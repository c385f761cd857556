"""Masked autoregressive flow (MAF, 000 eq. 84-85) with MADE conditioners: degrees, masks, layout.

Block k maps u_k (data side) to u_{k+1} (latent side) with the generated ``real_nvp_coupling``
transformer, y_i = x_i · e^{s_i} + t_i, whose log-scale ŝ_i and shift t_i come from a MADE of x
(masked dense layers, the generated ``masked_dense`` kernels), so they depend on x_{<i} only in
the block's order. The Jacobian is triangular in that order and log|det J| = Σ_i s_i (eq. 82).
Even blocks use the identity order, odd blocks the reversed one: the reversal permutation
between blocks (log|det| = 0) is folded into the masks, so no column is moved.

Degrees (Germain et al., MADE): input column i has degree m(i) ∈ {1..D}, its position in the
block's order; hidden unit h of every layer has degree 1 + ⌊h(D−1)/H⌋ (so the units of degree m
are the contiguous block [⌈(m−1)H/(D−1)⌉, ⌈mH/(D−1)⌉), sorted by degree, which the incremental
inverse relies on); a hidden unit sees the units of the layer below with degree ≤ its own, an
output of degree m sees the hidden units of degree < m.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.layout import Slot


def input_degrees(dim: int, block: int) -> np.ndarray:
    """m(i) of each column: 1..D in the identity order (even blocks), D..1 reversed (odd blocks)."""
    degrees = np.arange(1, dim + 1)
    return degrees if block % 2 == 0 else degrees[::-1].copy()


def hidden_degrees(dim: int, hidden: int) -> np.ndarray:
    """1 + ⌊h(D−1)/H⌋: every degree 1..D−1 present (H ≥ D−1), in ascending contiguous blocks."""
    return 1 + (np.arange(hidden) * (dim - 1)) // hidden


def degree_block(degree: int, dim: int, hidden: int) -> tuple[int, int]:
    """[lo, hi): the hidden units of this degree."""
    return -(-(degree - 1) * hidden // (dim - 1)), -(-degree * hidden // (dim - 1))


def made_masks(dim: int, hidden: int, depth: int, block: int) -> list[np.ndarray]:
    """The 0/1 masks of a MADE's layers: depth hidden layers, then the head of 2D outputs (ŝ, t)."""
    m_in, m_hidden = input_degrees(dim, block), hidden_degrees(dim, hidden)
    masks = [(m_hidden[None, :] >= m_in[:, None]).astype(float)]
    masks += [(m_hidden[None, :] >= m_hidden[:, None]).astype(float) for _ in range(depth - 1)]
    m_out = np.concatenate([m_in, m_in])
    masks.append((m_out[None, :] > m_hidden[:, None]).astype(float))
    return masks


def check_autoregressive(masks: list[np.ndarray], order: np.ndarray, where: str) -> None:
    """Raise unless output i of the composed masks depends on inputs strictly earlier in ``order``
    (connectivity = the product of the masks; 000 eq. 84 needs a triangular Jacobian)."""
    reach = masks[0]
    for mask in masks[1:]:
        reach = (reach @ mask > 0).astype(float)
    dim = len(order)
    for column in range(reach.shape[1]):
        i = column % dim
        bad = [j for j in range(dim) if reach[j, column] and order[j] >= order[i]]
        if bad:
            raise LayergenError(f"{where}: output {column} (column {i}, position {order[i]} in the order) depends on "
                                f"input columns {bad}, which are not earlier; a MADE mask must keep the "
                                f"autoregressive order (each output sees only inputs before it)")


def maf_layout(dim: int, blocks: int, hidden: int, depth: int, count: Callable[[int], int]) -> tuple[list[Slot], list[Slot], list[Slot]]:
    """(params, masks, work) of the MADE blocks, stacked by the parity of the block like the
    couplings of Real NVP (``W{p}_{l}[j]`` belongs to block 2j + p)."""
    params: list[Slot] = []
    masks: list[Slot] = []
    work: list[Slot] = []
    widths = [dim] + [hidden] * depth
    for p in (0, 1):
        n = count(p)
        if n == 0:
            continue
        for layer in range(depth):
            params += [Slot(f"W{p}_{layer}", widths[layer], hidden, n), Slot(f"b{p}_{layer}", 1, hidden, n)]
            masks.append(Slot(f"mask{p}_{layer}", widths[layer], hidden))
            work += [Slot(f"{name}{p}_{layer}", 0, hidden, n) for name in ("a", "z")]
            # the gradients: one buffer per parity (``flow_architecture.BACKWARD_SCRATCH``)
            work += [Slot(f"{name}{p}_{layer}", 0, hidden) for name in ("ga", "gz")]
        params += [Slot(f"Wh{p}", hidden, 2 * dim, n), Slot(f"bh{p}", 1, 2 * dim, n)]
        masks.append(Slot(f"maskh{p}", hidden, 2 * dim))
        work += [Slot(f"gc{p}", 0, dim), Slot(f"o{p}", 0, 2 * dim, n), Slot(f"go{p}", 0, 2 * dim)]
    # scratch of the masked_dense kernels (W ⊙ M and its transpose), shared by all blocks
    work += [Slot(f"sf{layer}", widths[layer], hidden) for layer in range(depth)] + [Slot("sfh", hidden, 2 * dim)]
    work += [Slot(f"sb{layer}", hidden, widths[layer]) for layer in range(depth)] + [Slot("sbh", 2 * dim, hidden)]
    # the incremental inverse works on transposed (feature-major) copies so that the rows of one
    # degree are contiguous for BLAS: (W ⊙ M)ᵀ per layer, and activations of shape (units, n)
    work += [Slot("yT", 0, 0, dim), Slot("xT", 0, 0, dim), Slot("oT", 0, 0, 2 * dim), Slot("ldT", 1, 0)]
    work += [Slot(f"wt{layer}", hidden, widths[layer]) for layer in range(depth)] + [Slot("wth", 2 * dim, hidden)]
    work += [Slot(f"{name}T{layer}", 0, 0, hidden) for layer in range(depth) for name in ("a", "z")]
    return params, masks, work


def fill_masks(fixed: dict[str, np.ndarray], dim: int, hidden: int, depth: int, parities: list[int]) -> None:
    """Write each parity's MADE masks into its views of the constant buffer, checked autoregressive."""
    for p in parities:
        masks = made_masks(dim, hidden, depth, p)
        check_autoregressive(masks, input_degrees(dim, p), f"MAF block parity {p}")
        for layer in range(depth):
            fixed[f"mask{p}_{layer}"][...] = masks[layer]
        fixed[f"maskh{p}"][...] = masks[-1]
