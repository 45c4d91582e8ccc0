"""The project's own error types: one line, naming the file, record/line or field at fault."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
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


#: a library's message for a write the OS refused: safetensors' ``... I/O error: No space left on device (os error
#: 28)``, and torch's zip writer's short write (``[enforce fail at inline_container.cc:672] . unexpected pos 15872 vs
#: 15760``), which names no cause
_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")
_TORCH_SHORT_WRITE = ("unexpected pos", "file write failed", "failed writing")
#: below this much free space, a write that stopped short stopped for a full disk
_FULL_DISK_BYTES = 1 << 20
#: errors only a write gives (a full disk, a quota, a file too large): only for these is the file open for writing in
#: the traceback the file the error is about; a refusal (EACCES, EPERM, EROFS) may come while another file is open
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def library_write_error(err: BaseException, folder: str | Path | None = None) -> OSError | None:
    """The :class:`OSError` behind ``err`` when ``err`` is a library's report of a write the OS refused (a full disk, a
    file size limit, a read-only folder), raised as its own type, not as an ``OSError``: safetensors'
    ``SafetensorError`` naming an OS error, torch's ``RuntimeError`` for a short write of its zip writer. ``None`` for
    any other error. The file is the one the library was writing (read from the traceback: ``torch.save``'s ``f``,
    ``save_file``'s ``filename``), else ``folder`` or none. A short write names no cause: it is called a full disk when
    the file's folder has under 1 MiB free, a file too large when the process has a file size limit (``ulimit -f``),
    else a write that stopped short."""
    text = str(err)
    if type(err).__name__ == "SafetensorError" and (found := _OS_ERROR_IN_TEXT.search(text)):
        code = int(found.group(1))
        return OSError(code, os.strerror(code), file_being_written(err, open_files=code in WRITE_ERRNOS) or folder)
    if isinstance(err, RuntimeError) and "inline_container" in text and any(w in text for w in _TORCH_SHORT_WRITE):
        path = file_being_written(err) or folder
        code, reason, note = _short_write_cause(Path(path) if path is not None else None)
        # its first line: under TORCH_SHOW_CPP_STACKTRACES=1 the C++ frames follow, one a line
        detail = next((line.strip(" .") for line in text.split("]", 1)[-1].splitlines() if line.strip(" .")), text)
        return OSError(code, f"{reason} ({'; '.join(filter(None, (note, f'torch: {detail}')))})", path)
    return None


def _short_write_cause(path: Path | None) -> tuple[int, str, str | None]:
    """The errno, the words and a note (a bracket's text, or none) for a short write of torch's into ``path``."""
    existing = path.parent if path is not None else Path.cwd()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    with contextlib.suppress(OSError):
        if shutil.disk_usage(existing).free < _FULL_DISK_BYTES:
            return errno.ENOSPC, os.strerror(errno.ENOSPC), None
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return errno.EFBIG, os.strerror(errno.EFBIG), "the file size limit, ulimit -f"
    return errno.EIO, "the write stopped short", "perhaps a full disk, a quota or a file size limit"


def file_being_written(err: BaseException, open_files: bool = True) -> str | None:
    """The file being written when ``err`` was raised, read from its traceback (innermost first): the path
    ``torch.save`` (``f``) or safetensors' ``save_file`` (``filename``) was given, else (``open_files``: for a write
    error, :data:`WRITE_ERRNOS`) the name of a file opened for writing in a frame's variables (``with open(path, "w")
    as f: f.write(...)``); ``None`` when there is none."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        module = frame.f_globals.get("__name__", "")
        name = {"torch.serialization": "f", "safetensors.torch": "filename", "safetensors.numpy": "filename"}.get(
            module
        )
        value = frame.f_locals.get(name) if name and frame.f_code.co_name in {"save", "save_file"} else None
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
    for frame in reversed(frames if open_files else ()):
        for value in frame.f_locals.values():
            named = isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str)
            # a text mode only: GzipFile's mode is an int (1: read, 2: write)
            if named and isinstance(mode := getattr(value, "mode", None), str) and set(mode) & set("wax+"):
                return value.name
    return None
