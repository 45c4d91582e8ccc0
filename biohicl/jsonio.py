"""Reading JSON files the project writes (results records, trainer states, run configs), with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biohicl.errors import BioHiCLError, DataError

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
    instead), the byte that is not UTF-8, the line of a syntax error, or nesting too deep to decode."""
    path = Path(path)

    def failure(message: str) -> BioHiCLError:
        return DataError(message, path) if error is DataError else error(f"{path}: {message}")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if default is not _REQUIRED:
            return default
        raise failure(missing) from None
    except UnicodeDecodeError as err:
        raise failure(f"not UTF-8 (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except OSError as err:
        raise failure(f"cannot read ({err.strerror or err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise failure(f"not valid JSON ({err.msg}, line {err.lineno})") from None
    except RecursionError:  # ``[[[[...`` deeper than the decoder's recursion limit
        raise failure("not valid JSON (nested too deeply to read)") from None
