"""The supervised benchmark's matmul floor (``benchmarks/mlp_vs_torch.py``) runs exactly the step's 8
products, on the step's own minibatches in turn: a floor that skipped a product or read other data
would misstate the layergen/floor ratio. No timing here."""

from __future__ import annotations

import os
import sys
from unittest import mock

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
with mock.patch.dict(os.environ):  # the script sets OPENBLAS_NUM_THREADS for its own runs only
    import mlp_vs_torch as bench  # noqa: E402


def expected_products(x: np.ndarray, weights: tuple[np.ndarray, ...]) -> dict[str, list[np.ndarray]]:
    """The MLP step's products with the ReLU and the loss left out, as the floor runs them: 3 forward,
    3 weight gradients, and the input gradients of the two upper layers (none for the data)."""
    acts = [x @ weights[0]]
    for w in weights[1:]:
        acts.append(acts[-1] @ w)
    inputs = [x, *acts[:-1]]
    return {"activations": acts,
            "weight_gradients": [a.T @ b for a, b in zip(inputs, acts, strict=True)],
            "input_gradients": [acts[i] @ weights[i].T for i in (1, 2)]}


@pytest.mark.parametrize("shards", [1, 2])
def test_the_floor_runs_the_steps_products_on_its_minibatches_in_turn(shards: int) -> None:
    rng = np.random.default_rng(3)
    batch = 8
    x = rng.normal(size=(3 * batch, bench.SIZES[0]))
    y = np.eye(bench.SIZES[-1])[rng.integers(0, bench.SIZES[-1], 3 * batch)]
    batches = bench.minibatches(np.float64, batch, x, y)
    assert [len(b) for b, _ in batches] == [batch] * 3
    floors = bench.matmul_floors(np.float64, batches, shards)
    assert set(floors.calls) == ({"floor", "floor, 1-thread BLAS"} if shards == 1 else {"floor"})
    for turn, name in enumerate(sorted(floors.calls) * 2):  # each call takes the next minibatch
        floors.calls[name]()
        xb = batches[turn % len(batches)][0]
        rows = batch // shards
        for shard in range(shards):
            expected = expected_products(xb[shard * rows:(shard + 1) * rows], floors.weights)
            for field, arrays in expected.items():
                for got, want in zip(getattr(floors, field), arrays, strict=True):
                    np.testing.assert_allclose(got if shards == 1 else got[shard], want, rtol=1e-12, atol=1e-9,
                                               err_msg=f"{name}, turn {turn}, shard {shard}: {field}")


def test_the_own_floor_is_the_one_thread_floor_only_below_two_core_rows() -> None:
    from layergen.runtime.sharded import TWO_CORE_ROWS

    assert bench.own_floor(TWO_CORE_ROWS - 1, 1) == "floor, 1-thread BLAS"
    assert bench.own_floor(TWO_CORE_ROWS, 1) == "floor"  # a step that does not shard keeps both BLAS threads
    assert bench.own_floor(TWO_CORE_ROWS, 2) == "floor"


@pytest.mark.parametrize("batch, shards", [(32, 1), (128, 2), (1024, 2)])
def test_the_floors_arrays_are_aligned_as_the_steps_buffers_are(batch: int, shards: int) -> None:
    """OpenBLAS runs slower on operands that do not start on a 64-byte boundary; the step's buffers do
    (``layout.ALIGN_BYTES``), so the floor's arrays, and each shard's part of them, must too."""
    from layergen.runtime.layout import ALIGN_BYTES

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, bench.SIZES[0]))
    y = np.eye(bench.SIZES[-1])[rng.integers(0, bench.SIZES[-1], batch)]
    floors = bench.matmul_floors(np.float32, bench.minibatches(np.float32, batch, x, y), shards)
    stacked = [*floors.activations, *floors.weight_gradients, *floors.input_gradients]  # per shard with shards
    parts = [*floors.weights, *(a if shards == 1 else a[shard] for a in stacked for shard in range(shards))]
    assert all(part.ctypes.data % ALIGN_BYTES == 0 for part in parts)
