"""layergen's fused training step vs PyTorch eager on the same MLP, data and Adam.

Usage: python benchmarks/mlp_vs_torch.py [--repeats R] [--block SECONDS] [--warmup SECONDS] [--gap SECONDS]

MLP 64-128-128-10 (ReLU, softmax cross-entropy, Adam), batch 32, 128 and 1024, float32 and
float64. Both may use 2 threads (OpenBLAS for layergen's matrix products, torch's intra-op
pool for PyTorch). From batch 64 up layergen's step splits the batch into 2 shards, one per
thread, each with a single-threaded BLAS (runtime/sharded.py); the column "1 shard" times its
unsharded step (2-thread BLAS) side by side. Below 64 rows the unsharded step keeps its BLAS on
one thread (runtime/sharded_source.py, ``one_core_below``). Blocks of steps are interleaved
(layergen, 1 shard, torch, floor, ...) with a short idle gap between blocks so OpenBLAS's
spinning threads go to sleep; each block
lasts about the same time for every contender and starts with a short untimed warm-up (the
cores and thread pools wake from the gap), and each figure is the median over blocks. Also
printed: the time of the step's matrix products alone (the floor: the same 3 forward and 5
backward products on the step's minibatches, in one compiled call through the BLAS layergen uses,
sharded as the step is; unsharded, the faster of a 2-thread and a 1-thread BLAS) and layergen's ratio to it (the ratio of
the medians, with its 95 % bootstrap interval over the rounds: ``interleave.ratio_interval``); then
the floor of the step's own schedule and the ratio to that. The two differ only below 64 rows, where
the step runs its products on a one-thread BLAS (``own_floor``) and the two-thread BLAS sometimes runs
them alone faster. Last, the cold compile time of a step
and the warm start from Numba's cache (a fresh process). PyTorch is an optional opponent here, never a
dependency of layergen.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleave import interleaved_blocks, ratio_interval  # noqa: E402

SIZES = (64, 128, 128, 10)

DATA_SIZE = 16384


def layergen_network(dtype: type, shards: int = 2):  # type: ignore[no-untyped-def]
    from layergen.runtime.network import Architecture, Network

    return Network(Architecture(SIZES[0], SIZES[1:]), dtype, seed=0, optimizer_hypers={"lr": 1e-3}, shards=shards)


def minibatches(dtype: type, batch: int, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The data set cut into consecutive minibatches of this dtype, which every contender cycles through."""
    return [(x[i:i + batch].astype(dtype), y[i:i + batch].astype(dtype)) for i in range(0, len(x) - batch + 1, batch)]


def layergen_step(net, batches: list[tuple[np.ndarray, np.ndarray]]):  # type: ignore[no-untyped-def]
    cycle = itertools.cycle(batches)
    return lambda: net.step(*next(cycle))


def torch_step(dtype: type, batch: int, x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(2)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(tdtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = itertools.cycle([(torch.tensor(x[i:i + batch], dtype=tdtype), torch.tensor(y[i:i + batch].argmax(axis=1)))
                               for i in range(0, len(x) - batch + 1, batch)])

    def step() -> float:
        xb, yb = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


@dataclass
class Floors:
    """The timed calls of ``matmul_floors`` and the arrays they read and write (for the tests): with
    shards, each output has a leading shard axis and each shard reads its consecutive rows of the batch."""

    calls: dict[str, Callable[[], object]]
    weights: tuple[np.ndarray, ...]
    activations: tuple[np.ndarray, ...]
    weight_gradients: tuple[np.ndarray, ...]
    input_gradients: tuple[np.ndarray, ...]


def matmul_floors(dtype: type, batches: list[tuple[np.ndarray, np.ndarray]], shards: int) -> Floors:
    """The step's 3 forward and 5 backward matrix products alone, in one compiled call through
    the same BLAS call that layergen's kernels make (``matmul_into``: SciPy's OpenBLAS gemm), as timed
    calls: with ``shards`` > 1 each shard's products in its own thread with a single-threaded
    BLAS (the sharded step); else the whole batch both with the 2-thread and with a 1-thread BLAS
    (the serial step uses the latter below 64 rows), of which the caller takes the faster.

    Each call reads the next of the step's own minibatches, in place, as the step does: its first
    product reads a batch that the previous calls have not touched. (A floor that read one batch
    every call ran from cache: 50.4 against 52.2 µs at batch 32 in one interleaved run.) Its other
    arrays start on 64-byte boundaries, as the step's buffers do."""
    from numba import njit, prange

    from layergen.runtime.blas import blas_threads, set_blas_threads
    from layergen.runtime.gemm import matmul_into
    from layergen.runtime.layout import aligned_zeros

    @njit(cache=False)
    def products(x, acts, weights, grads_w, grads_a):  # type: ignore[no-untyped-def]
        matmul_into(x, weights[0], acts[0])
        for i in range(1, len(weights)):
            matmul_into(acts[i - 1], weights[i], acts[i])
        for i in range(len(weights) - 1, 0, -1):
            matmul_into(acts[i - 1].T, acts[i], grads_w[i])
            matmul_into(acts[i], weights[i].T, grads_a[i - 1])  # like the step, no gradient for the input data
        matmul_into(x.T, acts[0], grads_w[0])

    @njit(cache=False)
    def products_one_thread(x, acts, weights, grads_w, grads_a):  # type: ignore[no-untyped-def]
        threads = blas_threads()
        set_blas_threads(1)
        products(x, acts, weights, grads_w, grads_a)
        set_blas_threads(threads)

    @njit(cache=False, parallel=True)
    def sharded_products(x, a1, a2, a3, w0, w1, w2, gw0, gw1, gw2, ga1, ga2):  # type: ignore[no-untyped-def]
        # the MLP's 3 layers spelled out: Numba's parallel loops take arrays, not tuples of them
        threads = blas_threads()
        set_blas_threads(1)
        rows = x.shape[0] // a1.shape[0]
        for c in prange(a1.shape[0]):
            a0 = x[c * rows:(c + 1) * rows]  # the shard's rows of the batch, in place
            matmul_into(a0, w0, a1[c])
            matmul_into(a1[c], w1, a2[c])
            matmul_into(a2[c], w2, a3[c])
            matmul_into(a2[c].T, a3[c], gw2[c])
            matmul_into(a3[c], w2.T, ga2[c])
            matmul_into(a1[c].T, a2[c], gw1[c])
            matmul_into(a2[c], w1.T, ga1[c])
            matmul_into(a0.T, a1[c], gw0[c])
        set_blas_threads(threads)

    def zeros(*shape: int) -> np.ndarray:
        # 64-byte aligned, as the step's buffers are (runtime/layout.py): OpenBLAS runs slower on operands
        # that are not, by 2-5 µs of this floor's 56-62 µs at batch 32 in three processes
        return aligned_zeros(int(np.prod(shape)), dtype).reshape(shape)

    rng = np.random.default_rng(0)
    weights: tuple[np.ndarray, ...] = tuple(zeros(a, b) for a, b in zip(SIZES[:-1], SIZES[1:]))
    for weight in weights:
        weight[...] = rng.normal(size=weight.shape)
    batch = len(batches[0][0])
    cycle = itertools.cycle([xb for xb, _ in batches])
    if shards == 1:
        acts: tuple[np.ndarray, ...] = tuple(zeros(batch, b) for b in SIZES[1:])
        grads_w: tuple[np.ndarray, ...] = tuple(zeros(*w.shape) for w in weights)
        grads_a: tuple[np.ndarray, ...] = tuple(zeros(batch, a) for a in SIZES[1:-1])
        calls = {"floor": lambda: products(next(cycle), acts, weights, grads_w, grads_a),
                 "floor, 1-thread BLAS": lambda: products_one_thread(next(cycle), acts, weights, grads_w, grads_a)}
        return Floors(calls, weights, acts, grads_w, grads_a)
    rows = batch // shards
    acts = tuple(zeros(shards, rows, b) for b in SIZES[1:])
    grads_w = tuple(zeros(shards, *w.shape) for w in weights)
    grads_a = tuple(zeros(shards, rows, a) for a in SIZES[1:-1])
    return Floors({"floor": lambda: sharded_products(next(cycle), *acts, *weights, *grads_w, *grads_a)},
                  weights, acts, grads_w, grads_a)


def own_floor(batch: int, shards: int) -> str:
    """Which of ``matmul_floors``' timings runs the products the way layergen's step runs them: sharded
    where the step shards, else on the BLAS thread count the serial step sets (one thread below
    ``TWO_CORE_ROWS`` rows: ``sharded_source.one_core_below``)."""
    from layergen.runtime.sharded import TWO_CORE_ROWS

    return "floor, 1-thread BLAS" if shards == 1 and batch < TWO_CORE_ROWS else "floor"


def compile_times(dtype_name: str, batch: int) -> tuple[float, float]:
    """Cold compile (empty caches) and warm start (Numba's cache) of one step at this batch size
    (below 64 the serial step, from 64 the sharded one), fresh processes."""
    script = textwrap.dedent(f"""
        import time, numpy as np
        t = time.perf_counter()
        from layergen.runtime.network import Architecture, Network
        net = Network(Architecture(64, (128, 128, 10)), np.{dtype_name}, seed=0)
        x = np.zeros(({batch}, 64), np.{dtype_name}); y = np.eye(10, dtype=np.{dtype_name})[np.zeros({batch}, int)]
        net.step(x, y)
        print(time.perf_counter() - t)
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "LAYERGEN_CACHE_DIR": cache, "NUMBA_CACHE_DIR": os.path.join(cache, "numba")}
        cold, warm = (float(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                           check=True).stdout) for _ in range(2))
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--block", type=float, default=0.1, help="seconds per timed block")
    parser.add_argument("--warmup", type=float, default=0.02, help="untimed seconds before each block")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated: float32, float64")
    parser.add_argument("--batches", default="32,128,1024", help="comma-separated batch sizes")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    parser.add_argument("--gap", type=float, default=0.3, help="idle seconds between blocks")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Both step through the same minibatches of a data set with random labels, too large to be
    # memorised during the run: one repeated batch would drive the loss to 0 and the numbers into
    # the subnormal range, slowing whichever contender has taken more steps.
    x = rng.normal(size=(DATA_SIZE, SIZES[0]))
    y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], DATA_SIZE)]
    print(f"MLP {'-'.join(map(str, SIZES))}, ReLU, softmax cross-entropy, Adam; 2 threads each; "
          f"median of {args.repeats} interleaved blocks of ~{args.block} s")
    print(f"{'dtype':<8} {'batch':>5} {'shards':>6} {'layergen ms':>12} {'1 shard ms':>11} {'torch ms':>9} "
          f"{'speed-up':>9} {'matmul floor ms':>16} {'layergen/floor':>15} {'95 % interval':>14} "
          f"{'own floor ms':>13} {'layergen/own':>13} {'95 % interval':>14}")
    for dtype in (np.dtype(name).type for name in args.dtypes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            net, serial = layergen_network(dtype), layergen_network(dtype, shards=1)
            shards = net.shards if net.sharded(batch) else 1
            batches = minibatches(dtype, batch, x, y)
            contenders = {"layergen": layergen_step(net, batches), "serial": layergen_step(serial, batches),
                          "torch": torch_step(dtype, batch, x, y), **matmul_floors(dtype, batches, shards).calls}
            blocks = interleaved_blocks(contenders, args.repeats, args.block, args.warmup, args.gap)
            ms = {name: statistics.median(times) for name, times in blocks.items()}
            floor = min((name for name in ms if name.startswith("floor")), key=ms.__getitem__)
            own = own_floor(batch, shards)
            # how far each ratio of medians can be trusted on this VM: resampled over the rounds
            low, high = ratio_interval(blocks["layergen"], blocks[floor])
            own_low, own_high = ratio_interval(blocks["layergen"], blocks[own])
            print(f"{np.dtype(dtype).name:<8} {batch:>5} {shards:>6} {ms['layergen']:>12.3f} {ms['serial']:>11.3f} "
                  f"{ms['torch']:>9.3f} {ms['torch'] / ms['layergen']:>8.1f}x {ms[floor]:>16.3f} "
                  f"{ms['layergen'] / ms[floor]:>14.2f}x {low:>8.2f}–{high:<5.2f} "
                  f"{ms[own]:>13.3f} {ms['layergen'] / ms[own]:>12.2f}x {own_low:>8.2f}–{own_high:<5.2f}")
    for name in ([] if args.no_compile else args.dtypes.split(",")):
        for batch, kind in ((32, "serial"), (128, "sharded")):
            cold, warm = compile_times(name, batch)
            print(f"compile of one training step ({kind}, batch {batch}), {name}: cold {cold:.2f} s, "
                  f"warm start from Numba's cache {warm:.2f} s")


if __name__ == "__main__":
    main()
