"""The evaluation cache and tasks registered with ``register_task``: their data is in the key only through
``data_folder`` (a folder of the data directory or an absolute file or folder); without one a task is never read
back. A contributor's STS task reading a file outside the data directory read back its old Spearman after the gold
scores were reversed."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np
import pytest

from biohicl import settings
from biohicl.errors import ConfigError
from biohicl.evaluation import cache
from biohicl.evaluation import tasks as registry
from biohicl.evaluation.cache import evaluation_key
from biohicl.evaluation.evaluator import TaskEvaluator
from biohicl.evaluation.sts import evaluate_biosses

#: Pairs with a gold score each (BIOSSES' columns); bag-of-words cosines 0.5, 0, 3 / (2 * sqrt(6)), 0.25 ...
PAIRS = [
    ("the cancer cells study", "cancer cells of patients", 4.0),
    ("the heart disease study", "brain cells of patients", 0.84),
    ("the diabetes patients study", "diabetes patients of patients", 3.5),
    ("the brain cells study", "heart disease of patients", 0.76),
    ("the heart study", "heart disease of patients", 2.0),
    ("the heart disease study", "the heart disease study", 1.1),
]


class WordsEncoder:
    """Bag-of-words counts over a fixed vocabulary (deterministic, no model)."""

    VOCABULARY = ("the", "cancer", "cells", "study", "of", "patients", "heart", "disease", "diabetes", "brain")

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        rows = [[t.split().count(word) for word in self.VOCABULARY] + [1.0] for t in texts]
        return np.asarray(rows, dtype=np.float32)


#: The calls of the registered task (a global: a list in its closure would be in its key, changing with each call).
CALLS: list[str | None] = []


def write_pairs(path, reverse=False):
    lines = ["id\tsentence1\tsentence2\tscore_mean"]
    lines += [f"{i}\t{a}\t{b}\t{10 - score if reverse else score}" for i, (a, b, score) in enumerate(PAIRS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def reverse_gold(path):
    """The review's edit: every gold score ``s`` becomes ``10 - s`` (the same Spearman, negated); the mtime moves
    on by a second so that an edit within one clock tick of the first write is seen as one (the key has size and
    mtime)."""
    before = path.stat().st_mtime_ns
    write_pairs(path, reverse=True)
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def own_sts(tmp_path, monkeypatch):
    """Register ``mysts`` (as the review did) over ``tmp_path/own/mysts.tsv``; returns (register, file, calls)."""
    for table in (registry.TASKS, registry.REPORTED_METRICS, registry.DATA_FOLDERS, registry.DEFAULT_SPLITS):
        monkeypatch.setitem(table, "mysts", None)  # recorded as absent, so removed again after the test
        del table["mysts"]
    path = tmp_path / "own" / "mysts.tsv"
    path.parent.mkdir()
    write_pairs(path)
    CALLS.clear()

    def my_sts(encoder, *, split=None, batch_size=32, limit_queries=None, show_progress_bar=None):
        CALLS.append(split)
        return evaluate_biosses(encoder, path, batch_size=batch_size, show_progress_bar=show_progress_bar)

    def register(**kwargs):
        registry.register_task("mysts", my_sts, reported=["spearman"], default_split="all", **kwargs)

    return register, path, CALLS


def test_a_task_without_a_data_folder_is_never_read_back(tmp_path, own_sts, caplog):
    """The review's repro without ``data_folder``: the cached value came back after the gold was reversed."""
    register, path, calls = own_sts
    register()
    evaluator = TaskEvaluator(["mysts"], cache_dir=str(tmp_path / "cache"))
    before = evaluator(WordsEncoder())["mysts_spearman"]
    assert before > 0.3  # a real correlation, so its negation is another value
    reverse_gold(path)
    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.cache"):
        after = evaluator(WordsEncoder())
    fresh = TaskEvaluator(["mysts"])(WordsEncoder())
    assert after == fresh == {"mysts_spearman": pytest.approx(-before)}
    assert len(calls) == 3  # evaluated every time, the cached record never read
    assert [r.getMessage() for r in caplog.records if "data_folder" in r.getMessage()] == [
        "evaluation cache: task 'mysts' has no data_folder it can fingerprint (register_task(..., data_folder=...)); "
        "it is evaluated afresh each time, never read back"
    ]
    assert evaluation_key(WordsEncoder(), ["mysts"]) != evaluation_key(WordsEncoder(), ["mysts"])


@pytest.mark.parametrize("data_dir", ["set", "none"])
@pytest.mark.parametrize("given", ["folder", "file"])
def test_an_absolute_data_folder_is_read_back_until_its_data_changes(tmp_path, own_sts, monkeypatch, given, data_dir):
    """``data_folder=`` an absolute folder or file: the same data is read back, an edit is a new key, with a data
    directory or without one (before, an absolute folder counted only when a data directory existed)."""
    register, path, calls = own_sts
    if data_dir == "set":
        (tmp_path / "data").mkdir()
        monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "data"))
    else:
        monkeypatch.setattr(settings, "data_dir", lambda required=True: None)
    register(data_folder=str(path.parent) if given == "folder" else path)  # a str or a Path
    evaluator = TaskEvaluator(["mysts"], cache_dir=str(tmp_path / "cache"))
    key = evaluation_key(WordsEncoder(), ["mysts"])
    before = evaluator(WordsEncoder())["mysts_spearman"]
    assert evaluator(WordsEncoder()) == {"mysts_spearman": before} and len(calls) == 1  # read back
    reverse_gold(path)
    assert evaluation_key(WordsEncoder(), ["mysts"]) != key
    after = evaluator(WordsEncoder())
    assert after == TaskEvaluator(["mysts"])(WordsEncoder()) == {"mysts_spearman": pytest.approx(-before)}
    assert len(calls) == 3


def test_a_folder_name_is_read_under_the_data_directory_and_never_read_back_without_one(tmp_path, own_sts, monkeypatch):
    register, path, _ = own_sts
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path))
    register(data_folder="own")  # tmp_path/own holds mysts.tsv
    key = evaluation_key(WordsEncoder(), ["mysts"])
    assert evaluation_key(WordsEncoder(), ["mysts"]) == key
    reverse_gold(path)
    assert evaluation_key(WordsEncoder(), ["mysts"]) != key
    monkeypatch.setattr(settings, "data_dir", lambda required=True: None)  # a name, and no folder to find it in
    assert evaluation_key(WordsEncoder(), ["mysts"]) != evaluation_key(WordsEncoder(), ["mysts"])


def test_registering_again_without_a_data_folder_forgets_the_old_one(tmp_path, own_sts):
    register, path, _ = own_sts
    register(data_folder=str(path))
    assert evaluation_key(WordsEncoder(), ["mysts"]) == evaluation_key(WordsEncoder(), ["mysts"])
    register()
    assert "mysts" not in registry.DATA_FOLDERS
    assert evaluation_key(WordsEncoder(), ["mysts"]) != evaluation_key(WordsEncoder(), ["mysts"])


@pytest.mark.parametrize("bad", ["", "  ", 3, b"/tmp"])
def test_a_data_folder_that_is_no_path_is_refused(own_sts, bad):
    register, _, _ = own_sts
    with pytest.raises(ConfigError, match=r"register_task: mysts: data_folder must be a folder name or a path"):
        register(data_folder=bad)


def test_a_builtin_tasks_key_is_what_it_was(tmp_path, monkeypatch):
    """Committed study caches hold keys of built-in tasks: the parts hashed for them are unchanged (a hand-written
    copy of the record the earlier code hashed: the data directory and the task's folder's files, its reported
    metrics and no function entry, and since session 31 the encoder's truncation, None for one without a config),
    and a built-in task without a data folder (``siml-agreement``) is still read back."""
    biosses = tmp_path / "data" / "biosses" / "biosses.tsv"
    biosses.parent.mkdir(parents=True)
    write_pairs(biosses)
    os.utime(biosses, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "code")
    monkeypatch.setattr(cache, "encoder_fingerprint", lambda model: "encoder")
    root = str((tmp_path / "data").resolve())
    parts = {
        "encoder": "encoder",
        "truncation": {"max_length": None, "truncation_side": None},
        "tasks": ["biosses", "scifact:train", "siml-agreement"],
        "max_queries": 5,
        "data": {
            "data_dir": root,
            "folders": {
                f"{root}/biosses": [["biosses.tsv", biosses.stat().st_size, 1_700_000_000_000_000_000]],
                f"{root}/scifact": [],  # not there: no files
            },
        },
        "code": "code",
        "functions": {
            "biosses": {"reported": ["spearman", "pearson"]},
            "scifact": {"reported": ["ndcg@10", "recall@100", "mrr@10"]},
            "siml-agreement": {"reported": ["spearman"]},
        },
    }
    expected = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
    assert evaluation_key(WordsEncoder(), parts["tasks"], 5) == expected


def test_a_change_under_a_symlinked_subfolder_is_a_new_key(tmp_path, own_sts):
    """The review's repro: ``own/linked -> ../real/sub``; Python 3.11's ``rglob`` did not descend into it, so an edit
    there kept the key and the old metrics were read back. A link back up the tree (a loop) is walked once."""
    register, _, _ = own_sts
    (tmp_path / "real" / "sub").mkdir(parents=True)
    linked = tmp_path / "real" / "sub" / "gold.tsv"
    write_pairs(linked)
    (tmp_path / "own" / "linked").symlink_to(tmp_path / "real" / "sub", target_is_directory=True)
    (tmp_path / "real" / "sub" / "up").symlink_to(tmp_path / "own", target_is_directory=True)  # own/linked/up: own
    register(data_folder=str(tmp_path / "own"))
    files = cache._data_fingerprint(["mysts"])["folders"][str((tmp_path / "own").resolve())]
    assert [name for name, _, _ in files] == ["linked/gold.tsv", "mysts.tsv"]
    assert files[0] == ("linked/gold.tsv", linked.stat().st_size, linked.stat().st_mtime_ns)
    key = evaluation_key(WordsEncoder(), ["mysts"])
    assert evaluation_key(WordsEncoder(), ["mysts"]) == key
    reverse_gold(linked)
    assert evaluation_key(WordsEncoder(), ["mysts"]) != key


def test_an_ordinary_folder_gives_the_files_it_gave_before(tmp_path, own_sts):
    """Without symlinks the walk lists what ``sorted(folder.rglob("*"))`` listed: regular files only (hidden ones
    too), ordered by path parts (``a/b.tsv`` before ``a-c.tsv``, though ``-`` sorts before ``/`` as text)."""
    register, _, _ = own_sts
    own = tmp_path / "own"
    for name in ("a/b.tsv", "a-c.tsv", ".hidden", "a/z/deep.tsv"):
        (own / name).parent.mkdir(parents=True, exist_ok=True)
        (own / name).write_text("x" * len(name), encoding="utf-8")
        os.utime(own / name, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    os.mkfifo(own / "a" / "pipe")  # not a regular file: left out, as before
    register(data_folder=str(own))
    files = cache._data_fingerprint(["mysts"])["folders"][str(own.resolve())]
    mtime = 1_700_000_000_000_000_000
    assert files == [
        (".hidden", 7, mtime),
        ("a/b.tsv", 7, mtime),
        ("a/z/deep.tsv", 12, mtime),
        ("a-c.tsv", 7, mtime),
        ("mysts.tsv", (own / "mysts.tsv").stat().st_size, (own / "mysts.tsv").stat().st_mtime_ns),
    ]


@pytest.mark.parametrize("kind", ["fifo", "missing"])
def test_a_data_folder_that_cannot_be_fingerprinted_is_never_read_back(tmp_path, own_sts, caplog, kind):
    """A ``data_folder`` that is neither a file nor a folder (a FIFO) or is not there had the constant fingerprint
    ``[]``, so the task was read back whatever its data: now its key is unique, with the info line of a task
    without a ``data_folder``."""
    register, _, calls = own_sts
    target = tmp_path / "pipe"
    if kind == "fifo":
        os.mkfifo(target)
    register(data_folder=str(target))
    evaluator = TaskEvaluator(["mysts"], cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.cache"):
        first = evaluator(WordsEncoder())
        assert evaluator(WordsEncoder()) == first
    assert len(calls) == 2  # evaluated both times, never read back
    assert [r.getMessage() for r in caplog.records if "data_folder" in r.getMessage()] == [
        "evaluation cache: task 'mysts' has no data_folder it can fingerprint (register_task(..., data_folder=...)); "
        "it is evaluated afresh each time, never read back"
    ] * 2
    assert evaluation_key(WordsEncoder(), ["mysts"]) != evaluation_key(WordsEncoder(), ["mysts"])


def test_a_tree_over_the_file_cap_is_never_read_back(tmp_path, own_sts, monkeypatch, caplog):
    """Fingerprinting walked any tree in full (``data_folder="/usr"``: 122,192 files, 6.8 s a call); over
    ``MAX_DATA_FILES`` files the walk stops and the task is never read back, with one info line."""
    register, _, _ = own_sts
    assert cache.MAX_DATA_FILES == 100_000  # as docs/evaluation.md says
    monkeypatch.setattr(cache, "MAX_DATA_FILES", 3)
    own = tmp_path / "own"
    (own / "sub").mkdir()
    (own / "sub" / "b.tsv").write_text("b", encoding="utf-8")
    (own / "c.tsv").write_text("c", encoding="utf-8")
    register(data_folder=str(own))  # mysts.tsv, c.tsv, sub/b.tsv: 3 files, at the cap
    assert evaluation_key(WordsEncoder(), ["mysts"]) == evaluation_key(WordsEncoder(), ["mysts"])
    (own / "sub" / "d.tsv").write_text("d", encoding="utf-8")  # 4 files
    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.cache"):
        assert evaluation_key(WordsEncoder(), ["mysts"]) != evaluation_key(WordsEncoder(), ["mysts"])
    assert [r.getMessage() for r in caplog.records] == [
        f"evaluation cache: task 'mysts' reads {own}, a tree of over 3 files, too many to fingerprint; "
        "it is evaluated afresh each time, never read back"
    ] * 2
