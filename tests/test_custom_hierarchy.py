"""Runs on a custom or newer hierarchy: the SimE-SimL agreement measures SimL with the run's hierarchy (``--mesh_path``,
``siml-agreement@DATASET#mesh=FILE``) and a mismatch fails before training; training warns when the dataset was built
with another hierarchy or labels are dropped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biohicl.errors import DataError
from biohicl.evaluation.cache import evaluation_key
from biohicl.evaluation.evaluator import evaluator_from_args
from biohicl.evaluation.runner import evaluate_model, plan_tasks
from biohicl.evaluation.tasks import with_mesh
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.training.args import BioHiCLTrainingArguments
from tests.conftest import label_vector_powers

#: An ICD-10-like hierarchy in NLM's MeshTree.txt layout (ICD codes under UIs no MeSH release has: D9000xx).
ICD_TREE = """Tree Number\tDesc Ui\tTerm
C01\tD900001\tNeoplasms
C01.001\tD900002\tBreast neoplasm
C01.001.001\tD900003\tBreast neoplasm, unspecified
C01.002\tD900004\tLung neoplasm
C01.002.001\tD900005\tLung neoplasm, unspecified
C02\tD900006\tCirculatory diseases
C02.001\tD900007\tMyocardial infarction
C02.001.001\tD900008\tMyocardial infarction, unspecified
C02.002\tD900009\tHypertension
E01\tD900010\tEndocrine diseases
E01.001\tD900011\tType 2 diabetes
E01.002\tD900012\tObesity
"""
ICD_LABELS = [
    ["D900003"], ["D900002"], ["D900005"], ["D900004", "D900012"], ["D900008"], ["D900007"],
    ["D900009"], ["D900009", "D900011"], ["D900011"], ["D900012"], ["D900003", "D900009"],
    ["D900008", "D900011"], ["D900003"], ["D900005"], ["D900008"], ["D900011", "D900012"],
    ["D900002", "D900004"], ["D900009"],
]  # fmt: skip
DEV = 6  # the last 6 documents are dev


def write_dataset(folder: Path, labels: list[list[str]], mesh_version: str, mesh_source: str) -> Path:
    """A build-dataset-like folder: ``documents.parquet`` (the last :data:`DEV` documents dev) and a
    ``summary.json`` recording the hierarchy it was built with."""
    folder.mkdir(parents=True)
    rows = [
        {"pmid": str(i), "title": f"note {i}", "abstract": f"words {i}", "mesh": lab, "label_kind": "indexing",
         "split": "dev" if i >= len(labels) - DEV else "train"}
        for i, lab in enumerate(labels)
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), folder / "documents.parquet")
    (folder / "summary.json").write_text(json.dumps({"mesh_version": mesh_version, "mesh_source": mesh_source}))
    return folder


@pytest.fixture
def icd(tmp_path) -> tuple[Path, Path]:
    """(the ICD tree file, a dataset built with it)."""
    tree = tmp_path / "icd2019MeshTree.txt"
    tree.write_text(ICD_TREE)
    return tree, write_dataset(tmp_path / "ds_icd", ICD_LABELS, "2019", tree.name)


class LabelVectorEncoder:
    """Embeds each document as its normalised label vector under ``mesh``: SimE = SimL, a perfect agreement."""

    def __init__(self, mesh, labels):
        texts = [f"note {i} words {i}" for i in range(len(labels))]
        self.vectors = dict(zip(texts, label_vector_powers(mesh, labels), strict=True))

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None, dtype=None):
        return np.asarray([self.vectors[t] for t in texts])


def test_the_agreement_measures_siml_with_the_given_hierarchy(icd):
    tree, dataset = icd
    icd_mesh = MeshHierarchy.load(tree)
    spec = with_mesh(f"siml-agreement@{dataset}", str(tree))
    assert spec == f"siml-agreement@{dataset}#mesh={tree}"
    assert with_mesh(f"siml-agreement@{dataset}:dev", str(tree)) == f"siml-agreement@{dataset}#mesh={tree}:dev"
    assert with_mesh("biosses", str(tree)) == "biosses" and with_mesh(spec, "other.txt") == spec
    record = evaluate_model(LabelVectorEncoder(icd_mesh, ICD_LABELS), [spec])
    task = record["tasks"]["siml-agreement"]
    assert task["split"] == "dev" and task["num_documents"] == 6 and task["num_queries"] == 15
    assert task["metrics"]["spearman"] == pytest.approx(1.0) and task["metrics"]["mse_all_pairs"] < 1e-12
    assert "SimL (MeSH 2019 (icd2019MeshTree.txt), ancestors" in task["protocol"]
    assert set(task["data_files"]) == {f"{tree.parent.name}/{tree.name}", "ds_icd/documents.parquet"}
    # the packaged MeSH places none of the labels: the pre-flight check says so in one line, naming both hierarchies
    with pytest.raises(DataError) as err:
        plan_tasks([f"siml-agreement@{dataset}"])
    message = str(err.value)
    assert "\n" not in message and "split 'dev': 0 document(s) with a known MeSH label, need 3" in message
    assert "(SimL with MeSH 2024); the dataset was built with MeSH 2019 (icd2019MeshTree.txt)" in message


def test_the_packaged_hierarchy_as_a_file_gives_the_default_numbers(tmp_path, mesh):
    """Default behaviour unchanged: no ``#mesh=`` measures with the packaged MeSH 2024, as naming its file does."""
    from importlib import resources

    labels = [["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], ["D003920", "D001943"]] * 2
    dataset = write_dataset(tmp_path / "ds", labels, "2024", "mesh2024.tsv.gz")
    encoder = LabelVectorEncoder(mesh, labels)
    default = evaluate_model(encoder, [f"siml-agreement@{dataset}"])["tasks"]["siml-agreement"]
    assert "SimL (MeSH 2024, ancestors" in default["protocol"] and list(default["data_files"]) == [
        "ds/documents.parquet"
    ]
    with resources.as_file(resources.files("biohicl.resources").joinpath("mesh2024.tsv.gz")) as packaged:
        named = evaluate_model(encoder, [with_mesh(f"siml-agreement@{dataset}", str(packaged))])
    assert named["tasks"]["siml-agreement"]["metrics"] == default["metrics"]
    assert default["metrics"]["spearman"] == pytest.approx(1.0)


def test_the_evaluation_cache_tells_two_hierarchies_apart(icd, tmp_path):
    from tests.test_evaluation_cache import ShiftEncoder

    tree, dataset = icd
    other = tmp_path / "other2019MeshTree.txt"
    other.write_text(ICD_TREE)
    keys = {
        evaluation_key(ShiftEncoder(), [with_mesh(f"siml-agreement@{dataset}", path)])
        for path in (None, str(tree), str(other))
    }
    assert len(keys) == 3
    key = evaluation_key(ShiftEncoder(), [with_mesh(f"siml-agreement@{dataset}", str(tree))])
    tree.write_text(ICD_TREE.replace("Hypertension", "Hypertensive disease"))  # the same file, edited
    assert evaluation_key(ShiftEncoder(), [with_mesh(f"siml-agreement@{dataset}", str(tree))]) != key


def training_args(tiny_bert_dir: Path, dataset: Path, output_dir: Path, **overrides) -> BioHiCLTrainingArguments:
    values = dict(
        output_dir=str(output_dir), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(dataset), max_steps=2, per_device_train_batch_size=4, max_length=32, logging_steps=1,
        save_strategy="no", report_to="none", lora_target_modules=["query", "value"], use_cpu=True, seed=7,
        disable_tqdm=True,
    )  # fmt: skip
    values.update(overrides)
    return BioHiCLTrainingArguments(**values)


def test_a_run_on_a_custom_hierarchy_evaluates_the_agreement_with_it(icd, tiny_bert_dir, tmp_path):
    """``--mesh_path`` reaches the agreement task: the run trains and evaluates; without it the run is refused
    before any training step (it used to train, then fail at the first dev evaluation)."""
    from biohicl.training.run import train_biohicl

    tree, dataset = icd
    evaluate = {"eval_tasks": ["siml-agreement"], "eval_strategy": "steps", "eval_steps": 2}
    args = training_args(tiny_bert_dir, dataset, tmp_path / "run", mesh_path=str(tree), **evaluate)
    evaluator = evaluator_from_args(args)
    assert evaluator.tasks == [f"siml-agreement@{dataset}#mesh={tree}"]
    run = train_biohicl(args, evaluator=evaluator)
    rows = json.loads((run / "dev_evaluations.json").read_text())
    assert [row["step"] for row in rows] == [2]
    assert all(-1.0 <= row["eval_siml-agreement_spearman"] <= 1.0 for row in rows)

    packaged = training_args(tiny_bert_dir, dataset, tmp_path / "run-packaged", **evaluate)
    with pytest.raises(DataError, match=r"split 'dev': 0 document\(s\) with a known MeSH label"):
        train_biohicl(packaged, evaluator=evaluator_from_args(packaged))
    assert not (tmp_path / "run-packaged").exists()  # refused before training wrote anything


def test_biohicl_evaluate_mesh_path_reaches_the_agreement_task(icd, monkeypatch):
    """``biohicl evaluate --mesh_path FILE`` measures ``siml-agreement@`` tasks with FILE (refused without one)."""
    from biohicl.cli import evaluate as cli
    from biohicl.errors import ConfigError

    tree, dataset = icd
    with pytest.raises(ConfigError, match="mesh_path: the hierarchy of siml-agreement@DATASET tasks"):
        cli.parse_args(["model", "--tasks", "biosses", "--mesh_path", str(tree)])
    encoder = LabelVectorEncoder(MeshHierarchy.load(tree), ICD_LABELS)
    monkeypatch.setattr("biohicl.models.model.load_model", lambda *args, **kwargs: encoder)
    output = dataset.parent / "eval.json"
    argv = ["model", "--tasks", f"siml-agreement@{dataset}", "--mesh_path", str(tree), "--output", str(output)]
    assert cli.main([*argv, "--no_progress"]) == 0
    record = json.loads(output.read_text())
    assert record["tasks"]["siml-agreement"]["metrics"]["spearman"] == pytest.approx(1.0)
    assert record["settings"]["mesh_path"] == str(tree)


#: A "MeSH 2025" release: five descriptors of the packaged MeSH 2024 (same tree numbers) and two new ones.
NEW = ("D000099901", "D000099902")
MESH_2025 = "Tree Number\tDesc Ui\tTerm\n" + "".join(
    f"{number}\t{ui}\t{name}\n"
    for ui, name, numbers in (
        ("D003920", "Diabetes Mellitus", ("C18.452.394.750", "C19.246")),
        ("D003924", "Diabetes Mellitus, Type 2", ("C18.452.394.750.149", "C19.246.300")),
        ("D009203", "Myocardial Infarction", ("C14.280.647.500",)),
        ("D006333", "Heart Failure", ("C14.280.434",)),
        ("D001943", "Breast Neoplasms", ("C04.588.180",)),
        (NEW[0], "New Diabetes Phenotype", ("C18.452.394.750.200",)),
        (NEW[1], "New Heart Syndrome", ("C14.280.999",)),
    )
    for number in numbers
)
#: 12 training documents: 3 labelled only with the new descriptors, 2 with a new and a 2024 one; 6 dev documents.
LABELS_2025 = [
    ["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], ["D003920", "D001943"], [NEW[0]], [NEW[1]],
    [NEW[0], NEW[1]], [NEW[0], "D003924"], [NEW[1], "D009203"], ["D006333", "D001943"],
    ["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], [NEW[0]],
]  # fmt: skip


def hierarchy_warnings(caplog, args, mesh) -> tuple[list[str], dict]:
    """The warnings of reading ``args``' training documents with ``mesh``, and the data statistics."""
    from biohicl.training.run import load_training_data

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.training.run"):
        stats = load_training_data(args, mesh).stats
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING], stats


def test_training_warns_about_another_hierarchy_and_dropped_labels(tmp_path, caplog):
    """A dataset built with MeSH 2025 trained without --mesh_path used to lose labels silently (only
    training_summary.json told): the run now warns, naming both hierarchies and the counts."""
    tree = tmp_path / "mesh2025MeshTree.txt"
    tree.write_text(MESH_2025)
    dataset = write_dataset(tmp_path / "ds25", LABELS_2025, "2025", tree.name)
    args = training_args(tmp_path, dataset, tmp_path / "run")
    warnings, stats = hierarchy_warnings(caplog, args, MeshHierarchy.load())
    assert stats["labels_dropped_unknown"] == 6 and stats["documents_without_labels"] == 3
    assert warnings == [
        f"{dataset} was built with MeSH 2025 (mesh2025MeshTree.txt), this run computes SimL with MeSH 2024 "
        "(mesh2024.tsv.gz); give the dataset's hierarchy with --mesh_path unless that is meant",
        "6 label(s) of the training documents unknown to MeSH 2024 (mesh2024.tsv.gz) dropped; 3 of 12 training "
        "documents have no label left (give the hierarchy the dataset was built with as --mesh_path)",
    ]
    # with the dataset's hierarchy: every label kept, nothing to warn about
    with_tree = training_args(tmp_path, dataset, tmp_path / "run", mesh_path=str(tree))
    warnings, stats = hierarchy_warnings(caplog, with_tree, MeshHierarchy.load(tree))
    assert warnings == [] and stats["labels_dropped_unknown"] == 0 and stats["documents_without_labels"] == 0
    # a dataset built with the packaged MeSH, trained with it: no warning
    packaged = write_dataset(tmp_path / "ds24", LABELS_2025[:6] + LABELS_2025[11:], "2024", "mesh2024.tsv.gz")
    warnings, stats = hierarchy_warnings(
        caplog, training_args(tmp_path, packaged, tmp_path / "r"), MeshHierarchy.load()
    )
    assert warnings == [] and stats["documents"] == 7
    # a document labelled only Male (no tree number) loses its label as meant: no hierarchy hint
    male = write_dataset(
        tmp_path / "male", [["D008297"], *LABELS_2025[:6], *LABELS_2025[11:]], "2024", "mesh2024.tsv.gz"
    )
    warnings, stats = hierarchy_warnings(caplog, training_args(tmp_path, male, tmp_path / "m"), MeshHierarchy.load())
    assert warnings == [] and stats["documents_without_labels"] == 1 and stats["labels_dropped_unknown"] == 0
