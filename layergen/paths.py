"""Where layergen keeps derived state: ``$LAYERGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/layergen``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("LAYERGEN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "layergen")
    return Path(root)
