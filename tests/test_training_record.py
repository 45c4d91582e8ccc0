"""What ``training_summary.json`` records of the software and the time a run took (reproducibility review, session
36, items 3 and 9): the library versions evaluation records keep (``versions``) and the git commit of the biohicl
source tree where it is a checkout (``source_git``); and, across resumes, the whole run's runtime and documents, so a
resume (one at the last step, which trains nothing, too) keeps the figures of the steps its checkpoint holds and adds
its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.test_resume_inputs import drop_from_record, source_record, train, write_documents


@pytest.fixture
def documents(tmp_path) -> Path:
    path = tmp_path / "documents.jsonl"
    write_documents(path, per_topic=6)  # 24 documents: batches of 8, 8 documents a step
    return path


def test_a_resume_keeps_the_figures_of_the_steps_its_checkpoint_holds_and_adds_its_own(
    tiny_bert_dir, documents, tmp_path
):
    out = tmp_path / "run"
    whole = train(tiny_bert_dir, documents, out)
    assert (whole["documents_trained"], whole["runtime_from_step"], whole["resumed_at_step"]) == (16, 0, None)
    first, last = source_record(out / "checkpoint-1"), source_record(out / "checkpoint-2")
    assert (first["documents_trained"], last["documents_trained"]) == (8, 16)  # up to each save
    assert 0 < first["train_runtime_s"] <= last["train_runtime_s"] and 0 < first["runtime_s"] <= last["runtime_s"]

    # resumed at step 1: step 1's figures as its checkpoint kept them, then this process's
    resumed = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    assert (resumed["documents_trained"], resumed["runtime_from_step"], resumed["resumed_at_step"]) == (16, 0, 1)
    assert resumed["runtime_s"] > first["runtime_s"]
    assert resumed["documents_per_second"] < 16 / first["train_runtime_s"]  # over both parts' training time

    # a finished run resumed at its last step trains nothing and keeps its figures, adding this process's time
    last = source_record(out / "checkpoint-2")
    finished = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-2"))
    assert (finished["documents_trained"], finished["runtime_from_step"], finished["resumed_at_step"]) == (16, 0, 2)
    assert finished["documents_per_second"] == round(16 / last["train_runtime_s"], 3)
    assert finished["runtime_s"] >= last["runtime_s"]


def test_a_checkpoint_without_figures_counts_them_from_its_step(tiny_bert_dir, documents, tmp_path):
    out = tmp_path / "run"
    train(tiny_bert_dir, documents, out)
    drop_from_record(out / "checkpoint-1", "runtime_s", "train_runtime_s", "documents_trained", "runtime_from_step")
    resumed = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    assert (resumed["documents_trained"], resumed["runtime_from_step"]) == (8, 1)  # step 2's alone
    assert source_record(out / "checkpoint-2")["runtime_from_step"] == 1


def test_the_summary_records_the_library_versions_and_the_source_commit(
    tiny_bert_dir, documents, tmp_path, monkeypatch
):
    import biohicl.training.summary as summary_module
    from biohicl.evaluation import record_model
    from biohicl.provenance import library_versions

    assert record_model.library_versions is library_versions  # one function, in the foundation
    monkeypatch.setattr(summary_module, "git_revision", lambda: {"commit": "a" * 40, "dirty": True})
    summary = train(tiny_bert_dir, documents, tmp_path / "run")
    assert summary["versions"] == library_versions()
    assert {"python", "torch", "transformers", "peft", "accelerate", "datasets", "numpy"} <= set(summary["versions"])
    assert summary["source_git"] == {"commit": "a" * 40, "dirty": True}


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def committed(package: Path) -> Path:
    """``package``'s parent made a git checkout with one commit of what it holds; the checkout."""
    checkout = package.parent
    git(checkout, "init", "-q")
    for setting in (("user.email", "t@example.org"), ("user.name", "t"), ("commit.gpgsign", "false")):
        git(checkout, "config", *setting)
    git(checkout, "add", ".")
    git(checkout, "commit", "-q", "-m", "one")
    return checkout


def test_the_source_commit_is_the_checkouts_head_and_says_whether_the_package_was_changed(tmp_path):
    from biohicl.provenance import git_revision

    package = tmp_path / "checkout" / "biohicl"
    package.mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n", encoding="utf-8")
    assert git_revision(package) is None  # no checkout
    checkout = committed(package)
    head = git(checkout, "rev-parse", "HEAD")
    assert git_revision(package) == {"commit": head, "dirty": False}
    (checkout / "notes.txt").write_text("not the package\n", encoding="utf-8")
    assert git_revision(package) == {"commit": head, "dirty": False}  # outside the package: not its source
    (package / "a.py").write_text("A = 2\n", encoding="utf-8")
    assert git_revision(package) == {"commit": head, "dirty": True}
    # an installed package inside another project's checkout names no commit: the checkout is not its source
    installed = checkout / "venv" / "site-packages" / "biohicl"
    installed.mkdir(parents=True)
    assert git_revision(installed) is None


@pytest.mark.slow
def test_a_two_process_runs_checkpoints_count_both_processes_documents(tiny_bert_dir, documents, tmp_path):
    """Each checkpoint keeps the documents of all processes (summed at each step that may save), so a two-process
    resume adds its steps' to its checkpoint's: 24 documents, 3 batches of 4 a process, 8 a step."""
    import yaml

    from tests.conftest import run_torchrun

    out, config = tmp_path / "ddp", tmp_path / "ddp.yaml"
    values = dict(
        output_dir=str(out), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(documents), max_steps=3, per_device_train_batch_size=4, max_length=32,
        save_strategy="steps", save_steps=1, report_to="none", lora_target_modules=["query", "value"], seed=7,
        disable_tqdm=True,
    )  # fmt: skip
    config.write_text(yaml.safe_dump(values))
    for resume in ([], ["--resume_from_checkpoint", str(out / "checkpoint-1")]):
        proc = run_torchrun(["-m", "biohicl.cli.main", "train", "--config", str(config), *resume], timeout=600)
        assert proc.returncode == 0, proc.stderr[-8000:]
        assert [source_record(out / f"checkpoint-{step}")["documents_trained"] for step in (1, 2, 3)] == [8, 16, 24]
        summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
        assert (summary["documents_trained"], summary["runtime_from_step"]) == (24, 0)


def test_reading_the_source_commit_never_writes_the_checkouts_index(tmp_path):
    # a plain `git status` refreshes a stale index and takes .git/index.lock to write it: a `git commit` of the
    # user's at that moment failed "Unable to create '.git/index.lock'"
    import os

    from biohicl.provenance import git_revision

    package = tmp_path / "checkout" / "biohicl"
    package.mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n", encoding="utf-8")
    checkout = committed(package)
    stat = (package / "a.py").stat()
    os.utime(package / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, a stale index entry
    index = checkout / ".git" / "index"
    before = index.read_bytes()
    assert git_revision(package)["dirty"] is False
    assert index.read_bytes() == before
