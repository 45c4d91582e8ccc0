"""The project's own error types: one line, naming the file, record/line or field at fault."""

from __future__ import annotations

import json
from pathlib import Path


class BioHiCLError(Exception):
    """Base class of every error biohicl raises on purpose (the CLI prints these as one line)."""


def location(path: str | Path | None, record: int | None = None, *, line: int | None = None) -> str:
    """``"FILE: line N"`` (a line of a text file, as the readers that write ``line N`` into a message word it),
    ``"FILE, record N"`` (a record that is no line: an XML record, a parquet row) or ``"FILE"``; ``""`` with no
    file."""
    if path is None:
        return ""
    return f"{path}: line {line}" if line is not None else f"{path}" if record is None else f"{path}, record {record}"


def json_error(err: json.JSONDecodeError) -> str:
    """``"not valid JSON (Invalid control character at column 12)"``: the decoder's message and column (``err.msg``
    alone ends in a dangling "at"), for ``DataError(json_error(err), path, line=...)``: ``err.lineno`` for a JSON
    file, the line's own number for a JSON lines file."""
    return f"not valid JSON ({err.msg.removesuffix(' at')} at column {err.colno})"


class DataError(BioHiCLError, ValueError):
    """Bad input data: ``"LOCATION: message"``, naming the file and, when known, the line or record
    (:func:`location`)."""

    def __init__(
        self, message: str, path: str | Path | None = None, record: int | None = None, *, line: int | None = None
    ):
        self.path = str(path) if path is not None else None
        self.record, self.line = record, line
        where = location(path, record, line=line)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(BioHiCLError, ValueError):
    """A configuration field is missing, misspelled or out of range (names the field)."""


class ModelLoadError(BioHiCLError, OSError):
    """A model or adapter could not be resolved or loaded (names the repo id, revision or path)."""


class PublishError(BioHiCLError):
    """A Hub upload was refused before anything was sent (names the offending file)."""
