"""Stage 2: symbolic derivation (pure SymPy). ``derive(loaded)`` → ``Derivation``."""

from __future__ import annotations

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


__all__ = ["derive", "Derivation", "ElementwiseDerivation", "MatrixDerivation", "ExpandedDerivation"]
