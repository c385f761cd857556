"""``flat_view(flat, offset, shape)`` in ``@njit`` code: the C-contiguous view of ``shape`` that starts
``offset`` elements into the 1-D, C-contiguous ``flat``. It shares ``flat``'s memory (and keeps it
alive) exactly like ``flat[offset:offset + size].reshape(shape)``, without the slice's index
normalisation or the reshape's size check.

Why: a fused step binds every parameter, gradient and activation as a view into a few flat
buffers (``layout.view_code``), about 23 views for a three-layer MLP and hundreds for a flow.
Typed and lowered by Numba, each slice-and-reshape costs about 35 ms of compilation (23 of them:
0.94 s, against 0.18 s for one, measured on this project's 2-core VM): about 1 s of the MLP's
4.2–5.8 s cold start of a sharded step. Here the view is a handful of LLVM instructions. The
generated code checks once per buffer that the views end within it (``layout.view_code``), since
nothing here checks bounds.

``address_view(address, offset, shape, dtype)`` is the same for memory known by its address, as a sharded
step's task entries know their arrays (``sharded_source``).
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def flat_view(typingctx, flat, offset, shape):  # type: ignore[no-untyped-def]
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    if not isinstance(offset, types.Integer):
        return None
    if not (isinstance(shape, types.BaseTuple) and all(isinstance(size, types.Integer) for size in shape.types)):
        return None  # () is a 0-d view of one element (a layer's scalar parameter)
    result = flat.copy(ndim=len(shape), layout="C")

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        flat_type, offset_type, shape_type = signature.args
        source = make_array(flat_type)(context, builder, args[0])
        view = make_array(signature.return_type)(context, builder)
        sizes = [context.cast(builder, builder.extract_value(args[2], i), size_type, types.intp)
                 for i, size_type in enumerate(shape_type.types)]
        strides, stride = [], source.itemsize
        for size in reversed(sizes):  # C order: the last axis is contiguous
            strides.insert(0, stride)
            stride = builder.mul(stride, size)
        start = context.cast(builder, args[1], offset_type, types.intp)
        intp = context.get_value_type(types.intp)
        populate_array(view, data=builder.gep(source.data, [start]), shape=cgutils.pack_array(builder, sizes, intp),
                       strides=cgutils.pack_array(builder, strides, intp), itemsize=source.itemsize,
                       meminfo=source.meminfo, parent=source.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, view._getvalue())

    return result(flat, offset, shape), codegen


@intrinsic
def address_view(typingctx, address, offset, shape, dtype):  # type: ignore[no-untyped-def]
    """``address_view(address, offset, shape, dtype)`` in ``@njit`` code: the C-contiguous array of
    ``shape`` and ``dtype`` whose first element lies ``offset`` elements past the integer ``address``;
    ``carray(pointer + offset, shape, dtype)`` without a pointer type, an overload compiled per shape and
    dtype, or a slice. It owns nothing: the caller keeps the memory alive (a sharded step's task entry,
    which receives its arrays as addresses, ``sharded_source``)."""
    if not isinstance(address, types.Integer) or not isinstance(offset, types.Integer):
        return None
    if not (isinstance(shape, types.BaseTuple) and len(shape) > 0
            and all(isinstance(size, types.Integer) for size in shape.types)):
        return None
    if not (isinstance(dtype, (types.NumberClass, types.DType)) and isinstance(dtype.dtype, types.Number)):
        return None
    result = types.Array(dtype.dtype, len(shape), "C")

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        element = context.get_data_type(result.dtype)
        view = make_array(result)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(element))
        sizes = [context.cast(builder, builder.extract_value(args[2], i), size_type, types.intp)
                 for i, size_type in enumerate(signature.args[2].types)]
        strides, stride = [], itemsize
        for size in reversed(sizes):  # C order: the last axis is contiguous
            strides.insert(0, stride)
            stride = builder.mul(stride, size)
        start = builder.inttoptr(context.cast(builder, args[0], signature.args[0], types.intp), element.as_pointer())
        data = builder.gep(start, [context.cast(builder, args[1], signature.args[1], types.intp)])
        populate_array(view, data=data, shape=cgutils.pack_array(builder, sizes),
                       strides=cgutils.pack_array(builder, strides), itemsize=itemsize, meminfo=None)
        return view._getvalue()

    return result(address, offset, shape, dtype), codegen
