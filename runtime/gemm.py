"""``matmul_into(a, b, out)`` in ``@njit`` code: ``out ← a·b`` by one BLAS ``gemm`` call, the matrix
product of every generated kernel and fused step.

It computes what ``np.dot(a, b, out)`` computes, through the same BLAS (the ``sgemm``/``dgemm`` of
SciPy's ``cython_blas``, OpenBLAS in SciPy's wheels), for 2-D float32 or float64 arrays that are each
C- or Fortran-contiguous (a transposed C array is Fortran-contiguous, so ``x.T`` needs no copy).
Any other operand (a strided slice, mixed dtypes) falls back to ``np.dot`` itself.

Why not ``np.dot``: Numba types and lowers ``np.dot(a, b, out)`` through its general implementation
(shape checks compiled as a function of their own for each layout combination, a copy for
non-contiguous operands, a BLAS lookup by kind), and a fused training step calls it 8 to dozens of
times. Here a product is a shape check and one call. Measured on this project's 2-core VM (fresh
processes, float32): the sharded MLP step, from ``import`` to the end of its first step, started cold in
3.70–3.93 s against 4.49–5.11 s with ``np.dot``; in a first prototype the dense layer's ``forward``
compiled in 0.60–0.64 s against 0.69–0.90 s and its ``vjp`` in 0.34–0.37 s against 0.46–0.55 s.

The ``gemm`` is reached through a named external symbol registered with LLVM at import
(``layergen_sgemm``, ``layergen_dgemm``), like ``layergen.runtime.blas``'s thread controls: a
function address baked into the code would stop Numba from caching it; a symbol is resolved
again when the cache is loaded.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: the BLAS routine behind each dtype's product, and the symbol it is registered under
_ROUTINES = {types.float32: ("sgemm", "layergen_sgemm"), types.float64: ("dgemm", "layergen_dgemm")}
#: BLAS takes its sizes as 32-bit Fortran integers
_INT_MAX = 2**31 - 1


def _capsule_address(capsule: object) -> int:
    """The function address a Cython ``__pyx_capi__`` capsule holds."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    if not address:
        raise RuntimeError("scipy.linalg.cython_blas: a gemm capsule holds no function address")
    return int(address)


def _register_gemm() -> None:
    from layergen.runtime.scipy_blas import cython_blas

    capsules = cython_blas().__pyx_capi__
    for routine, symbol in _ROUTINES.values():
        llvm.add_symbol(symbol, _capsule_address(capsules[routine]))


_register_gemm()


def _contiguous_2d(array: types.Type) -> bool:
    return isinstance(array, types.Array) and array.ndim == 2 and array.layout in ("C", "F")


def _by_numpy(a, b, out):  # type: ignore[no-untyped-def]
    np.dot(a, b, out)


@intrinsic
def matmul_into(typingctx, a, b, out):  # type: ignore[no-untyped-def]
    """out ← a·b, like ``np.dot(a, b, out)``; ``ValueError`` if the shapes do not align."""
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, out)):
        return None
    if not (all(_contiguous_2d(t) for t in (a, b, out)) and a.dtype == b.dtype == out.dtype in _ROUTINES):
        def fallback(context, builder, signature, args):  # type: ignore[no-untyped-def]
            context.compile_internal(builder, _by_numpy, signature, args)
            return context.get_dummy_value()
        return types.void(a, b, out), fallback

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a_type, b_type, out_type = signature.args
        intp, int32, char = context.get_value_type(types.intp), ir.IntType(32), ir.IntType(8)
        scalar = context.get_value_type(out_type.dtype)
        pointer = ir.IntType(8).as_pointer()
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args, args)]
        (m, k), (k_b, n), (m_out, n_out) = (cgutils.unpack_tuple(builder, array.shape, 2) for array in arrays)
        misaligned = builder.or_(builder.icmp_signed("!=", k, k_b), builder.or_(
            builder.icmp_signed("!=", m, m_out), builder.icmp_signed("!=", n, n_out)))
        with cgutils.if_unlikely(builder, misaligned):
            context.call_conv.return_user_exc(builder, ValueError, (
                "matmul_into: shapes do not align (a m×k, b k×n, out m×n)",))
        limit = ir.Constant(intp, _INT_MAX)
        too_large = builder.or_(builder.icmp_signed(">", m, limit), builder.or_(
            builder.icmp_signed(">", n, limit), builder.icmp_signed(">", k, limit)))
        with cgutils.if_unlikely(builder, too_large):
            context.call_conv.return_user_exc(builder, ValueError, (
                "matmul_into: a size exceeds BLAS's 32-bit integers",))

        def slot(value: ir.Value) -> ir.Value:
            # in the entry block, so that a product inside a loop does not grow the stack
            address = cgutils.alloca_once(builder, value.type)
            builder.store(value, address)
            return builder.bitcast(address, pointer)

        def size(value: ir.Value) -> ir.Value:
            return slot(builder.trunc(value, int32))

        def operand(array_type: types.Array, array: cgutils.Structure) -> tuple[ir.Value, ir.Value, ir.Value]:
            """(transpose flag, leading dimension, data) of an operand as BLAS's column-major order sees
            it, relative to the output's layout; BLAS wants a leading dimension of at least 1, even for
            an empty operand."""
            rows, columns = cgutils.unpack_tuple(builder, array.shape, 2)
            leading = columns if array_type.layout == "C" else rows
            leading = builder.select(builder.icmp_signed("<", leading, ir.Constant(intp, 1)), ir.Constant(intp, 1),
                                     leading)
            flag = ord("N") if array_type.layout == out_type.layout else ord("T")
            return slot(ir.Constant(char, flag)), size(leading), builder.bitcast(array.data, pointer)

        a_flag, a_leading, a_data = operand(a_type, arrays[0])
        b_flag, b_leading, b_data = operand(b_type, arrays[1])
        _, c_leading, c_data = operand(out_type, arrays[2])
        one, zero = slot(ir.Constant(scalar, 1.0)), slot(ir.Constant(scalar, 0.0))
        if out_type.layout == "F":  # column-major as BLAS: C = A·B
            call = (a_flag, b_flag, size(m), size(n), size(k), one, a_data, a_leading, b_data, b_leading)
        else:  # row-major: Cᵀ = Bᵀ·Aᵀ, each operand's memory read column-major is its transpose
            call = (b_flag, a_flag, size(n), size(m), size(k), one, b_data, b_leading, a_data, a_leading)
        gemm_type = ir.FunctionType(ir.VoidType(), [pointer] * 13)
        gemm = cgutils.get_or_insert_function(builder.module, gemm_type, _ROUTINES[out_type.dtype][1])
        builder.call(gemm, (*call, zero, c_data, c_leading))
        return context.get_dummy_value()

    return types.void(a, b, out), codegen
