"""Two training runs into one ``--output_dir`` at once mixed their checkpoints and final files and both reported
success: the second is refused in one line naming the folder and the first one's pid, before it reads or writes
anything there; the lock is gone once a run ends, and a refused run into a new folder leaves no folder."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from test_trainer import docs_file, make_args  # noqa: F401  (docs_file is a fixture)

from biohicl.errors import ConfigError
from biohicl.training.run import train_biohicl
from biohicl.training.run_lock import LOCK_NAME, run_folder_lock


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_holder(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    lock = out / LOCK_NAME
    lock.write_text("4242", encoding="utf-8")
    held = os.open(lock, os.O_RDWR)  # another run's: a flock on another open file conflicts, in this process too
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError) as raised:
            train_biohicl(make_args(tiny_bert_dir, docs_file, out, max_steps=2))
        assert str(raised.value) == (
            f"output_dir: {out} is in use by another training run (pid 4242, in .train.lock); wait for it to end, or "
            "train in another --output_dir"
        )
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written; its lock file left alone
    finally:
        os.close(held)

    train_biohicl(make_args(tiny_bert_dir, docs_file, out, max_steps=2))  # once it ended
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert not lock.exists()


def test_the_lock_records_the_pid_and_a_refused_run_leaves_no_new_folder(tmp_path):
    out = tmp_path / "new" / "run"
    with run_folder_lock(out):
        assert (out / LOCK_NAME).read_text() == str(os.getpid())
        with run_folder_lock(out):  # the same process again (a run trained inside a run): no second lock
            pass
        assert (out / LOCK_NAME).is_file()
    assert not out.exists()  # made for the lock, nothing written: removed
    with run_folder_lock(out, main=False):  # another process of a distributed run: the main one locks
        assert not out.exists()


def test_every_folder_the_lock_made_is_removed_when_nothing_was_written(tmp_path):
    """``--output_dir lk2/a/run`` under a missing ``lk2``: the lock makes all three, and a run refused before it
    writes (a missing dataset) removes all three, not only ``run``."""
    out = tmp_path / "lk2" / "a" / "run"
    with run_folder_lock(out):
        assert out.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_written_to_is_kept_and_so_are_those_above_it(tmp_path):
    (tmp_path / "lk2").mkdir()  # there before the run: never removed
    out = tmp_path / "lk2" / "a" / "run"
    with run_folder_lock(out):
        (tmp_path / "lk2" / "a" / "notes.txt").write_text("kept", encoding="utf-8")  # written beside the run
    assert sorted(p.name for p in (tmp_path / "lk2").iterdir()) == ["a"]
    assert sorted(p.name for p in (tmp_path / "lk2" / "a").iterdir()) == ["notes.txt"]  # the empty run folder: gone
    with run_folder_lock(tmp_path / "lk2" / "b" / "run"):
        (tmp_path / "lk2" / "b" / "run" / "model.safetensors").write_text("x", encoding="utf-8")
    assert (tmp_path / "lk2" / "b" / "run" / "model.safetensors").is_file()


def test_a_relative_output_dir_removes_what_it_made_from_where_it_was_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with run_folder_lock("lk2/a/run"):
        assert (tmp_path / "lk2" / "a" / "run").is_dir()
    assert list(tmp_path.iterdir()) == []
