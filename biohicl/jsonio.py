"""Reading JSON files the project writes (results records, trainer states, run configs), with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biohicl.errors import DataError

_REQUIRED = object()


def read_json(path: str | Path, *, missing: str = "file not found", default: Any = _REQUIRED) -> Any:
    """The JSON value in ``path``; :class:`DataError` naming the file (``missing`` when it does not exist, unless a
    ``default`` is given to return instead) or the line of a syntax error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if default is not _REQUIRED:
            return default
        raise DataError(missing, path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 (byte {err.object[err.start]:#04x} at offset {err.start})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON ({err.msg}, line {err.lineno})", path) from None
