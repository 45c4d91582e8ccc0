"""``training_summary.json``'s ``source_git`` and ``versions`` name the software that trained the run, taken as each
process's training begins and kept in each checkpoint (review, session 37): they were read when the run ended, so a
commit made in the checkout during a long run, or a resume under newer code, was named as the commit that trained it
and the model card pinned it. A resumed run trained by other software than its checkpoint's lists each value."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest
from transformers import TrainerCallback

from tests.test_resume_inputs import drop_from_record, make_args, source_record, train, write_documents


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A scratch checkout of one commit whose ``biohicl/`` folder is the source ``git_revision`` reads."""
    import biohicl.training.summary as summary_module
    from biohicl.provenance import git_revision

    package = tmp_path / "checkout" / "biohicl"
    package.mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n", encoding="utf-8")
    git(package.parent, "init", "-q")
    for setting in (("user.email", "t@example.org"), ("user.name", "t"), ("commit.gpgsign", "false")):
        git(package.parent, "config", *setting)
    git(package.parent, "add", ".")
    git(package.parent, "commit", "-q", "-m", "one")
    monkeypatch.setattr(summary_module, "git_revision", functools.partial(git_revision, package))
    return package.parent


def commit_an_edit(checkout: Path) -> str:
    (checkout / "biohicl" / "a.py").write_text("A = 2\n", encoding="utf-8")
    git(checkout, "commit", "-q", "-am", "edited while the run trained")
    return git(checkout, "rev-parse", "HEAD")


class CommitAfterFirstStep(TrainerCallback):
    def __init__(self, checkout: Path):
        self.checkout = checkout

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            commit_an_edit(self.checkout)


@pytest.fixture
def documents(tmp_path) -> Path:
    path = tmp_path / "documents.jsonl"
    write_documents(path, per_topic=6)
    return path


def test_a_commit_made_while_the_run_trains_is_not_the_one_the_summary_names(
    tiny_bert_dir, documents, checkout, tmp_path
):
    from biohicl.provenance import library_versions
    from biohicl.training.run import train_biohicl

    began = git(checkout, "rev-parse", "HEAD")
    out = tmp_path / "run"
    train_biohicl(make_args(tiny_bert_dir, documents, out), callbacks=[CommitAfterFirstStep(checkout)])
    summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
    assert git(checkout, "rev-parse", "HEAD") != began  # committed mid-run, clean
    assert summary["source_git"] == {"commit": began, "dirty": False}
    assert summary["versions"] == library_versions()
    assert source_record(out / "checkpoint-2")["source_git"] == [{"commit": began, "dirty": False}]


def test_a_resume_under_another_commit_lists_both(tiny_bert_dir, documents, checkout, tmp_path):
    """A card pins ``source_git`` only when it is one clean commit (a mapping); a resumed run trained by two is a list
    of both, in order."""
    out = tmp_path / "run"
    first = {"commit": git(checkout, "rev-parse", "HEAD"), "dirty": False}
    assert train(tiny_bert_dir, documents, out)["source_git"] == first
    resumed = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    assert resumed["source_git"] == first  # resumed under the same commit: one

    second = {"commit": commit_an_edit(checkout), "dirty": False}
    resumed = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    assert resumed["source_git"] == [first, second]
    assert source_record(out / "checkpoint-2")["source_git"] == [first, second]

    # a checkpoint of code before the record: the software of its steps is unknown
    drop_from_record(out / "checkpoint-1", "source_git", "versions")
    resumed = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    assert resumed["source_git"] == ["unknown", second] and resumed["versions"][0] == "unknown"
