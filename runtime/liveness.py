"""Memory planning for a fused step's work buffers: a buffer whose last use has passed lends its memory
to a buffer of the same shape written later.

A training step writes every node's output in the forward pass and every output's gradient in the
backward pass; with one buffer each, a network of L nodes holds 2L batch-sized buffers. But the
gradient of a node's output is written only after the node's own output has been read for the last
time by a later node's VJP, so most gradients can take the memory of an output that is no longer
needed. In the benchmark MLP (64-128-128-10, ReLU) the 8 buffers of 128 columns become 5: at 512
rows a shard's work buffers take 1.5 MB instead of 2.3 MB (1.7 MB with the parameters and their
gradient, within a 2 MB L2 cache); the speed-up that buys was within the VM's noise
(docs/performance.md).

The rule is the classic one of register allocation over straight-line code: walk the step's calls
in order; a buffer is live from its first access to its last; a buffer first written by call i may
reuse the memory of a same-shaped buffer whose last access is a call before i (strictly: a call may
read one buffer and write another, and the two must not overlap within it). Reuse changes no value
the step computes, because every generated call writes its outputs whole (a kernel that accumulated
into an output would already carry values over from the previous step): every read sees what the
last write to that buffer wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from layergen.runtime.layout import Slot


@dataclass(frozen=True)
class Access:
    """The buffers one generated call reads and writes (names of any kind; only work slots matter)."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]


def _intervals(names: set[str], calls: Sequence[Access]) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Each named buffer's live interval, (first access, last access) in call order, and the buffers
    whose first access reads them (their value on entry matters)."""
    spans: dict[str, tuple[int, int]] = {}
    read_first: set[str] = set()
    for i, call in enumerate(calls):
        for name in (*call.reads, *call.writes):
            if name in names:
                if name not in spans and name in call.reads:
                    read_first.add(name)
                first, _ = spans.get(name, (i, i))
                spans[name] = (first, i)
    return spans, read_first


def share_dead_slots(slots: tuple[Slot, ...], calls: Sequence[Access]) -> tuple[Slot, ...]:
    """``slots`` (in their order) with ``shares`` set wherever a slot can take the memory of an earlier,
    same-shaped slot that is dead by its first access. Slots no call touches, and slots whose first
    access reads them (their value from before the step matters), keep memory of their own; a call
    that reads and writes one buffer (``inout``) lists it in both."""
    spans, read_first = _intervals({slot.name for slot in slots}, calls)
    by_name = {slot.name: slot for slot in slots}
    owners: list[tuple[str, tuple[int, int, int], int]] = []  # (owner, shape key, last access of its occupant)
    shares: dict[str, str] = {}
    for name in sorted(spans, key=lambda n: spans[n][0]):
        slot, (first, last) = by_name[name], spans[name]
        key = (slot.rows, slot.cols, slot.stack)
        for k, (owner, owner_key, busy_until) in enumerate(owners):
            if name not in read_first and owner_key == key and busy_until < first:
                shares[name] = owner
                owners[k] = (owner, owner_key, last)
                break
        else:
            owners.append((name, key, last))
    return tuple(replace(slot, shares=shares.get(slot.name, "")) for slot in slots)
