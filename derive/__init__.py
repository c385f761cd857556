"""Stage 2: symbolic derivation (pure SymPy). ``derive(loaded)`` → ``Derivation``."""

from __future__ import annotations

from collections.abc import Sequence

from layergen.derive import cache
from layergen.derive.derivation import (
    Derivation, ElementwiseDerivation, ExpandedDerivation, MatrixDerivation,
)
from layergen.spec.declare import Elementwise, Expanded, MatrixMap
from layergen.spec.loader import LoadedSpec


def derive(loaded: LoadedSpec, use_cache: bool = True) -> Derivation:
    """Everything layergen derives from one spec; cached on disk by content hash."""
    if use_cache:
        hit = cache.load(loaded.content_hash, loaded.name)
        if hit is not None:
            return hit
    spec = loaded.spec
    if isinstance(spec, Elementwise):
        from layergen.derive.elementwise import derive_elementwise

        result = derive_elementwise(spec, loaded.content_hash)
    elif isinstance(spec, MatrixMap):
        from layergen.derive.matrix import derive_matrix

        result = derive_matrix(spec, loaded.content_hash)
    elif isinstance(spec, Expanded):
        from layergen.derive.expanded import derive_expanded

        result = derive_expanded(spec, loaded.content_hash)
    else:  # pragma: no cover - the loader admits only these
        raise TypeError(type(spec))
    result.group = loaded.group
    if use_cache:
        cache.store(result)
    return result


def _operations(loaded: LoadedSpec) -> int:
    """The operation count of the spec's forward map (0 for a map not given as expressions)."""
    import sympy as sp

    forward = getattr(loaded.spec, "forward", None)
    return sum(int(sp.count_ops(value)) for value in forward.values()) if isinstance(forward, dict) else 0


def _derive_task(task: tuple[LoadedSpec, bool]) -> Derivation:
    return derive(*task)


def derive_all(specs: Sequence[LoadedSpec], use_cache: bool = True, jobs: int = 1) -> list[Derivation]:
    """Each spec's derivation, in order: those in the cache loaded here, the others derived on ``jobs``
    worker processes (``layergen.workers``; 1: in this process), each storing its result in the cache."""
    from layergen.workers import map_on_workers

    found = [cache.load(s.content_hash, s.name) if use_cache else None for s in specs]
    # the largest forward maps first (most operations: the longest derivations, such as the sum-of-squares
    # transformer's 13 of the catalog's 21 s), so that no long one starts last while the other worker idles
    missing = sorted((i for i, hit in enumerate(found) if hit is None), key=lambda i: -_operations(specs[i]))
    for i, derived in zip(missing, map_on_workers(_derive_task, [(specs[i], use_cache) for i in missing], jobs)):
        found[i] = derived
    return found  # type: ignore[return-value]


__all__ = ["derive", "derive_all", "Derivation", "ElementwiseDerivation", "MatrixDerivation", "ExpandedDerivation"]
