"""The views a fused step binds into its flat buffers (runtime/flat_view.py, layout.view_code): the
same elements as NumPy's slice-and-reshape, writable through, alive as long as the view, and a
buffer too small for its layout is refused with the buffer's name; and the views a sharded step's task
entry binds from addresses (``address_view``), which hold the same elements as NumPy's views."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from layergen.runtime.flat_view import address_view, flat_view
from layergen.runtime.layout import Slot, offsets, view_code, views
from layergen.runtime.network import Architecture, Network
from layergen.runtime.threads import array_address


@njit(cache=False)
def _view_2d(flat, offset, rows, cols):  # type: ignore[no-untyped-def]
    return flat_view(flat, offset, (rows, cols))


@njit(cache=False)
def _view_3d(flat, offset, stack, rows, cols):  # type: ignore[no-untyped-def]
    return flat_view(flat, offset, (stack, rows, cols))


@njit(cache=False)
def _view_1d_filled(flat, offset, count, value):  # type: ignore[no-untyped-def]
    view = flat_view(flat, offset, (count,))
    view[:] = value
    return view


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(0, 40), rows=st.integers(1, 6), cols=st.integers(1, 6), stack=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_a_view_holds_the_elements_numpy_slicing_would(offset: int, rows: int, cols: int, stack: int,
                                                        dtype: type) -> None:
    flat = np.arange(offset + stack * rows * cols + 3, dtype=dtype)
    view = _view_2d(flat, offset, rows, cols)
    assert view.shape == (rows, cols) and view.dtype == flat.dtype and view.flags.c_contiguous
    np.testing.assert_array_equal(view, flat[offset:offset + rows * cols].reshape(rows, cols))
    stacked = _view_3d(flat, offset, stack, rows, cols)
    np.testing.assert_array_equal(stacked, flat[offset:offset + stack * rows * cols].reshape(stack, rows, cols))


@njit(cache=False)
def _scalar_view_incremented(flat, offset):  # type: ignore[no-untyped-def]
    view = flat_view(flat, offset, ())
    view[()] += 1.0
    return view


def test_an_empty_shape_views_one_element_as_a_0d_array() -> None:
    """A layer's parameter of shape () (``Slot(scalar=True)``): the kernels read it as ``c[()]``."""
    flat = np.arange(6.0)
    view = _scalar_view_incremented(flat, 4)
    assert view.shape == () and view.ndim == 0 and float(view) == 5.0
    np.testing.assert_array_equal(flat, [0, 1, 2, 3, 5, 5])


def test_writes_through_a_view_land_in_the_buffer_and_the_view_keeps_it_alive() -> None:
    flat = np.zeros(20)
    view = _view_1d_filled(flat, 5, 4, 7.0)
    np.testing.assert_array_equal(flat, [0] * 5 + [7] * 4 + [0] * 11)
    del flat
    gc.collect()
    view[...] = 1.0  # the buffer's memory is still owned through the view's reference to it
    assert view.sum() == 4.0


def test_the_generated_views_match_the_python_views_of_the_same_layout() -> None:
    slots = (Slot("W", 3, 4), Slot("b", 1, 4), Slot("h", 0, 5), Slot("v", 7, 0), Slot("s", 2, 3, stack=2),
             Slot("c", 1, 0, scalar=True), Slot("a", 3, 0))  # c: a layer's parameter of shape ()
    batch = 6
    _, total = offsets(slots, batch, 8)
    flat = np.random.default_rng(0).normal(size=total)
    source = "def bind(flat, _n):\n" + "".join(f"    {line}\n" for line in view_code("flat", slots)) \
        + f"    return {', '.join(s.name for s in slots)}\n"
    namespace: dict[str, object] = {"flat_view": flat_view}
    exec(source, namespace)  # the test's own small function, compiled once here
    bound = njit(cache=False)(namespace["bind"])(flat, batch)
    expected = views(flat, slots, batch)
    for slot, got in zip(slots, bound):
        np.testing.assert_array_equal(got, expected[slot.name])
    with pytest.raises(ValueError, match="flat: the buffer is smaller than its layout"):
        njit(cache=False)(namespace["bind"])(flat[:-1].copy(), batch)


def test_a_work_buffer_of_another_batch_size_is_refused() -> None:
    net = Network(Architecture(4, (6, 3)), np.float64, seed=0)
    x, y = np.ones((8, 4)), np.eye(3)[np.zeros(8, int)]
    with pytest.raises(ValueError, match="work: the buffer is smaller than its layout"):
        net.module.train_step(x, y, net.theta, net.fixed, net.grad, *net._states, net._work_for(4),
                              *net._hyper_values)


@njit(cache=False)
def _address_views(flat, offset, rows, cols):  # type: ignore[no-untyped-def]
    address = array_address(flat)
    matrix = address_view(address, offset, (rows, cols), flat.dtype)
    row = address_view(address, offset + cols, (cols,), np.float64)  # a dtype as a class, too
    return matrix, row


@settings(max_examples=30, deadline=None)
@given(offset=st.integers(0, 30), rows=st.integers(1, 5), cols=st.integers(1, 5))
def test_an_address_view_holds_the_elements_numpy_would_and_writes_through(offset: int, rows: int,
                                                                           cols: int) -> None:
    flat = np.arange(offset + (rows + 1) * cols + 2, dtype=np.float64)
    matrix, row = _address_views(flat, offset, rows, cols)
    assert matrix.shape == (rows, cols) and matrix.dtype == flat.dtype and matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix, flat[offset:offset + rows * cols].reshape(rows, cols))
    np.testing.assert_array_equal(row, flat[offset + cols:offset + 2 * cols])
    matrix[-1, -1] = -1.0
    assert flat[offset + rows * cols - 1] == -1.0


def test_an_address_view_of_a_float32_buffer_reads_float32_elements() -> None:
    flat = np.arange(12, dtype=np.float32)
    matrix, _ = _address_views(flat, 2, 2, 3)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, [[2, 3, 4], [5, 6, 7]])


@pytest.mark.parametrize("arguments", [(1.5, 0, (2,), np.float64), (0, 0, (2.0,), np.float64), (0, 0, (2,), "f8")])
def test_an_address_view_with_arguments_of_the_wrong_kind_does_not_compile(arguments: tuple) -> None:
    @njit(cache=False)
    def view(address, offset, shape, dtype):  # type: ignore[no-untyped-def]
        return address_view(address, offset, shape, dtype)

    with pytest.raises(TypingError, match="address_view"):
        view(*arguments)
