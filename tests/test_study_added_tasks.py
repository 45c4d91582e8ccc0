"""Tasks added to a finished study run are evaluated on their own and merged into its ``eval.json``; a setting the
earlier record does not hold (written by older code) is no difference, a setting both hold with other values is
warned about."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_study(tmp_path, tiny_bert_dir):
    from biohicl.models.model import BioHiCL
    from biohicl.study import ReproduceConfig

    config = ReproduceConfig.from_yaml(ROOT / "configs" / "reproduce_tiny.yaml")
    config.output_dir = str(tmp_path / "study")
    return config, config.models[0], BioHiCL.from_base(str(tiny_bert_dir), max_length=128)


@pytest.mark.parametrize(
    ("earlier", "warned"),
    [
        ({"dtype": "float32", "max_length": 128, "device": "cpu"}, None),  # no prompts recorded: older code
        ({"dtype": "float32", "max_length": 64, "device": "cpu"}, "{'max_length': (64, 128)}"),
    ],
)
def test_an_added_task_warns_only_of_settings_both_records_hold(tiny_study, tmp_path, caplog, earlier, warned):
    from biohicl.study.execute import evaluate_encoder

    config, model, encoder = tiny_study
    previous = {"format": 1, "tasks": {}, "summary": {}, "settings": earlier, "wall_time_s": 1.0}
    with caplog.at_level(logging.WARNING, logger="biohicl.study.execute"):
        record = evaluate_encoder(config, model, encoder, "tiny/run", tmp_path / "eval.json", previous=previous)
    assert "biosses" in record["tasks"] and record["settings"] == earlier  # the first settings stay the record's
    assert record["added"][0]["settings"]["query_prompt"] == ""  # what the added task ran with, prompts included
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ([] if warned is None else [f"tiny/run: settings differ from the earlier evaluation ({warned})"])


def test_a_record_whose_summary_lacks_a_main_metric_gets_that_task_evaluated_again(tiny_study, tmp_path):
    """A damaged ``eval.json`` (its summary lacks ``biosses/spearman``) is no finished run: the task is evaluated
    again and merged, giving the same number, and the record then counts as done."""
    from biohicl.study.execute import evaluate_encoder
    from biohicl.study.plan import missing_tasks

    config, model, encoder = tiny_study
    first = evaluate_encoder(config, model, encoder, "tiny/run", tmp_path / "eval.json")
    tasks = config.model_tasks(model)
    assert "biosses" in tasks and missing_tasks(first, tasks) == []
    damaged = {**first, "summary": {k: v for k, v in first["summary"].items() if k != "biosses/spearman"}}
    assert missing_tasks(damaged, tasks) == ["biosses"]
    again = evaluate_encoder(config, model, encoder, "tiny/run", tmp_path / "eval.json", previous=damaged)
    assert again["added"][0]["tasks"] == ["biosses"]
    assert again["summary"]["biosses/spearman"] == pytest.approx(first["summary"]["biosses/spearman"], abs=1e-6)
    assert missing_tasks(again, tasks) == []
