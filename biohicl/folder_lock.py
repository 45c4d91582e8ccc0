"""One writer at a time in an output folder: the lock ``biohicl train`` (``training.run_lock``) and ``biohicl index``
(``search.folder_setup``) hold on their folder while they write it.

:func:`held_folder_lock` makes the folder (and the missing folders above it), takes an exclusive ``flock`` on
``<folder>/<lock name>`` (:func:`~biohicl.atomic.exclusive_lock`: a regular file, never through a symlink), writes
its pid there, and runs the block; a second process into that folder is refused in the command's own one line
naming the holder's pid read from the file. The lock file is removed at the end while still held, and so are the
folders it made that nothing was written to. The kernel drops a ``flock`` when its process dies, so a lock file a
killed run left stops nobody. A process that holds the lock already (a run inside a run) takes no second one.
Without ``fcntl`` (Windows) nothing is locked: :func:`~biohicl.atomic.can_lock` says so in one warning line, and the
block runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from biohicl.atomic import can_lock, exclusive_lock
from biohicl.errors import BioHiCLError, DataError

_HELD: set[Path] = set()  # the lock files this process holds (or went without: no fcntl); entered again: no lock


@contextmanager
def held_folder_lock(
    folder: str | Path,
    lock_name: str,
    refusal: Callable[[str], BioHiCLError],
    what: str,
    main: bool = True,
) -> Iterator[None]:
    """Hold ``folder``'s lock file ``lock_name`` while the block runs. ``refusal(pid)``: the error raised when another
    process holds it (``pid``: the text of the holder's lock file, ``unknown`` when empty or unreadable); ``what``
    (``"a run lock"``) names the lock in the error for a symlink or other non-regular file in its place; ``main``:
    the process that writes the folder (the other processes of a distributed run take none)."""
    path = Path(folder).resolve() / lock_name  # absolute: a change of the working folder during the block is harmless
    if not main or path in _HELD:
        yield
        return
    if not can_lock(path):  # one warning line; a nested entry (path in _HELD) warns no second time
        with _holding(path):
            yield
        return
    made = _missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = exclusive_lock(path, DataError(f"{what} must be a regular file (a symlink or other file is there); remove it",
                                        path))  # fmt: skip
    if fd is None:
        raise refusal(_holder(path))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        with _holding(path):
            yield
    finally:
        path.unlink(missing_ok=True)  # while still held, so nobody locks a stale copy; never what a link points to
        os.close(fd)
        _remove_empty(made)


@contextmanager
def _holding(path: Path) -> Iterator[None]:
    _HELD.add(path)
    try:
        yield
    finally:
        _HELD.discard(path)


def _holder(path: Path) -> str:
    """The pid the holder wrote in ``path``, ``unknown`` when it is empty or cannot be read."""
    try:
        return path.read_text(encoding="ascii", errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


def _missing_folders(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` of ``folder`` (absolute) would make, deepest first, up to the first that
    did not exist."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders of ``made`` (deepest first) that are empty, stopping at the first that is not: what the
    lock made and nothing was written to."""
    for folder in made:
        try:
            if any(folder.iterdir()):
                return
            folder.rmdir()
        except FileNotFoundError:  # gone already: on to the folder above
            continue
        except OSError:  # not removable: leave it and those above it
            return
