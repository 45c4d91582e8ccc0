"""The project's own error types: one line, naming the file, record/line or field at fault."""

from __future__ import annotations

from pathlib import Path


class BioHiCLError(Exception):
    """Base class of every error biohicl raises on purpose (the CLI prints these as one line)."""


class DataError(BioHiCLError, ValueError):
    """Bad input data: names the file and, when known, the record or line number."""

    def __init__(self, message: str, path: str | Path | None = None, record: int | None = None):
        self.path = str(path) if path is not None else None
        self.record = record
        where = ""
        if self.path is not None:
            where = self.path if record is None else f"{self.path}, record {record}"
            where += ": "
        super().__init__(f"{where}{message}")


class ConfigError(BioHiCLError, ValueError):
    """A configuration field is missing, misspelled or out of range (names the field)."""


class ModelLoadError(BioHiCLError, OSError):
    """A model or adapter could not be resolved or loaded (names the repo id, revision or path)."""


class PublishError(BioHiCLError):
    """A Hub upload was refused before anything was sent (names the offending file)."""
