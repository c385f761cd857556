"""Errors that name what was wrong and what would be valid."""

from __future__ import annotations

from pathlib import Path


class LayergenError(Exception):
    """Base class: every message names the file, field or argument at fault."""


class SpecError(LayergenError):
    """A spec file is invalid. ``str()`` reads ``<file>: field '<field>': <message>``."""

    def __init__(self, source: Path | str | None, field: str, message: str) -> None:
        self.source = Path(source) if source is not None else None
        self.field = field
        self.message = message
        if self.source is None:  # a command-line argument, not a spec file
            super().__init__(f"argument {field}: {message}")
        else:
            super().__init__(f"{self.source}: field '{field}': {message}")

    def __reduce__(self) -> tuple[type, tuple[Path | None, str, str]]:
        # rebuilt from its fields, not from its message: a worker process (``layergen.workers``) sends it
        # back pickled, and unpickling calls the class with ``args``
        return type(self), (self.source, self.field, self.message)
