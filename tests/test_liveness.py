"""Memory planning of a fused step's work buffers (``runtime/liveness.py``): which buffers may share
memory, checked on hand-made call sequences with the expected plan worked out by hand, and on the
networks' own calls against the liveness rule itself."""

from __future__ import annotations

import numpy as np
import pytest

from layergen.runtime.layout import Slot, allocate
from layergen.runtime.liveness import Access, share_dead_slots
from layergen.runtime.network import Architecture
from layergen.runtime.node_calls import node_calls, planned_layout

WIDE = ("a", "b", "c", "d")


def plan(calls: list[Access], slots: tuple[Slot, ...] | None = None) -> dict[str, str]:
    slots = slots or tuple(Slot(name, 0, 4) for name in WIDE)
    return {s.name: s.shares for s in share_dead_slots(slots, calls)}


def test_a_buffer_written_after_another_dies_takes_its_memory() -> None:
    # a chain a → b → c → d: b's writer reads a, so b needs memory of its own; c is written by the call
    # after a's last read, so c takes a's memory; d, written after b's last read, takes b's
    calls = [Access((), ("a",)), Access(("a",), ("b",)), Access(("b",), ("c",)), Access(("c",), ("d",))]
    assert plan(calls) == {"a": "", "b": "", "c": "a", "d": "b"}


def test_a_call_never_writes_into_what_it_reads() -> None:
    calls = [Access((), ("a",)), Access(("a",), ("b",)), Access(("a", "b"), ("c",))]
    assert plan(calls) == {"a": "", "b": "", "c": "", "d": ""}


def test_only_buffers_of_the_same_shape_share() -> None:
    slots = (Slot("a", 0, 4), Slot("b", 0, 4), Slot("c", 0, 8), Slot("d", 0, 4))
    calls = [Access((), ("a",)), Access(("a",), ("b",)), Access(("b",), ("c",)), Access(("c",), ("d",))]
    assert plan(calls, slots) == {"a": "", "b": "", "c": "", "d": "a"}


def test_a_buffer_read_before_it_is_written_keeps_its_own_memory() -> None:
    calls = [Access((), ("a",)), Access(("a",), ()), Access(("b",), ("b",)), Access(("b",), ("c",))]
    assert plan(calls) == {"a": "", "b": "", "c": "a", "d": ""}


def test_the_benchmark_mlp_needs_five_wide_buffers_instead_of_eight() -> None:
    arch = Architecture(64, (128, 128, 10))
    planned = {s.name: s.shares for s in planned_layout(arch).work}
    # each output gradient takes the memory of the output read last by the VJP that ran before its writer
    assert planned == {"h0": "", "gh0": "h1", "h1": "", "gh1": "h2", "h2": "", "gh2": "h3", "h3": "", "gh3": "",
                       "h4": "", "gh4": "", "g_input": ""}
    flat, named = allocate(planned_layout(arch).work, np.float32, 32)
    assert flat.size == 32 * (5 * 128 + 2 * 10 + 64)  # 8 wide buffers would be 32 * (8 * 128 + 2 * 10 + 64)
    assert np.shares_memory(named["gh0"], named["h1"]) and not np.shares_memory(named["gh0"], named["h0"])


ARCHITECTURES = [
    Architecture(64, (128, 128, 10)),
    Architecture(inputs=3, layers=("dense 8", "batch_norm", "relu", "dropout 0.2", "dense 8", "layer_norm", "gelu",
                                   "dense 2")),
    Architecture(inputs=5, layers=("batch_norm", "dense 6", "tanh", "dense 6", "relu", "dense 3")),
    Architecture(inputs=4, layers=("layer_norm", "dropout 0.5", "dense 4", "dense 4", "sigmoid", "dense 2")),
]


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: "-".join(map(str, a.sizes)))
def test_every_shared_buffer_is_dead_before_its_sharer_is_written(arch: Architecture) -> None:
    """The plan against the rule, on the calls the step really makes: same shape, disjoint live ranges,
    the sharer written (not read) first; and the outputs that ``predict`` writes never share."""
    calls = [access for _, access in node_calls(arch).training()]
    slots = {s.name: s for s in planned_layout(arch).work}
    live: dict[str, list[int]] = {}
    for i, call in enumerate(calls):
        for name in (*call.reads, *call.writes):
            if name in slots:
                live.setdefault(name, []).append(i)
    occupants: dict[str, list[str]] = {}
    for name, slot in slots.items():
        occupants.setdefault(slot.shares or name, []).append(name)
    for owner, names in occupants.items():
        for name in names:
            assert (slots[name].rows, slots[name].cols) == (slots[owner].rows, slots[owner].cols)
        spans = sorted((live[n][0], live[n][-1], n) for n in names if n in live)
        for (_, end, _), (start, _, later) in zip(spans, spans[1:]):
            assert end < start
            assert later in calls[start].writes and later not in calls[start].reads
        assert sum(name.startswith("h") for name in names) <= 1

