"""``matmul_into`` (``layergen.runtime.gemm``), the BLAS gemm call behind every generated matrix product:
the product of every layout pair into either output layout, in both dtypes, against NumPy in float64;
empty sizes; the fallback for strided operands; the error for misaligned shapes; how SciPy's BLAS
module is loaded (``runtime/scipy_blas.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import NumbaPerformanceWarning

from layergen.runtime.gemm import matmul_into


@njit(cache=False)
def product_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    matmul_into(a, b, out)


def laid_out(array: np.ndarray, layout: str) -> np.ndarray:
    """The same matrix, C- or Fortran-contiguous (a transposed C array, as kernels pass ``X.T``)."""
    return np.ascontiguousarray(array) if layout == "C" else np.ascontiguousarray(array.T).T


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), n=st.integers(0, 9),
       layouts=st.tuples(*[st.sampled_from("CF")] * 3), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_the_product_matches_numpy_for_every_layout_and_size(m: int, k: int, n: int, layouts: tuple[str, ...],
                                                             dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = laid_out(rng.normal(size=(m, k)).astype(dtype), layouts[0])
    b = laid_out(rng.normal(size=(k, n)).astype(dtype), layouts[1])
    out = laid_out(np.full((m, n), np.nan, dtype), layouts[2])  # every entry must be written
    product_into(a, b, out)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, want, rtol=tolerance, atol=tolerance * max(k, 1))
    assert out.dtype == dtype


def test_the_transposed_operands_of_a_dense_layers_vjp() -> None:
    rng = np.random.default_rng(0)
    x, grad = rng.normal(size=(32, 64)), rng.normal(size=(32, 128))
    grad_w = np.empty((64, 128))
    product_into(x.T, grad, grad_w)
    np.testing.assert_allclose(grad_w, x.T @ grad, rtol=1e-13)


def test_a_strided_operand_falls_back_to_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 5))[::2]  # every other row: neither C- nor Fortran-contiguous
    b = rng.normal(size=(5, 3))
    out = np.empty((4, 3))

    @njit(cache=False)
    def strided_product_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # compiled here, once
        matmul_into(a, b, out)

    # the fallback is NumPy's own np.dot, which Numba compiles with its warning about a strided operand
    with pytest.warns(NumbaPerformanceWarning, match="contiguous"):
        strided_product_into(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-13)


@pytest.mark.parametrize("shapes", [((2, 3), (4, 5), (2, 5)), ((2, 3), (3, 5), (2, 4)), ((2, 3), (3, 5), (3, 5))])
def test_misaligned_shapes_raise(shapes: tuple[tuple[int, int], ...]) -> None:
    a, b, out = (np.ones(shape) for shape in shapes)
    with pytest.raises(ValueError, match="shapes do not align"):
        product_into(a, b, out)


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_scipy_blas_is_loaded_without_the_rest_of_scipy_linalg_and_stays_importable() -> None:
    """``runtime/scipy_blas.py`` loads only the extension (0.22 s less of every start); a later import of
    ``scipy.linalg`` must find that module, by each spelling, and work."""
    out = _run("""
        import sys
        import layergen.runtime.gemm
        print('scipy.linalg' in sys.modules)
        import numpy as np, scipy.linalg
        from scipy.linalg import cython_blas
        import scipy.linalg.cython_blas as blas
        print(blas is cython_blas is sys.modules['scipy.linalg.cython_blas'], 'sgemm' in blas.__pyx_capi__)
        print(scipy.linalg.solve(2 * np.eye(2), np.ones(2)).tolist())
    """)
    assert out.splitlines() == ["False", "True True", "[0.5, 0.5]"]


def test_scipy_blas_imported_first_is_used_as_it_is() -> None:
    out = _run("""
        import scipy.linalg, sys
        from layergen.runtime.scipy_blas import cython_blas
        print(cython_blas() is scipy.linalg.cython_blas is sys.modules['scipy.linalg.cython_blas'])
    """)
    assert out == "True"
