"""One training run at a time in a run folder: ``train_biohicl`` holds an exclusive ``flock`` on its
``output_dir``'s ``.train.lock`` (which records the holder's pid) from its folder checks to the last file it
writes, so a second run into the same folder is refused in one line naming the folder and that pid, instead of the
two mixing their checkpoints and final files and both reporting success. The kernel drops the lock when its process
dies, so a killed run's folder is free again; the lock file is opened as ``biohicl reproduce``'s run locks are
(:func:`~biohicl.atomic.exclusive_lock`: never through a symlink). Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from biohicl.atomic import exclusive_lock
from biohicl.errors import ConfigError, DataError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

#: A run folder's lock file, ``flock``-ed by the training run writing there, holding its pid.
LOCK_NAME = ".train.lock"
_HELD: set[Path] = set()  # the run folders' lock files this process holds (a run inside a run's callback: no lock)


def _locked(path: Path, folder: str | Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock; a :class:`ConfigError` when another process has it."""
    refused = DataError("a run lock must be a regular file (a symlink or other file is there); remove it", path)
    fd = exclusive_lock(path, refused)
    if fd is None:
        try:
            holder = path.read_text(encoding="ascii", errors="replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise ConfigError(
            f"output_dir: {folder} is in use by another training run (pid {holder}, in {path.name}); wait for it "
            "to end, or train in another --output_dir"
        )
    return fd


def _missing_folders(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` of ``folder`` would make, deepest first (absolute: a change of the working
    folder during the run leaves them named), up to the first that did not exist."""
    missing = []
    current = Path(os.path.abspath(folder))
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
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


@contextmanager
def run_folder_lock(output_dir: str | Path, main: bool = True) -> Iterator[None]:
    """Hold ``output_dir``'s run lock while the block runs (``main``: the process that writes the run folder; the
    other processes of a distributed run take none); the folders this made (``--output_dir lk2/a/run`` under a
    missing ``lk2``: all three) that nothing was written to are removed."""
    folder = Path(output_dir or ".")
    path = folder.resolve() / LOCK_NAME
    if not main or fcntl is None or path in _HELD:
        yield
        return
    made = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _locked(path, output_dir)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD.add(path)
    try:
        yield
    finally:
        _HELD.discard(path)
        path.unlink(missing_ok=True)  # while still held, so nobody locks a stale copy; never what a link points to
        os.close(fd)
        _remove_empty(made)
