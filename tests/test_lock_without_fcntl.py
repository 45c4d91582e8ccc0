"""Without ``fcntl`` (Windows) the one-run-per-folder locks cannot be taken: :func:`biohicl.atomic.exclusive_lock`
says so in one warning line naming the lock file, instead of a second run into the folder going unrefused silently;
``biohicl train``'s and ``biohicl index``'s folder locks (:mod:`biohicl.folder_lock`) say it once and run."""

from __future__ import annotations

import json
import logging

import pytest

from biohicl import atomic
from biohicl.errors import BioHiCLError
from biohicl.search.folder_setup import index_folder_lock
from biohicl.training.run_lock import run_folder_lock
from tests.conftest import synthetic_documents


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


def _train_lock_runs(tiny_bert_dir, docs_file, out) -> None:
    from test_trainer import make_args

    from biohicl.training.run import train_biohicl

    train_biohicl(make_args(tiny_bert_dir, docs_file, out, max_steps=2))
    assert json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["global_step"] == 2


def _index_lock_runs(tiny_bert_dir, tmp_path, out) -> None:
    from biohicl.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"cells {i}"}) + "\n" for i in range(6)))
    command = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--no_progress"]
    assert main([*command, "--device", "cpu", "--shard_size", "4"]) == 0  # the CLI's lock, and build_index's inside
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["count"] == 6


@pytest.mark.parametrize(("command", "lock_name"), [("train", ".train.lock"), ("index", ".index.lock")])
def test_without_fcntl_train_and_index_warn_once_and_run_unlocked(
    command,
    lock_name,
    tiny_bert_dir,
    tmp_path,
    monkeypatch,
    caplog,
):
    """``biohicl train``'s and ``biohicl index``'s folder locks go through :func:`biohicl.atomic.can_lock`: on
    Windows the run says in one warning line that a second run into its folder is not refused, then runs (the lock
    taken again inside the run, by ``build_index`` under the CLI's hold, warns no second time)."""
    monkeypatch.setattr(atomic, "fcntl", None, raising=False)  # Windows: `import fcntl` fails
    out = tmp_path / "new" / "out"
    with caplog.at_level(logging.WARNING):
        if command == "train":
            docs = tmp_path / "documents.jsonl"
            docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
            _train_lock_runs(tiny_bert_dir, docs, out)
        else:
            _index_lock_runs(tiny_bert_dir, tmp_path, out)
    lock = out.resolve() / lock_name
    warned = [message for message in _warnings(caplog) if "file locks" in message]
    assert warned == [
        f"{lock}: this platform has no file locks (fcntl), so a second run into {out.resolve()} is not refused "
        "while this one runs"
    ]
    assert not lock.exists()  # nothing locked, no lock file written


@pytest.mark.parametrize(("hold", "lock_name"), [(run_folder_lock, ".train.lock"), (index_folder_lock, ".index.lock")])
def test_without_fcntl_a_nested_hold_warns_once_and_makes_nothing(hold, lock_name, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(atomic, "fcntl", None, raising=False)
    out = tmp_path / "new" / "out"
    ran = []
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"):
        with hold(out):
            ran.append("outer")
            with hold(out):  # a run inside a run (build_index inside the CLI's hold): no second warning
                ran.append("inner")
        with hold(out, main=False):  # another process of a distributed run: the main one warns
            ran.append("other rank")
    assert ran == ["outer", "inner", "other rank"]
    assert len(_warnings(caplog)) == 1 and _warnings(caplog)[0].startswith(f"{out.resolve() / lock_name}: ")
    assert list(tmp_path.iterdir()) == []  # no folder made, no lock file


def test_index_help_gives_the_refusal_its_platform_caveat(capsys):
    from biohicl.cli.main import main

    with pytest.raises(SystemExit):
        main(["index", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "One run at a time in an output folder: another run into it is refused while one runs (Linux, macOS; on "
        "Windows, which has no file locks, it is not refused, and the run says so in a warning: start one at a "
        "time)." in help_text
    )
