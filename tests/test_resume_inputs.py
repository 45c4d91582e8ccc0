"""A resume trains on its checkpoint's inputs or is refused in one line (reproducibility review, session 36, item
1): every checkpoint keeps the sha256 of the training data as its run began (``SourceRecord``'s
``dataset_sha256``) and its base's signature (``biohicl_config.json``'s ``base_signature``), and a resume whose data
were rebuilt in place, or whose base folder was rewritten with other weights, is refused, the data before the model
loads. A checkpoint written before those records resumes, saying in one log line what is not compared."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from biohicl.errors import ConfigError
from tests.conftest import build_tiny_bert, synthetic_documents

WAY_OUT = "or train a new run in another --output_dir"


def write_documents(path: Path, per_topic: int) -> str:
    """``path`` holding the synthetic documents (``per_topic`` of each topic); its sha256."""
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents(per_topic)), encoding="utf-8")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_args(base: Path, documents: Path, out: Path, **overrides):
    from biohicl.training.args import BioHiCLTrainingArguments

    values = dict(
        output_dir=str(out), base_model=str(base), base_model_hub_id="test/tiny-bert", dataset_path=str(documents),
        max_steps=2, per_device_train_batch_size=8, max_length=32, save_strategy="steps", save_steps=1,
        report_to="none", lora_target_modules=["query", "value"], seed=7, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    return BioHiCLTrainingArguments(**{**values, **overrides})


def train(base: Path, documents: Path, out: Path, **overrides) -> dict:
    from biohicl.training.run import train_biohicl

    train_biohicl(make_args(base, documents, out, **overrides))
    return json.loads((out / "training_summary.json").read_text(encoding="utf-8"))


def edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    edit(value)
    path.write_text(json.dumps(value), encoding="utf-8")


def drop_from_record(checkpoint: Path, *names: str) -> None:
    """``checkpoint``'s ``SourceRecord`` without ``names``, as code before them wrote it."""

    def drop(state: dict) -> None:
        for name in names:
            state["stateful_callbacks"]["SourceRecord"]["attributes"].pop(name, None)

    edit_json(checkpoint / "trainer_state.json", drop)


def source_record(checkpoint: Path) -> dict:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return state["stateful_callbacks"]["SourceRecord"]["attributes"]


def test_a_resume_on_data_rebuilt_in_place_is_refused_before_the_model_loads(tiny_bert_dir, tmp_path, monkeypatch):
    import biohicl.training.run as run
    from biohicl.models.model import BioHiCL
    from biohicl.training.trainer import BioHiCLTrainer

    documents, out = tmp_path / "documents.jsonl", tmp_path / "run"
    trained_on = write_documents(documents, per_topic=6)
    train(tiny_bert_dir, documents, out)
    checkpoint = out / "checkpoint-1"
    assert source_record(checkpoint)["dataset_sha256"] == trained_on
    rebuilt = write_documents(documents, per_topic=7)  # the same path, other documents

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(run, "build_model", no_model)
    resumed = make_args(tiny_bert_dir, documents, out, resume_from_checkpoint=str(checkpoint))
    with pytest.raises(ConfigError) as raised:
        run.train_biohicl(resumed)
    assert str(raised.value) == (
        f"resume_from_checkpoint: {checkpoint} was trained on other data (dataset_path {documents}: sha256 "
        f"{trained_on[:12]}… in its trainer_state.json, {rebuilt[:12]}… now); restore the data it was trained on, "
        f"{WAY_OUT}"
    )
    # BioHiCLTrainer.train checks it too
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    trainer = BioHiCLTrainer(
        model=model, args=resumed, train_dataset=run.load_training_data(resumed, run.training_mesh(resumed)).documents
    )
    with pytest.raises(ConfigError, match=r"^resume_from_checkpoint: .* was trained on other data \(dataset_path "):
        trainer.train(resume_from_checkpoint=str(checkpoint))
    # the same data back: it resumes
    monkeypatch.undo()
    write_documents(documents, per_topic=6)
    assert train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(checkpoint))["dataset_sha256"] == trained_on


def test_a_resume_on_a_base_folder_rewritten_with_other_weights_is_refused_before_a_step(tmp_path):
    base, documents, out = build_tiny_bert(tmp_path / "base"), tmp_path / "documents.jsonl", tmp_path / "run"
    write_documents(documents, per_topic=6)
    train(base, documents, out)
    (out / "checkpoint-2").rename(tmp_path / "kept-2")  # as if killed after its first checkpoint
    build_tiny_bert(base, seed=1)  # the same folder, other weights
    checkpoint = out / "checkpoint-1"
    with pytest.raises(ConfigError) as raised:
        train(base, documents, out, resume_from_checkpoint=str(checkpoint))
    assert str(raised.value) == (
        f"resume_from_checkpoint: {checkpoint} was trained on another base (base_model {base}: other weights in "
        f"embeddings.word_embeddings.weight, by its biohicl_config.json's base_signature); restore the base it was "
        f"trained on, {WAY_OUT}"
    )
    assert not (out / "checkpoint-2").exists()  # no step trained on the other base


def test_a_checkpoint_without_those_records_resumes_saying_so(tiny_bert_dir, tmp_path, caplog):
    documents, out = tmp_path / "documents.jsonl", tmp_path / "run"
    trained_on = write_documents(documents, per_topic=6)
    train(tiny_bert_dir, documents, out)
    checkpoint = out / "checkpoint-1"
    drop_from_record(checkpoint, "dataset_sha256")
    edit_json(checkpoint / "biohicl_config.json", lambda c: c.update(base_signature=None))
    with caplog.at_level(logging.INFO, logger="biohicl"):
        summary = train(tiny_bert_dir, documents, out, resume_from_checkpoint=str(checkpoint))
    assert summary["global_step"] == 2 and summary["dataset_sha256"] == trained_on
    said = [r.getMessage() for r in caplog.records if "keeps no" in r.getMessage()]
    assert said == [
        f"{checkpoint} keeps no digest of its training data: this run's data are not compared with it",
        f"{checkpoint} keeps no signature of its base: this run's base is not compared with it",
    ]


def test_a_resume_on_a_hierarchy_file_rewritten_in_place_is_refused_and_one_without_its_digest_says_so(
    tiny_bert_dir, tmp_path, caplog
):
    """``--mesh_path``'s tree numbers set the SimL targets: a file rewritten in place (other tree numbers) was
    compared by its path only, and the resume trained on other targets (review, session 37)."""
    from tests.test_custom_hierarchy import ICD_LABELS, ICD_TREE, write_dataset

    tree, out = tmp_path / "tree.txt", tmp_path / "run"
    tree.write_text(ICD_TREE, encoding="utf-8")
    dataset = write_dataset(tmp_path / "ds", ICD_LABELS, "2019", tree.name)
    given = dict(mesh_path=str(tree), per_device_train_batch_size=4)
    train(tiny_bert_dir, dataset, out, **given)
    checkpoint, trained_with = out / "checkpoint-1", hashlib.sha256(tree.read_bytes()).hexdigest()
    assert source_record(checkpoint)["mesh_sha256"] == trained_with
    tree.write_text(ICD_TREE.replace("C01.001\tD900002", "C02.003\tD900002"), encoding="utf-8")  # moved elsewhere
    now = hashlib.sha256(tree.read_bytes()).hexdigest()
    with pytest.raises(ConfigError) as raised:
        train(tiny_bert_dir, dataset, out, resume_from_checkpoint=str(checkpoint), **given)
    assert str(raised.value) == (
        f"resume_from_checkpoint: {checkpoint} was trained with another hierarchy (mesh_path {tree}: sha256 "
        f"{trained_with[:12]}… in its trainer_state.json, {now[:12]}… now); restore the hierarchy file it was "
        f"trained with, {WAY_OUT}"
    )
    drop_from_record(checkpoint, "mesh_sha256")  # as code before the record wrote it
    with caplog.at_level(logging.INFO, logger="biohicl"):
        summary = train(tiny_bert_dir, dataset, out, resume_from_checkpoint=str(checkpoint), **given)
    assert summary["global_step"] == 2 and source_record(out / "checkpoint-2")["mesh_sha256"] == now
    assert [r.getMessage() for r in caplog.records if "keeps no" in r.getMessage()] == [
        f"{checkpoint} keeps no digest of its hierarchy file: this run's hierarchy is not compared with it"
    ]
