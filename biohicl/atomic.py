"""Atomic outputs: write to a temporary sibling, then rename, so a kill never leaves a file that looks complete.

>>> with atomic_path("results.json") as tmp:
...     tmp.write_text("{}")
>>> with atomic_directory("dataset") as tmp_dir:
...     (tmp_dir / "part.parquet").write_bytes(b"...")

A temporary is named ``.<target name>.<pid>-<random>.tmp``; the next write of the same target removes those whose
process is gone (left by a kill), so killed runs do not pile up hidden files (:func:`pid_alive`: ``os.kill(pid, 0)``,
on Windows the Win32 API; one it cannot check is kept). What is published gets the usual permissions
(``0666``/``0777`` less the umask), not the owner-only mode of a temporary file: an index or dataset built by one user
stays readable by the group that shares it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import json
import logging
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from biohicl.errors import BioHiCLError, library_write_error

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


def explain_os_error(err: OSError, target: Path) -> BioHiCLError:
    if err.errno == errno.ENOSPC:
        return BioHiCLError(f"{target}: no space left on device; nothing was written there")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BioHiCLError(f"{target}: cannot write here ({os.strerror(err.errno)})")
    return BioHiCLError(f"{target}: {err.strerror or err}")


os.umask(_UMASK := os.umask(0))  # the umask at import: read by setting one, then put back


def current_umask() -> int:
    """The process's umask now, read without changing it where Linux allows (``/proc/self/status``), so another
    thread never creates a file under a momentary umask of 0; else the value read at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK


def shareable_mode(directory: bool = False) -> int:
    """``0666`` (``0777`` for a folder) less the current umask: the mode a plain ``open``/``mkdir`` would give."""
    return (0o777 if directory else 0o666) & ~current_umask()


def sweep_temporaries(target: str | Path) -> int:
    """Remove the temporaries of ``target`` whose writing process is gone (a kill); returns how many were removed."""
    target = Path(target)
    removed = 0
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = path.name[len(target.name) + 2 :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed += 1
        except OSError:
            pass  # another process swept it first, or it is not ours to remove
    return removed


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(target: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    ``fsync=True`` flushes the file to disk before the rename (for outputs a resume will trust after a crash).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(target)
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as err:
        raise explain_os_error(err, target) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, shareable_mode())
        os.replace(tmp, target)
    except OSError as err:
        raise explain_os_error(err, target) from None
    except Exception as err:  # safetensors' or torch's own exception for a full disk
        if (refused := library_write_error(err, tmp)) is None:
            raise
        raise explain_os_error(refused, target) from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(target: str | Path) -> Path:
    """Fail now, before any slow work, when ``target`` could not be written later: a folder in its place, a file
    where a folder is needed, a folder that refuses new files (read-only, no permission), or a full disk. A probe file
    of one byte, flushed to disk, is written and removed in the nearest existing folder; nothing stays behind."""
    target = Path(target)
    if target.is_dir():
        raise BioHiCLError(f"{target}: is a folder; give the path of a file to write")
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BioHiCLError(f"{target}: cannot write here ({existing} is a file, not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=existing)
    except OSError as err:
        raise explain_os_error(err, target) from None
    try:  # a byte, flushed to disk: a full disk still takes an empty file (an inode, no block)
        os.write(fd, b"\0")
        os.fsync(fd)
    except OSError as err:
        raise explain_os_error(err, target) from None
    finally:
        os.close(fd)
        os.unlink(probe)
    return target


def check_writable_folder(target: str | Path, option: str | None = None) -> Path:
    """Fail now, before any slow work, when the folder ``target`` could not be written later: it or a folder above it
    is a file, or the nearest existing folder refuses new files. ``option`` (``"--output"``) prefixes the message."""
    target = Path(target)
    refuse_file_in_the_way(target, f"{option} {target}" if option else str(target))
    check_writable(target / ".probe" if target.is_dir() else target)  # probes the folder that would get the files
    return target


def refuse_file_in_the_way(target: Path, label: str, error: type[BioHiCLError] = BioHiCLError) -> None:
    """``error`` when the folder ``target``, or the nearest existing folder above it, is a file: ``label`` names the
    target in the message (``--output out``), followed by the file when it is one of the folders above."""
    for folder in (target, *target.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == target else f": {folder}"
                raise error(f"{label}{where} is a file, not a folder")
            return


def open_regular_file(path: Path, flags: int, mode: int = 0o666, refused: BioHiCLError | None = None) -> int:
    """``os.open(path, flags, mode)`` (a created file gets ``mode`` less the umask) of a regular file only, never
    through a symlink (``O_NOFOLLOW`` where the OS has it) and non-blocking, so a FIFO cannot hang the open (the
    descriptor returned blocks again). ``refused`` (default: a :class:`BioHiCLError` naming ``path``) is raised when
    ``path`` is a symlink or anything but a regular file."""
    refused = refused or BioHiCLError(f"{path}: not a regular file (a symlink or other file is there); remove it")
    nofollow, nonblock = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_NONBLOCK", 0)
    if not nofollow and path.is_symlink():
        raise refused
    try:
        fd = os.open(path, flags | nofollow | nonblock, mode)
    except OSError:
        if path.is_symlink() or (path.exists() and not path.is_file()):  # ELOOP, EISDIR, ENXIO and the like
            raise refused from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refused
    if nonblock:
        os.set_blocking(fd, True)
    return fd


def can_lock(path: Path) -> bool:
    """Whether :func:`exclusive_lock` can lock ``path`` here; where not (no ``fcntl``: Windows), a warning says so."""
    if fcntl is None:
        logger.warning("%s: this platform has no file locks (fcntl), so a second run into %s is not refused while "
                       "this one runs", path, path.parent)  # fmt: skip
    return fcntl is not None


def exclusive_lock(path: Path, refused: BioHiCLError) -> int | None:
    """An open descriptor of ``path`` (created, a regular file only: :func:`open_regular_file`, ``refused`` else)
    holding its exclusive ``flock``, or None when another process holds it (one try, no wait); -1 (nothing opened)
    where :func:`can_lock` warns. A holder that released and removed the file between our open and our lock leaves
    us a stale copy: we open and lock anew."""
    if not can_lock(path):
        return -1
    while True:
        fd = open_regular_file(path, os.O_CREAT | os.O_RDWR, 0o666, refused)  # less the umask
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.lstat(path), os.fstat(fd)):  # the file still under that name is the one locked
                return fd
        os.close(fd)


def atomic_write_text(target: str | Path, text: str, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically (``fsync``: as :func:`atomic_path`)."""
    with atomic_path(target, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float in it (NaN, ±inf, in dicts, lists and tuples at any depth) as None, so its
    JSON holds ``null`` there: RFC 8259 has no NaN, and JavaScript's ``JSON.parse``, the Hub's JSON viewer and strict
    parsers refuse the ``NaN`` Python writes. A reader takes a ``null`` score back as NaN
    (:func:`biohicl.jsonio.nan_for_null`)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def atomic_write_json(target: str | Path, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically, strict JSON: a non-finite float as ``null``
    (:func:`finite_or_null`)."""
    text = json.dumps(finite_or_null(data), indent=indent, allow_nan=False, default=str)
    return atomic_write_text(target, text + "\n")


def holds_working_folder(target: str | Path) -> bool:
    """Whether the folder ``target`` resolves to is the working folder or holds it (``.``, ``..``): one a build must
    not replace, which would leave the shell (and this process) in a deleted folder."""
    resolved, working = Path(target).resolve(), Path.cwd().resolve()
    return resolved == working or resolved in working.parents


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; it replaces ``target`` only when the block succeeds (an
    existing ``target`` is moved aside, put back if the swap fails, and deleted once it is done). A ``target`` that is
    the working folder or holds it (``.``, ``..``) is refused: replacing it would leave the shell in a deleted
    folder. The previous folder waits as ``.<name>.old-<pid>`` during the swap; one a kill left there is put back by
    the next call (:func:`recover_swapped_folder`). A ``target`` that is a symlink (to scratch storage) is written
    through: the folder is built beside the link's target and swapped in there; the link stays a link."""
    given, target = target, Path(target).absolute()
    if holds_working_folder(target):
        raise BioHiCLError(f"{given}: is the working folder or holds it; write into a folder inside it instead")
    if target.is_symlink():  # renaming the link would replace it with a folder and leave a `.old` link to its target
        recover_swapped_folder(target)  # an older biohicl's `.<link>.old-<pid>` link
        target = target.resolve()
    recover_swapped_folder(target)
    if target.exists() and not target.is_dir():  # a user's file is never swapped for a folder
        raise BioHiCLError(f"{given} is a file, not a folder")
    if target.exists() and not overwrite:
        raise BioHiCLError(f"{given}: already exists (pass overwrite=True to replace it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(target)
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise explain_os_error(err, Path(given)) from None
    try:
        yield tmp
        os.chmod(tmp, shareable_mode(directory=True))
        with folder_aside(target):
            os.replace(tmp, target)
    except OSError as err:
        raise explain_os_error(err, Path(given)) from None
    except Exception as err:  # safetensors' or torch's own exception for a full disk
        if (refused := library_write_error(err, tmp)) is None:
            raise
        raise explain_os_error(refused, Path(given)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def folder_aside(target: Path) -> Iterator[None]:
    """The one folder swap (here, ``data.storage``), around a block moving the new folder in: ``target`` waits as
    ``.<name>.old-<pid>`` (:func:`recover_swapped_folder`), back if the block fails with none in place, else gone."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if not target.exists():
        yield
        return
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    try:
        yield
    except BaseException:  # a Ctrl-C after the rename: the new folder is in place, the old one cannot go back there
        shutil.rmtree(old, ignore_errors=True) if target.exists() else os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():  # a file that may not be removed
        logger.warning("%s: the previous folder, not removed (the next write tries again)", old)


def recover_swapped_folder(target: str | Path, *, legacy: bool = True) -> None:
    """Undo a folder swap of :func:`atomic_directory` that a kill cut between its two renames: the previous folder,
    left as ``.<name>.old-<pid>`` (``.<name>.old`` by an older biohicl's atomic_directory, taken only if ``legacy``;
    a link to it by one that renamed a linked target), goes back to ``target`` when ``target`` is missing, else is
    removed (a link: the link, never its target), logged. One whose process still runs is left alone (its swap is
    under way); one with this process's own pid is not (a container runs biohicl as pid 1 every time)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for leftover in sorted(target.parent.glob(f".{glob.escape(target.name)}.old*")):
        suffix = leftover.name[len(target.name) + 2 :]
        pid = suffix.removeprefix("old-")
        if (suffix != "old" or not legacy) and (pid == suffix or not pid.isdigit()):
            continue  # not a name biohicl writes (here)
        link = leftover.is_symlink()
        if (pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid))) or not (link or leftover.is_dir()):
            continue
        there = target.exists() or target.is_symlink()
        try:
            if not there:
                os.replace(leftover, target)
                logger.warning("%s: put back the previous folder, which a run killed while replacing it left in %s",
                               target, leftover.name)  # fmt: skip
                continue
            leftover.unlink() if link else shutil.rmtree(leftover)
            logger.info("%s: removed %s, the previous folder a killed run left (the folder is there)",
                        target, leftover.name)  # fmt: skip
        except OSError as err:
            done = "not removed" if there else "not put back"
            logger.warning("%s: left by a killed run, %s (%s)", leftover, done, err.strerror or err)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (so its temporary files or locks must be left alone). When that cannot be
    told (an error other than "no such process" or "not yours"), it counts as running: a temporary is kept rather than
    removed from under a live writer, and the write goes on."""
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    except OSError as err:
        logger.debug("cannot tell whether process %d runs (%s): counted as running", pid, err)
    return True


#: Win32 values: the access right enough to read an exit code, the exit code of a running process, the errors of
#: ``OpenProcess`` for a pid no process has and for a process of another user.
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259
_ERROR_INVALID_PARAMETER = 87
_ERROR_ACCESS_DENIED = 5


@functools.cache
def _kernel32() -> tuple[Any, Callable[[], int]]:
    """``kernel32`` with the prototypes :func:`_windows_pid_alive` calls, and the reader of its last error."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    kernel32.CloseHandle.restype = wintypes.BOOL
    return kernel32, ctypes.get_last_error


def _windows_pid_alive(pid: int) -> bool:
    """:func:`pid_alive` on Windows, through the Win32 API: there ``os.kill(pid, 0)`` is no probe (signal 0 is
    ``CTRL_C_EVENT``: it sends a console Ctrl+C, or fails with WinError 87 for any other process)."""
    import ctypes
    from ctypes import wintypes

    kernel32, last_error = _kernel32()
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        error = last_error()
        if error == _ERROR_INVALID_PARAMETER:
            return False  # no such process
        if error != _ERROR_ACCESS_DENIED:
            logger.debug("cannot tell whether process %d runs (WinError %d): counted as running", pid, error)
        return True
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
