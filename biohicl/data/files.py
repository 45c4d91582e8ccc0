"""Opening corpus files: gzip (by its first bytes, or a ``.gz`` suffix in any case) or plain, UTF-8 or a one-line
error that says how to convert, and a decorator that turns what a bad file raises mid-stream (wrong encoding, corrupt
gzip) into a :class:`~biohicl.errors.DataError`."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from biohicl.errors import DataError
from biohicl.mesh.formats import open_maybe_gzip

T = TypeVar("T")


def open_text(path: Path, encoding: str = "utf-8-sig") -> io.TextIOBase:
    """A text handle on ``path`` (gzip decompressed: :func:`~biohicl.mesh.formats.is_gzip`), UTF-8 with a byte-order
    mark dropped (an editor's "UTF-8 with BOM", as the MeSH readers drop it) unless ``encoding`` says otherwise."""
    return open_maybe_gzip(path, "rt", encoding)


@contextlib.contextmanager
def open_utf8_bytes(path: Path) -> Iterator[io.BufferedIOBase]:
    """A byte handle on ``path`` (gzip decompressed) for a reader of UTF-8 lines; a UTF-16 file (byte-order mark
    or NUL bytes in its first 4 bytes) is a :func:`utf16_error`."""
    with open_maybe_gzip(path) as handle:
        if utf16 := utf16_encoding(handle.peek(4)[:4]):
            raise utf16_error(path, utf16)
        yield handle


def check_file(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`DataError` when it is not a file (a folder is said to be one,
    with the first of its files). A pipe or a character device (``/dev/stdin``, a process substitution's
    ``/dev/fd/63``) is taken: the readers read it once, as a stream (:func:`is_blank_file`, which would read it
    twice, refuses it)."""
    path = Path(path)
    if path.is_dir():
        names = sorted(child.name for child in path.iterdir())
        held = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "") if names else "empty"
        raise DataError(f"is a folder, not a file (it holds: {held}); name one of its files", path)
    if not (path.is_file() or is_stream(path)):
        raise DataError("input file not found", path)
    return path


def resolved_path(value: str | os.PathLike[str]) -> Path:
    """``value`` as the path it names: ``~`` expanded, from the working directory, symlinks resolved where they
    exist (the one rule by which a recorded or given folder is compared)."""
    return (Path.cwd() / Path(value).expanduser()).resolve()


def file_identity(path: Path, found: os.stat_result) -> object:
    """What tells the file ``path`` (its ``stat`` result ``found``) apart however it is named (spelt otherwise, a
    symlink or a hard link to it): its device and inode, or, on a file system with no inode numbers (``st_ino`` 0),
    the path it resolves to."""
    return (found.st_dev, found.st_ino) if found.st_ino else path.resolve()


def is_stream(path: Path) -> bool:
    """Whether ``path`` is a pipe or a character device: readable once, front to back, with no size."""
    return path.is_fifo() or path.is_char_device()


def is_blank_file(path: Path, limit: int = 1 << 16) -> bool:
    """Whether ``path`` holds nothing to read: 0 bytes, or only whitespace and byte-order marks (UTF-8 or UTF-16) and
    at most ``limit`` bytes of them (gzip decompressed). A damaged gzip file is not blank (its reader says what is
    wrong); one that cannot be read at all is a :class:`DataError`, as is a pipe (its reader would find its head
    gone)."""
    if is_stream(path):
        raise DataError("a pipe or device, which can be read only once; save it to a file and give that", path)
    if path.stat().st_size == 0:
        return True
    try:
        with open_maybe_gzip(path) as handle:
            head = handle.read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return False
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror or err}", path) from None
    if len(head) > limit:
        return False
    return not head.decode(utf16_encoding(head[:4]) or "utf-8", errors="replace").replace("\ufeff", "").strip()


def undecodable_error(path: Path, err: UnicodeDecodeError) -> DataError:
    """The one-line error for a file that is not UTF-8, naming the ``iconv`` conversion that fixes it."""
    head = bytes(err.object[:4]) if isinstance(err.object, (bytes, bytearray)) else b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        what, source = "UTF-16 text (byte-order mark)", "utf-16"
    else:
        what, source = f"byte {err.object[err.start]:#04x} that is not {err.encoding}", "latin1"
    return DataError(f"cannot decode the file: {what}; convert it to UTF-8 (`iconv -f {source} -t utf-8`)", path)


def utf16_error(path: Path, encoding: str) -> DataError:
    """The one-line refusal of a UTF-16 file (``encoding`` from :func:`utf16_encoding`) by a reader of UTF-8 only."""
    how = "byte-order mark" if encoding == "utf-16" else "NUL bytes"
    return DataError(
        f"cannot decode the file: UTF-16 text ({how}); convert it to UTF-8 (`iconv -f utf-16 -t utf-8`)", path
    )


def guarded_reader(reader: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """Turn what a bad file can raise mid-stream (wrong encoding, corrupt gzip) into a :class:`DataError`."""

    @functools.wraps(reader)
    def wrapper(path: str | Path, *args: Any, **kwargs: Any) -> Iterator[T]:
        try:
            yield from reader(path, *args, **kwargs)
        except UnicodeDecodeError as err:
            raise undecodable_error(Path(path), err) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(f"corrupt or truncated gzip file ({err})", path) from None

    return wrapper


def utf16_encoding(head: bytes) -> str | None:
    """The UTF-16 codec a file's first bytes announce (a byte-order mark or NUL bytes), or None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be"
    return None
