"""The compaction stage between lowering and rendering (``codegen/transform.py``): repeated element reads
and dtype constants are hoisted, written arrays and raw lines are left alone, and the stage is idempotent.
That the compacted kernels compute what the derivation says is checked where every kernel is verified
(``test_catalog_verification.py``)."""

from __future__ import annotations

import re

import pytest

from layergen.codegen import _lowered, lower
from layergen.codegen.ast import Assign, Kernel, KernelArg, Loop, NewtonSolve, Raw, dump
from layergen.codegen.transform import compact

from conftest import CATALOG, derivation


def element_loop(*body) -> tuple[Loop]:  # type: ignore[no-untyped-def]
    return (Loop("_n", "_N", (Loop("_d", "_D", tuple(body)),)),)


def kernel(body: tuple, *names: str) -> Kernel:
    return Kernel("k", "", [KernelArg(n, ("N", "D"), "input") for n in names], body, 0, names[0])


def test_repeated_reads_and_constants_are_hoisted_once() -> None:
    k = compact(kernel(element_loop(Assign("_t0", "a[_n, _d]*a[_n, _d] + b[_n, _d]*_dt(2)"),
                                    Assign("y[_n, _d]", "_t0*(_dt(2) / _dt(3)) + _dt(2) + (_dt(2) / _dt(3))")),
                       "a", "b", "y"))
    # each used twice (the 2 inside the rational is the rational's); equal counts in the order of their text
    assert k.body[:2] == (Assign("_c0", "(_dt(2) / _dt(3))"), Assign("_c1", "_dt(2)"))
    inner = k.body[2].body[0].body
    assert inner[0] == Assign("_e_a", "a[_n, _d]")  # read twice; b once and y written: left as they were
    assert inner[1] == Assign("_t0", "_e_a*_e_a + b[_n, _d]*_c1")
    assert inner[2] == Assign("y[_n, _d]", "_t0*_c0 + _c1 + _c0")


def test_written_arrays_raw_lines_and_outer_loops_keep_their_reads() -> None:
    body = (Raw("s[:] = _dt(1)"),
            Loop("_n", "_N", (Assign("_r", "w[_n, 0] + w[_n, 0] + r[_n] + r[_n]"),
                              Loop("_d", "_D", (Assign("_u", "x[_n, _d] + x[_n, _d] + s[_n, _d] + s[_n, _d]"),
                                                Assign("x2[_n, _d]", "x2[_n, _d] + x2[_n, _d]"))))))
    k = compact(kernel(body, "x", "s", "w", "r", "x2"))
    outer = k.body[1]
    # r[_n] is a row's element in the _n loop: hoisted; w[_n, 0] is no element index: kept
    assert outer.body[0] == Assign("_e_r_n", "r[_n]")
    assert outer.body[1] == Assign("_r", "w[_n, 0] + w[_n, 0] + _e_r_n + _e_r_n")
    inner = outer.body[2].body
    # s is named by a raw line and x2 is written: only x is hoisted
    assert inner == (Assign("_e_x", "x[_n, _d]"), Assign("_u", "_e_x + _e_x + s[_n, _d] + s[_n, _d]"),
                     Assign("x2[_n, _d]", "x2[_n, _d] + x2[_n, _d]"))
    assert k.body[0] == Raw("s[:] = _dt(1)")


def test_a_newton_solve_reads_the_hoisted_elements() -> None:
    solve = NewtonSolve("_x", "y[_n, _d]", (Assign("_h", "a[_n, _d]*_x"), Assign("_dh", "a[_n, _d]")), True)
    k = compact(kernel(element_loop(solve, Assign("x[_n, _d]", "_x")), "y", "a", "x"))
    inner = k.body[0].body[0].body
    assert inner[0] == Assign("_e_a", "a[_n, _d]")
    assert inner[1].evaluate == (Assign("_h", "_e_a*_x"), Assign("_dh", "_e_a"))
    assert inner[1].value == "y[_n, _d]"  # read once


@pytest.mark.parametrize("name", [s.name for s in CATALOG])
def test_compaction_is_idempotent_and_keeps_every_kernels_operation_count(name: str) -> None:
    der = derivation(name)
    for raw, final in zip(_lowered(der), lower(der)):
        assert compact(final) == final
        assert final.op_count == raw.op_count and final.args == raw.args and final.name == raw.name
        text = dump(final)
        for local in set(re.findall(r"\b_[ec]\w+(?= = )", text)):
            assert len(re.findall(rf"^\s*{local} = ", text, re.M)) == 1, (name, local)  # assigned once


def test_the_sos_transformer_reads_each_input_once_per_element() -> None:
    """The generated inverse evaluates h three times (at the bracket's ends and in each Newton step)."""
    from layergen.codegen import build_module

    loaded = next(s for s in CATALOG if s.name == "sos_polynomial")
    inverse = build_module(loaded).text.split("def inverse(")[1].split("@njit")[0]
    for name in ("a_0_1", "a_1_1", "a_2_1", "a_0_2", "a_1_2", "a_2_2", "b"):
        assert inverse.count(f"{name}[_n, _d]") == 1, name
    (raw,) = [k for k in _lowered(derivation("sos_polynomial")) if k.name == "inverse"]
    assert dump(raw).count("a_0_1[_n, _d]") == 7  # in h and h' once each, before the compaction
