"""The training table :func:`~biohicl.training.run.load_training_data` builds from a dataset folder or a documents
file: a random fingerprint rather than a hash of every row (seconds at 80,000 documents), ``title`` and ``abstract``
columns only for the title InfoNCE term (about 114 MB at 80,000 documents otherwise), and a warning about labels
the run's MeSH cannot place that says where to find the right table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import load_training_data
from tests.conftest import synthetic_documents


def training_rows() -> list[dict]:
    """The synthetic documents of the ``train`` split, with an id."""
    return [{"pmid": str(1000 + i), **d} for i, d in enumerate(synthetic_documents()) if d["split"] == "train"]


def write_source(tmp_path: Path, kind: str, rows: list[dict]) -> Path:
    """``rows`` as a built dataset folder (``documents/train.parquet``) or as a ``.jsonl`` documents file."""
    if kind == "folder":
        (tmp_path / "ds" / "documents").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ds" / "documents" / "train.parquet")
        return tmp_path / "ds"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def training_args(tmp_path: Path, path: Path, **values) -> BioHiCLTrainingArguments:
    return BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path), **values)


@pytest.fixture
def no_row_hashing(monkeypatch):
    import datasets.arrow_dataset

    def refuse(dataset):
        raise AssertionError("every row hashed for a fingerprint")

    monkeypatch.setattr(datasets.arrow_dataset, "generate_fingerprint", refuse)


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_the_training_table_hashes_no_rows(tmp_path, mesh, kind, no_row_hashing):
    """``Dataset.from_dict`` hashed every row of the training table (and of a ``.jsonl`` file's records) for a
    fingerprint nothing uses: an in-memory table is never cached."""
    rows = training_rows()
    path = write_source(tmp_path, kind, rows)
    data = load_training_data(training_args(tmp_path, path), mesh)
    assert data.documents["text"] == [f"{r['title']} {r['abstract']}" for r in rows]
    # a file's labels are read as the build reads them, each descriptor once
    assert data.documents["labels"] == [r["mesh"] if kind == "folder" else [*dict.fromkeys(r["mesh"])] for r in rows]
    again = load_training_data(training_args(tmp_path, path), mesh)
    assert again.documents._fingerprint != data.documents._fingerprint  # random, not a hash of the rows


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_the_training_table_is_typed_as_from_dict_types_it(tmp_path, mesh, kind):
    import datasets

    rows = [{**r, "label_kind": "indexing"} for r in training_rows()]
    data = load_training_data(training_args(tmp_path, write_source(tmp_path, kind, rows), title_weight=0.5), mesh)
    expected = datasets.Dataset.from_dict(data.documents.to_dict())
    assert data.documents.features == expected.features
    assert data.documents.data.table.equals(expected.data.table)
    assert data.documents.column_names == ["text", "labels", "title", "abstract", "label_kind"]


def test_a_json_file_is_read_as_from_dict_reads_it(tmp_path, monkeypatch):
    """A ``.jsonl`` file's records (numbers, nested objects, lists, nulls) give the table and types
    ``Dataset.from_dict`` gave them, without hashing them."""
    import datasets
    import datasets.arrow_dataset

    from biohicl.data.documents import numbered_records, read_documents, record_columns

    rows = [
        {"pmid": 1, "title": "a", "mesh": "D003920|D003924", "score": 0.5, "meta": {"year": 2020, "tags": ["x"]}},
        {"pmid": 2, "title": None, "mesh": ["D009203"], "score": 1, "meta": {"journal": "J"}, "extra": [1, 2]},
    ]
    path = write_source(tmp_path, "file", rows)
    expected = datasets.Dataset.from_dict(record_columns(numbered_records(path), path))
    with monkeypatch.context() as patch:
        patch.setattr(datasets.arrow_dataset, "generate_fingerprint", lambda dataset: pytest.fail("rows hashed"))
        read = read_documents(path)
    assert read.features == expected.features
    assert read.data.table.equals(expected.data.table)
    assert read["meta"] == [
        {"year": 2020, "tags": ["x"], "journal": None},
        {"year": None, "tags": None, "journal": "J"},
    ]


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_title_and_abstract_are_columns_only_for_the_title_term(tmp_path, mesh, kind):
    """They were copied into the table whether or not the title InfoNCE term was on; the collator reads them only
    with it (``titles``: the loss asks for ``title_embeddings``)."""
    rows = training_rows()
    path = write_source(tmp_path, kind, rows)
    off = load_training_data(training_args(tmp_path, path), mesh)
    assert off.documents.column_names == ["text", "labels"]
    on = load_training_data(training_args(tmp_path, path, title_weight=0.5), mesh)
    assert on.documents.column_names == ["text", "labels", "title", "abstract"]
    assert on.documents["title"] == [r["title"] for r in rows]
    assert on.documents["abstract"] == [r["abstract"] for r in rows]
    assert on.documents["text"] == off.documents["text"] and on.documents["labels"] == off.documents["labels"]
    asked = load_training_data(training_args(tmp_path, path), mesh, titles=True)  # a custom loss that asks for them
    assert asked.documents.to_dict() == on.documents.to_dict()
    unasked = load_training_data(training_args(tmp_path, path, title_weight=0.5), mesh, titles=False)
    assert unasked.documents.column_names == ["text", "labels"]


def unknown_label_warnings(caplog, args, mesh) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.training.run"):
        load_training_data(args, mesh)
    return [r.getMessage() for r in caplog.records if r.name == "biohicl.training.run"]


def test_the_unknown_labels_hint_of_a_documents_file_names_the_table_in_use(tmp_path, mesh, caplog):
    """A documents file was not built with any hierarchy: the hint said to give "the hierarchy the dataset was built
    with"; it now says that --mesh_path gives the file's own table, the one in use named once, before it."""
    rows = training_rows()
    rows[0] = {**rows[0], "mesh": [*rows[0]["mesh"], "D999999"]}
    rows[1] = {**rows[1], "mesh": [*rows[1]["mesh"], "not a descriptor"]}
    for kind, hint in [
        ("file", "give the MeSH table the file's labels come from as --mesh_path"),
        ("folder", "give the hierarchy the dataset was built with as --mesh_path"),
    ]:  # fmt: skip
        path = write_source(tmp_path / kind, kind, rows)
        assert unknown_label_warnings(caplog, training_args(tmp_path, path), mesh) == [
            "2 label(s) of the training documents unknown to MeSH 2024 (mesh2024.tsv.gz) dropped; 0 of 20 training "
            f"documents have no label left ({hint})"
        ]


def test_the_data_layer_builds_its_in_memory_datasets_through_one_function():
    """``in_memory_dataset`` lived in training while the data layer built the same ``Dataset(table, random
    fingerprint)`` inline four times; it is the data layer's now, and training uses it from there."""
    import biohicl
    import biohicl.training.run as run
    from biohicl.data.columns import in_memory_dataset

    assert run.in_memory_dataset is in_memory_dataset
    package = Path(biohicl.__file__).parent
    building = sorted(
        str(f.relative_to(package)) for f in package.rglob("*.py") if "generate_random_fingerprint" in f.read_text()
    )
    assert building == ["data/columns.py"]
    table = in_memory_dataset({"text": ["a", "b"], "labels": [["D1"], []]})
    assert table["labels"] == [["D1"], []] and table._fingerprint != in_memory_dataset(table.data.table)._fingerprint
