"""Numba's thread pool called directly from ``@njit`` code: the sharded steps' parallel loop without a
``parallel=True`` function.

Why: Numba compiles a ``prange`` loop through its parallel-loop passes, which turn the loop body into a
function of its own, wrap it as a generalised ufunc and call the threading layer's ``parallel_for``.
For the sharded step, whose loop body only calls a C entry point, those passes took 0.5–0.86 s of every
cold start. The step now makes that call itself (``run_tasks``), through the symbols Numba registers
when it starts its threads (``numba_parallel_for``, ``get_num_threads``): the threading layer
(OpenMP, TBB or Numba's workqueue, whichever Numba chose) runs ``_each_task`` in its threads, once per
chunk of tasks, and returns when all have run; ``_each_task`` calls the model's task entry
(``ENTRY_SIGNATURE``: task number, data block), whose address is the data block's first word, for each
task of its chunk. The step refers to the symbols and to its entry by name, which keeps it cacheable.

The task list is an ``intp`` array built once (``task_list``): ``[tasks, 8, &list[3], 0, 1, ...]``,
which is ``dims[0]`` (the number of tasks), ``steps[0]`` (the bytes between two task numbers), the one
argument pointer (to the first task number; ``run_tasks`` writes it at each call, so the array never
holds a stale address of itself) and the task numbers. A chunk's call receives its first task
number through ``args[0]`` and its count in ``dims[0]``: OpenMP runs one task per call, the other
layers hand a thread a run of consecutive tasks."""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from layergen.errors import LayergenError

#: the C signature of a task entry: ``void(intp task, intp *data)``
ENTRY_SIGNATURE = types.void(types.intp, types.CPointer(types.intp))
#: the C signature the threading layer calls: ``void(char **args, intp *dims, intp *steps, void *data)``,
#: its pointers typed as ``intp*`` (pointers and ``intp`` have one width)
LOOP_SIGNATURE = types.void(*([types.CPointer(types.intp)] * 4))

_PARALLEL_FOR, _THREAD_COUNT, _EACH_TASK = "numba_parallel_for", "get_num_threads", "layergen_each_task"
_started: list[object] = []  # the compiled ``_each_task``, kept alive for the process


@intrinsic
def _call_entry(typingctx, address, task, data):  # type: ignore[no-untyped-def]
    """Call the task entry at ``address`` (an integer) with ``(task, data)``."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        intp = context.get_value_type(types.intp)
        entry_type = ir.FunctionType(ir.VoidType(), [intp, intp.as_pointer()])
        builder.call(builder.inttoptr(args[0], entry_type.as_pointer()), [args[1], args[2]])
        return context.get_dummy_value()

    return types.void(address, task, data), codegen


@intrinsic
def _first_task(typingctx, args):  # type: ignore[no-untyped-def]
    """The number of the first task of a call of the threading layer: ``*(intp *) args[0]``."""
    def codegen(context, builder, signature, arguments):  # type: ignore[no-untyped-def]
        intp = context.get_value_type(types.intp)
        return builder.load(builder.inttoptr(builder.load(arguments[0]), intp.as_pointer()))

    return types.intp(args), codegen


def _each_task(args, dims, steps, data):  # type: ignore[no-untyped-def]
    """What the threading layer calls: the entry whose address is ``data[0]`` for each task of this call
    (consecutive numbers: one under OpenMP, a run of them under the workqueue and TBB layers). A loop of
    its own, not one around each model's entry: LLVM took 0.5 s longer over the entry with the loop in it."""
    first = _first_task(args)
    for task in range(first, first + dims[0]):
        _call_entry(data[0], task, data)


def start_thread_pool() -> None:
    """Start Numba's threads and register its threading layer's symbols with LLVM (what Numba does the
    first time it compiles a parallel loop), and compile (or load) and register ``_each_task``: a step
    that calls ``run_tasks`` links against them."""
    if _started:
        return
    from numba.np.ufunc import parallel

    parallel._launch_threads()
    for symbol in (_PARALLEL_FOR, _THREAD_COUNT):
        if not llvm.address_of_symbol(symbol):
            raise LayergenError(f"this Numba ({__import__('numba').__version__}) registers no '{symbol}' when it "
                                "starts its threads; the sharded steps need it (known to work: Numba 0.58–0.68)")
    loop = cfunc(LOOP_SIGNATURE, cache=True)(_each_task)
    llvm.add_symbol(_EACH_TASK, loop.address)
    _started.append(loop)


def task_list(tasks: int) -> np.ndarray:
    """The task list of ``run_tasks`` for task numbers 0 … tasks − 1 (see the module's docstring). Its
    argument pointer, ``&list[3]``, is written by ``run_tasks`` at each call, not here: a copy of the
    array (a deep copy of a model) must not point into the original."""
    launch = np.zeros(3 + tasks, np.intp)
    launch[0], launch[1] = tasks, launch.itemsize
    launch[3:] = np.arange(tasks)
    return launch


def _declare(builder: ir.IRBuilder, name: str, result: ir.Type, arguments: list[ir.Type]) -> ir.Function:
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, arguments), name)


@intrinsic
def function_address(typingctx, symbol):  # type: ignore[no-untyped-def]
    """The address of the task entry registered under the literal name ``symbol``, as an integer."""
    if not isinstance(symbol, types.StringLiteral):
        return None
    name = symbol.literal_value

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        intp = context.get_value_type(types.intp)
        entry = _declare(builder, name, ir.VoidType(), [intp, intp.as_pointer()])
        return builder.ptrtoint(entry, intp)

    return types.intp(symbol), codegen


@intrinsic
def array_address(typingctx, array):  # type: ignore[no-untyped-def]
    """The address of an array's first element, as an integer (to pass in a task's data block)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(array)(context, builder, args[0]).data
        return builder.ptrtoint(data, context.get_value_type(types.intp))

    return types.intp(array), codegen


@intrinsic
def run_tasks(typingctx, launch, data):  # type: ignore[no-untyped-def]
    """Run the task entry at ``data[0]`` once for every task of ``launch`` (``task_list``) in Numba's
    threads, ``data`` shared by all; returns when all have run. The threading layer's
    ``parallel_for(_each_task, &launch[2], &launch[0], &launch[1], data, 0, 1, threads)``, with
    ``launch[2] = &launch[3]`` written first, emitted directly (an ``@njit`` helper inlined into the step
    took longer to compile). Thread-count independent: a task's work depends on its number, not on its
    thread."""
    if not (isinstance(launch, types.Array) and isinstance(data, types.Array)):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        intp, bytes_ = context.get_value_type(types.intp), cgutils.voidptr_t
        words = context.make_array(launch)(context, builder, args[0]).data
        block = context.make_array(data)(context, builder, args[1]).data
        parallel_for = _declare(builder, _PARALLEL_FOR, ir.VoidType(), [bytes_] * 5 + [intp] * 3)
        thread_count = _declare(builder, _THREAD_COUNT, ir.IntType(32), [])
        each_task = _declare(builder, _EACH_TASK, ir.VoidType(), [intp.as_pointer()] * 4)

        def word(i: int) -> ir.Value:
            return builder.bitcast(builder.gep(words, [intp(i)]), bytes_)

        builder.store(builder.ptrtoint(builder.gep(words, [intp(3)]), intp), builder.gep(words, [intp(2)]))
        threads = builder.sext(builder.call(thread_count, []), intp)
        builder.call(parallel_for, [builder.bitcast(each_task, bytes_), word(2), word(0), word(1),
                                    builder.bitcast(block, bytes_), intp(0), intp(1), threads])
        return context.get_dummy_value()

    return types.void(launch, data), codegen
