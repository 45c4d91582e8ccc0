"""A checkpoint whose ``trainer_state.json`` was cut short (a full disk or a kill while transformers wrote it, last
and in place: 0 bytes, or half a file) is an incomplete checkpoint, as one without the file: ``last`` resumes the
newest whole one, a fresh run of the same settings is not stopped by it, one warning line names the file; a resume
naming it is refused in one line naming the file and the newest whole earlier checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from test_trainer import TrainedSteps, make_args

from biohicl.errors import DataError
from biohicl.training.run import train_biohicl
from tests.conftest import synthetic_documents

RUN = dict(max_steps=6, save_strategy="steps", save_steps=2)


@pytest.fixture(scope="module")
def finished_run(tiny_bert_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A 6-step run with checkpoints at steps 2, 4 and 6, and its documents file."""
    root = tmp_path_factory.mktemp("resume_torn")
    documents = root / "documents.jsonl"
    documents.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    out = root / "run"
    train_biohicl(make_args(tiny_bert_dir, documents, out, **RUN))
    return out, documents


def _cut_run(finished_run, tmp_path, torn: bytes) -> tuple[Path, Path]:
    """The run stopped while checkpoint-4 was saved: no checkpoint-6, no final files, checkpoint-4's state ``torn``."""
    out = tmp_path / "run"
    out.mkdir()
    for step in (2, 4):
        shutil.copytree(finished_run[0] / f"checkpoint-{step}", out / f"checkpoint-{step}")
    state = out / "checkpoint-4" / "trainer_state.json"
    state.write_bytes(torn)
    return out, state


@pytest.mark.parametrize("torn", [b"", b'{"best_global_step": null, "best_metric": nu'])
def test_last_resumes_the_newest_whole_checkpoint_saying_which_was_skipped(
    tiny_bert_dir, finished_run, tmp_path, caplog, torn
):
    out, state = _cut_run(finished_run, tmp_path, torn)
    steps = TrainedSteps()
    args = make_args(tiny_bert_dir, finished_run[1], out, resume_from_checkpoint="last", **RUN)
    with caplog.at_level(logging.WARNING, logger="biohicl"):
        train_biohicl(args, callbacks=[steps])
    assert steps.steps == [2, 3, 4, 5]  # from checkpoint-2
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    said = [r.getMessage() for r in caplog.records if str(state) in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith(f"{state}: damaged or truncated (line 1: not valid JSON (")
    assert said[0].endswith("); checkpoint-4 is skipped as incomplete")


def test_a_fresh_run_of_the_same_settings_is_not_stopped_by_it(tiny_bert_dir, finished_run, tmp_path):
    out, _ = _cut_run(finished_run, tmp_path, b"")
    train_biohicl(make_args(tiny_bert_dir, finished_run[1], out, **RUN))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4  # saved anew


def test_a_resume_naming_it_is_refused_naming_the_file_and_the_earlier_checkpoint(
    tiny_bert_dir, finished_run, tmp_path
):
    out, state = _cut_run(finished_run, tmp_path, b"")
    args = make_args(tiny_bert_dir, finished_run[1], out, resume_from_checkpoint=str(out / "checkpoint-4"), **RUN)
    with pytest.raises(DataError) as raised:
        train_biohicl(args)
    assert str(raised.value) == (
        f"{state}: damaged or truncated (line 1: not valid JSON (Expecting value at column 1)); resume from the "
        f"earlier checkpoint {out / 'checkpoint-2'} (--resume_from_checkpoint {out / 'checkpoint-2'}) or start a "
        "fresh run"
    )
    assert state.read_bytes() == b""  # untouched
