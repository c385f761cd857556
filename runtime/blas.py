"""The thread count of the BLAS behind the kernels' matrix products, readable and settable from ``@njit`` code.

Why: a sharded training step (``layergen.runtime.sharded``) runs one batch shard per Numba thread,
each shard's matrix products in its own thread. A multithreaded BLAS inside those threads would
fight Numba's pool for the cores, so the step sets the BLAS to one thread for its duration and
restores the previous count before it returns. It does so from compiled code, through two
external symbols registered with LLVM at import (``layergen_blas_get_threads``,
``layergen_blas_set_threads``): a ctypes function pointer baked into a function would stop
Numba from caching it, a named external symbol does not (it is resolved when the cache is loaded,
the way ``layergen.runtime.gemm`` reaches BLAS's gemm).

The kernels' ``matmul_into`` (``layergen.runtime.gemm``), like Numba's ``np.dot``, calls the BLAS that
SciPy links (``scipy.linalg.cython_blas``). When that is
OpenBLAS, its ``openblas_set_num_threads`` / ``openblas_get_num_threads`` (with SciPy's
``scipy_`` prefix or without) are the targets. With any other BLAS both symbols are no-ops and
``CONTROLLABLE`` is False; the runtime then never shards (a BLAS whose threads it cannot
control would oversubscribe the cores)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

import llvmlite.binding as llvm
from numba import types

_GET, _SET = "layergen_blas_get_threads", "layergen_blas_set_threads"
_GET_TYPE = ctypes.CFUNCTYPE(ctypes.c_int)
_SET_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)


def _openblas_of_scipy() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:
    """The get/set thread-count functions of the OpenBLAS that SciPy's ``cython_blas`` loaded, if any."""
    from threadpoolctl import threadpool_info

    from layergen.runtime.scipy_blas import cython_blas

    cython_blas()  # loads SciPy's BLAS into the process

    scipy_dir = os.path.dirname(os.path.dirname(os.path.abspath(__import__("scipy").__file__)))
    for info in threadpool_info():
        path = info["filepath"]
        in_scipy = os.path.basename(os.path.dirname(path)) in ("scipy.libs", ".libs") and path.startswith(scipy_dir)
        if info["internal_api"] != "openblas" or not in_scipy:
            continue
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            if hasattr(lib, f"{prefix}_set_num_threads") and hasattr(lib, f"{prefix}_get_num_threads"):
                return getattr(lib, f"{prefix}_get_num_threads"), getattr(lib, f"{prefix}_set_num_threads")
    return None


def _no_threads() -> int:
    return 1


def _ignore(_count: int) -> None:
    return None


_found = _openblas_of_scipy()
CONTROLLABLE: bool = _found is not None
# kept referenced for the life of the process: LLVM holds only their addresses
_targets = _found if _found is not None else (_GET_TYPE(_no_threads), _SET_TYPE(_ignore))
llvm.add_symbol(_GET, ctypes.cast(_targets[0], ctypes.c_void_p).value)
llvm.add_symbol(_SET, ctypes.cast(_targets[1], ctypes.c_void_p).value)

#: ``blas_threads()`` in ``@njit`` code: the BLAS's current thread count
blas_threads = types.ExternalFunction(_GET, types.intc())
#: ``set_blas_threads(k)`` in ``@njit`` code
set_blas_threads = types.ExternalFunction(_SET, types.void(types.intc))


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """The BLAS on one thread for the block, then back to its previous count: how a sharded model
    runs its evaluation calls (log-densities, predictions, sampling), so that no BLAS thread wakes up
    and spins beside the Numba threads of its training steps."""
    before = _targets[0]()
    _targets[1](1)
    try:
        yield
    finally:
        _targets[1](before)
