"""``BioHiCLTrainer`` evaluates through its evaluator only: a dataset to score or model-output keys to ignore (the
arguments transformers' ``Trainer`` takes) are refused in one line, not silently passed over for the evaluator's
tasks."""

from __future__ import annotations

import pytest
from datasets import Dataset
from test_trainer import docs_file, make_args  # noqa: F401  (docs_file is a fixture)

from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL
from biohicl.training.trainer import BioHiCLTrainer

DATASET = r"^eval_dataset: BioHiCLTrainer scores its evaluator's tasks, not a dataset given to it; to score other "
KEYS = r"^ignore_keys: BioHiCLTrainer\.evaluate gathers no model outputs to leave out"


def test_a_dataset_or_keys_to_ignore_are_refused_not_passed_over(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    calls = []

    def evaluator(model):
        calls.append(1)
        return {"my_task_score": 0.5}

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "o")
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    trainer = BioHiCLTrainer(model=model, args=args, evaluator=evaluator)
    mine = Dataset.from_dict({"text": ["heart", "brain"], "labels": [["D006331"], ["D001927"]]})
    with pytest.raises(ConfigError, match=DATASET + r".*evaluator="):
        trainer.evaluate(eval_dataset=mine)
    with pytest.raises(ConfigError, match=KEYS):
        trainer.evaluate(ignore_keys=["my_task_score"])
    with pytest.raises(ConfigError, match=KEYS):
        trainer.train(ignore_keys_for_eval=["my_task_score"])  # refused before training, not at its first evaluation
    assert calls == [] and trainer.state.global_step == 0
    metrics = trainer.evaluate(ignore_keys=[])
    assert calls == [1] and metrics["eval_my_task_score"] == 0.5
    with pytest.raises(ConfigError, match=DATASET):
        BioHiCLTrainer(model=model, args=args, evaluator=evaluator, eval_dataset=mine)
