"""Column bookkeeping of coupling and MAF blocks: copies, transposes and the fan-out sum of the identity path.
No math to derive here: which columns a coupling keeps, and ∂L/∂u = ∂L/∂u' + conditioner's
contribution where u feeds both the unchanged output columns and the conditioner; and the batch-norm
flow's running moments (statistics, not derivatives)."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def copy_all(src, dst):  # type: ignore[no-untyped-def]
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def copy_columns(src, start, dst):  # type: ignore[no-untyped-def]
    """dst ← src[:, start::2] (dst contiguous, for BLAS)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, start + 2 * j]


@njit(cache=True)
def add_columns(upstream, local, start, out):  # type: ignore[no-untyped-def]
    """out[:, start::2] ← upstream[:, start::2] + local: the two paths out of the kept columns."""
    for i in range(local.shape[0]):
        for j in range(local.shape[1]):
            out[i, start + 2 * j] = upstream[i, start + 2 * j] + local[i, j]


@njit(cache=True)
def add_into(local, out):  # type: ignore[no-untyped-def]
    """out ← out + local: ∂L/∂u of a MAF block sums the transformer's direct path and the MADE's."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += local[i, j]


@njit(cache=True)
def transpose_into(src, dst):  # type: ignore[no-untyped-def]
    """dst ← srcᵀ (the incremental MAF inverse works feature-major, rows contiguous for BLAS)."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[j, i] = src[i, j]


@njit(cache=True)
def masked_transpose(weight, mask, dst):  # type: ignore[no-untyped-def]
    """dst ← (W ⊙ M)ᵀ: the masked layer's effective weight, feature-major for the inverse (the
    same product the generated masked_dense kernels form in their scratch)."""
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            dst[j, i] = weight[i, j] * mask[i, j]


@njit(cache=True)
def add_row_bias(rows, bias, start):  # type: ignore[no-untyped-def]
    """rows[r, :] += bias[0, start + r]: a dense layer's bias in the feature-major layout."""
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] += bias[0, start + r]


@njit(cache=True)
def fill_zero(array):  # type: ignore[no-untyped-def]
    for i in range(array.shape[0]):
        for j in range(array.shape[1]):
            array[i, j] = 0.0


@njit(cache=True)
def update_running_moments(x, mean, var, rate):  # type: ignore[no-untyped-def]
    """mean ← (1 − ρ) mean + ρ μ̃, var ← (1 − ρ) var + ρ σ̃²: running averages of each column's batch
    mean and (biased) variance, which the evaluation-mode batch-norm flow uses (000 eq. 75). A
    statistic, not a derivative: nothing here enters a gradient."""
    n = x.shape[0]
    for j in range(x.shape[1]):
        mu = 0.0
        for i in range(n):
            mu += x[i, j]
        mu /= n
        sq = 0.0
        for i in range(n):
            sq += (x[i, j] - mu) * (x[i, j] - mu)
        mean[j] = (1.0 - rate) * mean[j] + rate * mu
        var[j] = (1.0 - rate) * var[j] + rate * (sq / n)


@njit(cache=True)
def column_into(src, dst, c):  # type: ignore[no-untyped-def]
    """dst[:, c] ← src[:, 0]: a per-sample value (a map that writes it into every column of its row)
    becomes column c of a table with one column per mixture component."""
    for i in range(src.shape[0]):
        dst[i, c] = src[i, 0]


@njit(cache=True)
def spread_column(src, c, dst):  # type: ignore[no-untyped-def]
    """dst[:, 0] ← src[:, c], the rest 0: the upstream gradient of a per-sample value whose map's VJP
    sums its row (any split of the row sum is the same gradient)."""
    for i in range(dst.shape[0]):
        dst[i, 0] = src[i, c]
        for j in range(1, dst.shape[1]):
            dst[i, j] = 0.0
