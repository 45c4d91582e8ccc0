"""Reading JSON files the project writes (results records, trainer states, run configs), with one-line errors, and a
``null`` score read as the NaN it was written for (:func:`nan_for_null`)."""

from __future__ import annotations

import codecs
import json
import math
from pathlib import Path
from typing import Any

from biohicl.errors import BioHiCLError, DataError, json_error, location

_REQUIRED = object()


def read_json(
    path: str | Path,
    *,
    missing: str = "file not found",
    default: Any = _REQUIRED,
    error: type[BioHiCLError] = DataError,
) -> Any:
    """The JSON value in ``path``; ``error`` (:class:`DataError` unless the caller's layer has its own, e.g.
    ``PublishError``) naming the file: ``missing`` when it does not exist (unless a ``default`` is given to return
    instead), the byte that is not UTF-8, the line and column of a syntax error (``FILE: line N: not valid JSON (...
    at column C)``), or nesting too deep to decode. A byte-order mark opening the file is read past, as every reader
    of the project's input does (an editor's "UTF-8 with BOM")."""
    path = Path(path)

    def failure(message: str, line: int | None = None) -> BioHiCLError:
        if error is DataError:
            return DataError(message, path, line=line)
        return error(f"{location(path, line=line)}: {message}")

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if default is not _REQUIRED:
            return default
        raise failure(missing) from None
    except OSError as err:
        raise failure(f"cannot read ({err.strerror or err})") from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise failure(f"not UTF-8 (byte {err.object[err.start]:#04x} at offset {bom + err.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise failure(json_error(err), err.lineno) from None
    except RecursionError:  # ``[[[[...`` deeper than the decoder's recursion limit
        raise failure("not valid JSON (nested too deeply to read)") from None


def nan_for_null(value: Any) -> Any:
    """A score as a record reads it: ``null`` (None) is NaN, since biohicl writes a non-finite number as ``null``
    (JSON has no NaN: :func:`biohicl.atomic.finite_or_null`); any other value as it is, the ``NaN`` an earlier
    release wrote included. Only for a place a number was measured: a ``null`` that means "not recorded" stays
    None."""
    return math.nan if value is None else value
