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
    metrics and no function entry), and a built-in task without a data folder (``siml-agreement``) is still read
    back."""
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
