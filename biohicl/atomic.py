"""Atomic outputs: write to a temporary sibling, then rename, so a kill never leaves a file that looks complete.

>>> with atomic_path("results.json") as tmp:
...     tmp.write_text("{}")
>>> with atomic_directory("dataset") as tmp_dir:
...     (tmp_dir / "part.parquet").write_bytes(b"...")
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BioHiCLError


def _explain(err: OSError, target: Path) -> BioHiCLError:
    if err.errno == errno.ENOSPC:
        return BioHiCLError(f"{target}: no space left on device; nothing was written there")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BioHiCLError(f"{target}: cannot write here ({os.strerror(err.errno)})")
    return BioHiCLError(f"{target}: {err.strerror or err}")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as err:
        raise _explain(err, target) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        raise _explain(err, target) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def atomic_write_json(target: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically (NaN/inf refused: they are not JSON)."""
    return atomic_write_text(target, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; it replaces ``target`` only when the block succeeds."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise BioHiCLError(f"{target}: already exists (pass overwrite=True to replace it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise _explain(err, target) from None
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as err:
        raise _explain(err, target) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (so its temporary files or locks must be left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
