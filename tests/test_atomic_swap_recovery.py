"""What ``atomic_directory`` does with the previous folder a killed swap left (``.<name>.old-<pid>``), and with a
target that is a symlink: the previous folder is put back even when the pid in its name is this process's own (a
container runs biohicl as pid 1 every time), a leftover that is a link is unlinked (its target untouched), only the
names biohicl writes are touched, and each removal is a line in the log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from biohicl.atomic import atomic_directory, recover_swapped_folder
from biohicl.errors import BioHiCLError


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_previous_folder_named_with_this_process_pid_is_put_back_not_deleted(tmp_path):
    """In a container biohicl is pid 1 on every run: the previous folder a killed run left as ``.out.old-1`` was
    skipped (its pid 'runs': this process), so the next call built as if there were none and the one after deleted
    it."""
    left = tmp_path / f".out.old-{os.getpid()}"
    left.mkdir()
    (left / "model.safetensors").write_text("weights")
    with pytest.raises(BioHiCLError, match="already exists"), atomic_directory(tmp_path / "out", overwrite=False):
        pass
    assert (tmp_path / "out" / "model.safetensors").read_text() == "weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_save_left_by_this_process_pid_is_recovered(tmp_path):
    from biohicl.data.storage import recover_interrupted_save

    left = tmp_path / f".pairs.old-{os.getpid()}"
    left.mkdir()
    (left / "README.md").write_text("card")
    (tmp_path / f".pairs.tmp-{os.getpid()}").mkdir()
    recover_interrupted_save(tmp_path / "pairs")
    assert (tmp_path / "pairs" / "README.md").read_text() == "card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_a_linked_target_is_written_through_the_link_which_stays_a_link(tmp_path):
    real = tmp_path / "scratch" / "real"
    real.mkdir(parents=True)
    (real / "old.txt").write_text("old")
    link = tmp_path / "out"
    link.symlink_to(real, target_is_directory=True)
    with atomic_directory(link) as tmp:
        (tmp / "new.txt").write_text("new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scratch"]
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["real"]


def test_a_leftover_that_is_a_link_is_unlinked_and_its_target_kept(tmp_path, caplog):
    real = tmp_path / "scratch" / "real"
    real.mkdir(parents=True)
    (real / "kept.txt").write_text("kept")
    (tmp_path / "out").mkdir()
    stale = tmp_path / f".out.old-{dead_pid()}"
    stale.symlink_to(real, target_is_directory=True)
    with caplog.at_level(logging.INFO, logger="biohicl.atomic"):
        recover_swapped_folder(tmp_path / "out")
    assert not stale.is_symlink() and (real / "kept.txt").read_text() == "kept"
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'out'}: removed {stale.name}, the previous folder a killed run left (the folder is there)"
    ]


def test_a_leftover_link_with_the_target_missing_is_put_back(tmp_path):
    real = tmp_path / "scratch" / "real"
    real.mkdir(parents=True)
    stale = tmp_path / f".out.old-{dead_pid()}"
    stale.symlink_to(real, target_is_directory=True)
    recover_swapped_folder(tmp_path / "out")
    assert (tmp_path / "out").is_symlink() and os.readlink(tmp_path / "out") == str(real) and not stale.is_symlink()


def test_only_the_names_biohicl_writes_are_removed_and_each_removal_is_logged(tmp_path, caplog):
    (tmp_path / "out").mkdir()
    pid = dead_pid()
    for name in (f".out.old{pid}", ".out.older", f".out.old-{pid}x", f".out.old-{pid}", ".out.old"):
        (tmp_path / name).mkdir()
    with caplog.at_level(logging.INFO, logger="biohicl.atomic"):
        recover_swapped_folder(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".out.old{pid}", ".out.older", f".out.old-{pid}x",
                                                                 "out"])  # fmt: skip
    assert sorted(r.getMessage() for r in caplog.records) == sorted(
        f"{tmp_path / 'out'}: removed {name}, the previous folder a killed run left (the folder is there)"
        for name in (f".out.old-{pid}", ".out.old")
    )


def test_a_leftover_that_cannot_be_removed_says_not_removed(tmp_path, monkeypatch, caplog):
    import shutil

    (tmp_path / "out").mkdir()
    stale = tmp_path / f".out.old-{dead_pid()}"
    stale.mkdir()

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refused)
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"):
        recover_swapped_folder(tmp_path / "out")
    assert stale.is_dir()
    assert [r.getMessage() for r in caplog.records] == [
        f"{stale}: left by a killed run, not removed (Permission denied)"
    ]


def test_a_ctrl_c_right_after_the_new_folder_is_renamed_in_keeps_it_and_raises_the_interrupt(tmp_path, monkeypatch):
    """A KeyboardInterrupt landing once ``os.replace(tmp, target)`` has returned: the swap tried to put the previous
    folder back onto the new one and raised ``OSError: Directory not empty`` instead of the interrupt, the previous
    folder left aside."""
    import biohicl.atomic as atomic

    target = tmp_path / "soup"
    target.mkdir()
    (target / "old.txt").write_text("previous")
    real = os.replace

    def replace_then_interrupt(src, dst):
        real(src, dst)
        if str(src).endswith(".tmp") and os.fspath(dst) == os.fspath(target):
            raise KeyboardInterrupt  # delivered just after the rename returned

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt) as raised, atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert raised.value.__context__ is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soup"]
    assert [(p.name, p.read_text()) for p in target.iterdir()] == [("new.txt", "new")]
