"""On-disk cache of derivations, keyed by the spec's content hash and layergen's version.

The version key hashes SymPy's version and the source of ``derive/`` and of the spec
language, so upgrading SymPy or editing either invalidates every entry. Entries are written atomically (temporary file + rename);
an unreadable entry is treated as missing and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from functools import cache
from pathlib import Path

from layergen.derive.derivation import DerivationBase
from layergen.paths import cache_root


def cache_dir() -> Path:
    return cache_root() / "derivations"


@cache
def derive_version() -> str:
    import layergen.spec

    import sympy

    digest = hashlib.sha256(sympy.__version__.encode())
    for folder in (Path(__file__).parent, Path(layergen.spec.__file__).parent):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _entry(content_hash: str, name: str) -> Path:
    return cache_dir() / f"{name}-{content_hash}-{derive_version()}.pkl"


def load(content_hash: str, name: str) -> DerivationBase | None:
    path = _entry(content_hash, name)
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a corrupt or incompatible entry is a cache miss
        return None


def store(derivation: DerivationBase) -> None:
    path = _entry(derivation.content_hash, derivation.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(derivation, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs speed, never correctness
