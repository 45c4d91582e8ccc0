"""How many processes trained, and on how many documents per optimizer step: ``training_summary.json``'s
``world_size``, ``batches_per_epoch`` (all processes), ``batches_per_epoch_per_process`` and
``documents_per_optimizer_step``, and the model card's rows for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_torchrun, synthetic_documents
from test_trainer import make_values

from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.summary import batch_scale


class _Batches:
    """A batch sampler of ``n`` batches of ``batch_size`` (only its length and batch size are read)."""

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size = n, batch_size

    def __len__(self) -> int:
        return self.n


def _args(tmp_path: Path, **overrides) -> BioHiCLTrainingArguments:
    values = dict(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", per_device_train_batch_size=4)
    return BioHiCLTrainingArguments(**{**values, **overrides})


def test_batch_scale_counts_processes_batches_and_documents_per_step(tmp_path):
    args = _args(tmp_path, gradient_accumulation_steps=2)
    # 5 batches of 4 over 2 processes: 3 each (the second process loops back to the first batch), 4 × 2 × 2 documents
    assert batch_scale(_Batches(5, 4), args, world_size=2) == {
        "world_size": 2,
        "batches_per_epoch": 5,
        "batches_per_epoch_per_process": 3,
        "documents_per_optimizer_step": 16,
    }
    assert batch_scale(_Batches(5, 4), args, world_size=1) == {
        "world_size": 1,
        "batches_per_epoch": 5,
        "batches_per_epoch_per_process": 5,
        "documents_per_optimizer_step": 8,
    }
    # without even_batches the second process runs 2; with split_batches each batch is split, so 4 × 2 documents
    uneven = _args(tmp_path, accelerator_config={"even_batches": False})
    assert batch_scale(_Batches(5, 4), uneven, world_size=2, process_index=1)["batches_per_epoch_per_process"] == 2
    split = batch_scale(
        _Batches(5, 4), _args(tmp_path, gradient_accumulation_steps=2, accelerator_config={"split_batches": True}), 2
    )
    assert (split["batches_per_epoch_per_process"], split["documents_per_optimizer_step"]) == (5, 8)


def _run_folder(tmp_path: Path, summary: dict) -> Path:
    run = tmp_path / "card-run"
    run.mkdir(parents=True)
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 256}
    args = {"learning_rate": 1e-4, "per_device_train_batch_size": 4, "max_steps": 2}
    for name, values in (("biohicl_config", config), ("biohicl_training_args", args), ("training_summary", summary)):
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


def test_card_shows_world_size_and_documents_per_step_after_the_batch_size_and_nothing_for_an_old_run(tmp_path):
    summary = {"global_step": 2, "world_size": 2, "batches_per_epoch": 5, "documents_per_optimizer_step": 8}
    data = BioHiCLModelCardData.from_run_dir(_run_folder(tmp_path / "new", summary), "M")
    assert list(data.hyperparameters) == [
        "learning_rate", "per_device_train_batch_size", "world_size", "documents_per_optimizer_step", "max_steps"
    ]  # fmt: skip
    text = render_model_card(data)
    assert "| `per_device_train_batch_size` | 4 |\n| `world_size` | 2 |\n| `documents_per_optimizer_step` | 8 |" in text
    # a run folder written before these were recorded: no row for them, no error
    old = BioHiCLModelCardData.from_run_dir(_run_folder(tmp_path / "old", {"global_step": 2}), "M")
    assert list(old.hyperparameters) == ["learning_rate", "per_device_train_batch_size", "max_steps"]
    assert "world_size" not in render_model_card(old)


def _values(tiny_bert_dir: Path, tmp_path: Path, output: str, **overrides) -> dict:
    docs = tmp_path / "documents.jsonl"  # 4 topics × 5 training documents (the 6th of each is a test document)
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    small = {"max_steps": 2, "per_device_train_batch_size": 4}
    return make_values(tiny_bert_dir, docs, tmp_path / output, **{**small, **overrides})


def _scale(run: Path) -> dict:
    summary = json.loads((run / "training_summary.json").read_text())
    keys = ("world_size", "batches_per_epoch", "batches_per_epoch_per_process", "documents_per_optimizer_step")
    return {k: summary[k] for k in keys}


def test_a_one_process_run_records_its_scale_and_its_card_shows_it(tiny_bert_dir, tmp_path):
    from biohicl.training.run import train_biohicl

    values = _values(tiny_bert_dir, tmp_path, "one", gradient_accumulation_steps=2)
    run = train_biohicl(BioHiCLTrainingArguments(**values))
    # 20 documents / 4 = 5 batches, all in this process; a step is 2 batches of 4
    assert _scale(run) == {
        "world_size": 1,
        "batches_per_epoch": 5,
        "batches_per_epoch_per_process": 5,
        "documents_per_optimizer_step": 8,
    }
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert "| `world_size` | 1 |\n| `documents_per_optimizer_step` | 8 |" in text


def test_a_batch_larger_than_the_documents_records_the_documents_a_step_trains_on(tiny_bert_dir, tmp_path):
    from biohicl.training.run import train_biohicl

    docs = tmp_path / "ten.jsonl"  # 10 training documents: the sampler's batches hold all 10, not 32
    ten = [d for d in synthetic_documents() if d["split"] == "train"][:10]
    docs.write_text("".join(json.dumps(d) + "\n" for d in ten), encoding="utf-8")
    values = _values(tiny_bert_dir, tmp_path, "ten", per_device_train_batch_size=32)
    run = train_biohicl(BioHiCLTrainingArguments(**{**values, "dataset_path": str(docs)}))
    assert _scale(run) == {
        "world_size": 1,
        "batches_per_epoch": 1,
        "batches_per_epoch_per_process": 1,
        "documents_per_optimizer_step": 10,
    }
    assert (
        batch_scale(_Batches(1, 10), _args(tmp_path, per_device_train_batch_size=32), 2)["documents_per_optimizer_step"]
        == 20
    )  # the sampler's batch on each of 2 processes


@pytest.mark.slow
def test_a_two_process_run_records_its_scale_and_its_card_shows_it(tiny_bert_dir, tmp_path):
    config = tmp_path / "ddp.yaml"
    values = _values(tiny_bert_dir, tmp_path, "two")
    values.pop("use_cpu")  # the documented launch: the processes must still join one CPU process group
    config.write_text(yaml.safe_dump(values))
    proc = run_torchrun(["-m", "biohicl.cli.main", "train", "--config", str(config)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-8000:]
    # 5 batches of 4 split over 2 processes: 3 each (one loops back), each step 4 documents on each process
    assert _scale(tmp_path / "two") == {
        "world_size": 2,
        "batches_per_epoch": 5,
        "batches_per_epoch_per_process": 3,
        "documents_per_optimizer_step": 8,
    }
    text = render_model_card(BioHiCLModelCardData.from_run_dir(tmp_path / "two", "M"))
    assert "| `per_device_train_batch_size` | 4 |\n| `world_size` | 2 |\n| `documents_per_optimizer_step` | 8 |" in text
