"""Run locks: several ``biohicl reproduce`` workers share one study, each run claimed by exactly one of them.

A claim is an exclusive ``flock`` on the run's ``.reproduce.lock``. The lock file is opened without following a
symlink (``O_NOFOLLOW``) and must be a regular file: a link planted in a study folder would otherwise have the
worker truncate, write and finally delete whatever file it points to.
"""

from __future__ import annotations

import os
from pathlib import Path

from biohicl.atomic import exclusive_lock
from biohicl.errors import DataError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so one worker per study
    fcntl = None  # type: ignore[assignment]

#: A run's lock file: ``flock``-ed by the worker on it, holding its pid.
LOCK_NAME = ".reproduce.lock"
#: The run locks this process holds: lock path -> open file descriptor.
_HELD_LOCKS: dict[Path, int] = {}


def lock_path(run_dir: Path) -> Path:
    """The run's lock file: its folder resolved (one key per folder), the lock's own name never followed."""
    return run_dir.resolve() / LOCK_NAME


def _not_a_lock(path: Path) -> DataError:
    return DataError("a run lock must be a regular file (a symlink or other file is there); remove it", path)


def run_locks_available() -> bool:
    """Whether run locks work here (``fcntl``: Linux, macOS), so several workers can share a study."""
    return fcntl is not None


def acquire_run_lock(run_dir: Path) -> bool:
    """Claim a run for this process; False when another process holds it. Lets several workers share one study.

    The claim is an exclusive ``flock`` on ``.reproduce.lock`` (which also records the holder's pid, for people):
    taking it is one atomic step, and the kernel drops it when its process dies, so a crashed worker's run is free
    again. Re-entrant within one process. Without ``fcntl`` (Windows) every claim succeeds: one worker only.
    Raises :class:`DataError` when the lock path is a symlink or anything but a regular file.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(run_dir)
    if path in _HELD_LOCKS:
        return True
    if fcntl is None:
        _HELD_LOCKS[path] = -1
        return True
    fd = exclusive_lock(path, _not_a_lock(path))
    if fd is None:
        return False
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD_LOCKS[path] = fd
    return True


def release_run_lock(run_dir: Path) -> None:
    """Give the run's lock up (removing the file while still holding it, so nobody locks a stale copy)."""
    path = lock_path(run_dir)
    fd = _HELD_LOCKS.pop(path, None)
    if fd is None or fd < 0:  # not held, or no lock file (no fcntl)
        return
    path.unlink(missing_ok=True)  # the name itself: a symlink put there since is removed, never what it points to
    os.close(fd)
