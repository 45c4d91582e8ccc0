"""Without ``fcntl`` (Windows) the one-run-per-folder locks cannot be taken: :func:`biohicl.atomic.exclusive_lock`
says so in one warning line naming the lock file, instead of a second run into the folder going unrefused silently."""

from __future__ import annotations

import logging

from biohicl import atomic
from biohicl.errors import BioHiCLError


def _warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_without_fcntl_the_lock_warns_once_and_opens_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(atomic, "fcntl", None, raising=False)  # Windows: `import fcntl` fails
    path = tmp_path / ".train.lock"
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"):
        fd = atomic.exclusive_lock(path, BioHiCLError("not a lock"))
    assert fd == -1
    assert not path.exists()  # nothing opened, nothing to remove later
    assert _warnings(caplog) == [
        f"{path}: this platform has no file locks (fcntl), so a second run into {tmp_path} is not refused while "
        "this one runs"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"):
        assert atomic.can_lock(path) is False
    assert len(_warnings(caplog)) == 1


def test_with_fcntl_the_lock_is_taken_without_a_warning(tmp_path, caplog):
    path = tmp_path / ".index.lock"
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"):
        assert atomic.can_lock(path) is True
        fd = atomic.exclusive_lock(path, BioHiCLError("not a lock"))
    try:
        assert fd is not None and fd >= 0 and path.is_file()
        assert atomic.exclusive_lock(path, BioHiCLError("not a lock")) is None  # held (flock: per open file)
    finally:
        atomic.os.close(fd)
    assert _warnings(caplog) == []
