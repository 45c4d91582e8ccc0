"""A command's output files apart from its inputs and from each other, checked before any work.

``biohicl encode --input in.txt --output in.txt`` would overwrite its input with safetensors, ``biohicl evaluate
--compare a.json b.json --markdown b.json`` a compared record, ``--output c.json --markdown c.json`` one output with
the other. Two paths are one file when they share a device and inode (another spelling, a symlink, a hard link), as
``build-dataset`` tells inputs given twice apart (:func:`~biohicl.data.sources.check_distinct_inputs`), or, where no
file is there yet, when they resolve to one path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from biohicl.data.files import file_identity
from biohicl.errors import ConfigError

#: What an option holds: a path, several (``--compare``), or nothing given (None or "").
Paths = str | Sequence[str] | None


def file_key(path: str) -> object:
    """What tells ``path``'s file apart: its device and inode when it exists (on a file system with inode numbers),
    else the path it resolves to (symlinks followed, a dangling one to the file it would create)."""
    where = Path(path).expanduser()
    try:
        return file_identity(where, where.stat())  # build-dataset's rule for inputs given twice
    except (OSError, RuntimeError):  # not there yet, or a symlink loop (RuntimeError before Python 3.13)
        pass
    try:
        return where.resolve()
    except (OSError, RuntimeError):
        return where.absolute()


def _given(paths: Paths) -> list[str]:
    if not paths:
        return []
    return [paths] if isinstance(paths, str) else [p for p in paths if p]


def check_distinct_files(outputs: Mapping[str, str | None], inputs: Mapping[str, Paths] | None = None) -> None:
    """A one-line :class:`ConfigError` when an output option (name → path; None or "" not given) names the file of
    an input option (name → path or paths) or of another output option; nothing is opened or written."""
    seen: dict[object, tuple[str, str]] = {}
    for option, paths in (inputs or {}).items():
        for path in _given(paths):
            seen.setdefault(file_key(path), (option, path))
    kinds = {key: "input" for key in seen}
    for option, path in outputs.items():
        if not path:
            continue
        key = file_key(path)
        if key in seen:
            other, other_path = seen[key]
            if kinds[key] == "input":
                raise ConfigError(f"{option}: {path} is the {other} file {other_path}; write it elsewhere")
            raise ConfigError(f"{other}, {option}: both name {path}; give each its own file")
        seen[key], kinds[key] = (option, path), "output"
