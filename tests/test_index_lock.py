"""Two ``biohicl index`` runs into one output folder both rewrote its manifest and files: the second is refused in
one line naming the folder and the first one's pid, before its model loads; the lock is gone once a run ends, and a
lock file a killed run left there (no process holds its ``flock``) stops nobody."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from biohicl.errors import ConfigError
from biohicl.search.folder_setup import LOCK_NAME, index_folder_lock
from biohicl.search.layout import MANIFEST_NAME, SETTINGS_NAME


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"cells {i}"}) + "\n" for i in range(6)))
    return corpus


def _index(corpus: Path, model: Path | str, out: Path) -> list[str]:
    return ["index", str(corpus), "--model", str(model), "--output", str(out), "--no_progress", "--device", "cpu"]


def _hold(lock: Path, pid: str) -> int:
    """Another run's lock: a flock on another open file description conflicts, in this process too."""
    lock.write_text(pid, encoding="utf-8")
    held = os.open(lock, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return held


def _refusal(out: Path, pid: str) -> str:
    return (
        f"{out}: in use by another biohicl index run (pid {pid}, in {LOCK_NAME}); wait for it to end, or index into "
        "another folder"
    )


def test_a_second_index_run_into_a_folder_in_use_is_refused_naming_the_holder(tiny_bert_dir, tmp_path, capsys):
    from biohicl.cli.main import main

    corpus, out = _corpus(tmp_path), tmp_path / "idx"
    assert main([*_index(corpus, tiny_bert_dir, out), "--shard_size", "4"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert LOCK_NAME not in before  # released and removed at the end of the run
    capsys.readouterr()
    held = _hold(out / LOCK_NAME, "4242")
    try:
        assert main([*_index(corpus, tiny_bert_dir, out), "--shard_size", "4"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(_refusal(out, "4242")) and "\n" not in err
        # refused before the model loads: a missing model is not what it says
        assert main(_index(corpus, tmp_path / "no-such-model", out)) == 2
        assert capsys.readouterr().err.strip().endswith(_refusal(out, "4242"))
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK_NAME}
        assert after == before  # nothing rewritten; the holder's lock file left alone
        assert (out / LOCK_NAME).read_text(encoding="utf-8") == "4242"
    finally:
        os.close(held)


def test_a_lock_file_left_by_a_killed_run_is_harmless_and_removed(tiny_bert_dir, tmp_path):
    from biohicl.cli.main import main

    corpus, out = _corpus(tmp_path), tmp_path / "idx"
    out.mkdir()
    (out / LOCK_NAME).write_text("999999", encoding="utf-8")  # its flock went with its process
    assert main([*_index(corpus, tiny_bert_dir, out), "--shard_size", "4"]) == 0
    assert json.loads((out / MANIFEST_NAME).read_text())["count"] == 6
    assert not (out / LOCK_NAME).exists()


def test_build_index_takes_the_lock_too(tiny_bert_dir, tmp_path):
    from biohicl.models import BioHiCL
    from biohicl.search.indexing import build_index

    model = BioHiCL.from_base(str(tiny_bert_dir), pooling="mean", max_length=32)
    corpus, out = _corpus(tmp_path), tmp_path / "idx"
    out.mkdir()
    held = _hold(out / LOCK_NAME, "4242")
    try:
        with pytest.raises(ConfigError) as raised:
            build_index(model, corpus, out, shard_size=4)
        assert str(raised.value) == _refusal(out, "4242")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # no settings.json, no shard
    finally:
        os.close(held)
    with index_folder_lock(out):  # the CLI's hold: build_index inside it takes no second lock
        manifest = build_index(model, corpus, out, shard_size=4)
        assert (out / LOCK_NAME).read_text(encoding="utf-8") == str(os.getpid())
    assert manifest.count == 6 and (out / SETTINGS_NAME).is_file() and not (out / LOCK_NAME).exists()


def test_the_lock_records_the_pid_and_a_new_folder_nothing_was_written_to_is_removed(tmp_path):
    out = tmp_path / "new" / "idx"
    with index_folder_lock(out):
        assert (out / LOCK_NAME).read_text(encoding="utf-8") == str(os.getpid())
    assert list(tmp_path.iterdir()) == []  # both folders it made: removed
    with index_folder_lock(out, main=False):  # another process of a distributed run: rank 0 locks
        assert not out.exists()


def test_a_refused_fresh_start_leaves_no_folder(tiny_bert_dir, tmp_path, capsys):
    """A run into a new folder whose corpus has no documents: its settings.json and the folders it made go."""
    from biohicl.cli.main import main

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "new" / "idx"
    assert main(_index(empty, tiny_bert_dir, out)) == 2
    assert "no documents" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl"]
