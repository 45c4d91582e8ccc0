"""``training_summary.json`` names the data a run trained on (issue #15's evidence audit, session 35): its
``dataset_sha256`` is the sha256 of the dataset's files as training began (a built folder's documents then pairs
parquet files; a documents file's bytes), kept in each checkpoint's ``trainer_state.json`` too, so anyone can check a
committed run against a dataset folder by hashing it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import synthetic_documents


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A built dataset of the 24 synthetic documents (parquet configs documents and pairs)."""
    from biohicl.data.build import build_dataset_from_files
    from biohicl.mesh.hierarchy import MeshHierarchy

    root = tmp_path_factory.mktemp("digest-data")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    build_dataset_from_files(
        [("auto", [docs])], root / "ds", MeshHierarchy.load(), top_k=3, progress=False, decontaminate=False,
        dev_split=None,
    )  # fmt: skip
    return root / "ds"


def sha256_of(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def train(tiny_bert_dir: Path, dataset: Path, output_dir: Path) -> Path:
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    args = BioHiCLTrainingArguments(
        output_dir=str(output_dir), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(dataset), max_steps=1, per_device_train_batch_size=4, max_length=32, save_strategy="steps",
        save_steps=1, report_to="none", lora_target_modules=["query", "value"], seed=7, disable_tqdm=True,
        use_cpu=True,
    )  # fmt: skip
    return train_biohicl(args)


def test_the_summary_names_the_built_dataset_s_files_by_their_sha256(tiny_bert_dir, built, tmp_path):
    run = train(tiny_bert_dir, built, tmp_path / "run")
    documents = sorted((built / "documents").glob("*.parquet"))
    pairs = sorted((built / "pairs").glob("*.parquet"))
    assert documents and pairs
    summary = json.loads((run / "training_summary.json").read_text(encoding="utf-8"))
    assert summary["dataset_sha256"] == sha256_of(*documents, *pairs)
    state = json.loads((run / "checkpoint-1" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["stateful_callbacks"]["SourceRecord"]["attributes"]["dataset_sha256"] == summary["dataset_sha256"]


def test_the_summary_names_a_documents_file_by_its_sha256(tiny_bert_dir, tmp_path):
    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    run = train(tiny_bert_dir, docs, tmp_path / "run")
    summary = json.loads((run / "training_summary.json").read_text(encoding="utf-8"))
    assert summary["dataset_sha256"] == sha256_of(docs)


def test_which_files_identify_a_dataset(built, tmp_path):
    """A built folder's parquet files, documents first; a save_to_disk folder's Arrow files; nothing else there."""
    import datasets

    from biohicl.training.resume_inputs import dataset_files, dataset_sha256

    parquet = [*sorted((built / "documents").glob("*.parquet")), *sorted((built / "pairs").glob("*.parquet"))]
    assert dataset_files(built) == parquet
    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {"documents": datasets.Dataset.from_dict({"text": ["a", "b"]}), "pairs": datasets.Dataset.from_dict({"x": [1]})}
    ).save_to_disk(str(saved))
    arrow = [*sorted((saved / "documents").glob("*.arrow")), *sorted((saved / "pairs").glob("*.arrow"))]
    assert len(arrow) == 2 and dataset_files(saved) == arrow
    assert dataset_sha256(saved) == sha256_of(*arrow)
    assert dataset_sha256(None) is None and dataset_sha256(tmp_path / "nothing") is None
