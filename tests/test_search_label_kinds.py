"""The index reads labels as the build does (every label field and form), and SimL never compares label kinds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.cli.main import main as cli
from biohicl.data.corpus import read_corpus
from biohicl.data.jsonl import read_jsonl
from biohicl.data.labels import resolve_label
from biohicl.errors import DataError
from biohicl.search.explain import OTHER_KIND, explain_hits
from biohicl.search.index import Hit
from biohicl.search.indexing import build_index

#: (label field, label, the descriptor UI the build maps it to): one line per documented form and field name
FORMS = [
    ("mesh", "D003920", "D003920"),
    ("mesh_uis", "mesh:D006801", "D006801"),
    ("mesh_ids", "MESH:D012694Q000378", "D012694"),
    ("labels", "D003920Q000188", "D003920"),
    ("descriptors", "C18.452.394.750", "D003920"),
    ("labels", "Diabetes Mellitus", "D003920"),
    ("descriptors", "resistance, insulin", "D007333"),
    ("labels", "*Humans", "D006801"),
    ("mesh", "Diabetes Mellitus/drug therapy", "D003920"),
    ("labels", "Insulin Resistance/physiology*", "D007333"),
    ("mesh", "d007333", "D007333"),
    ("labels", "mesh:d006801", "D006801"),
    ("descriptors", "d003920q000188", "D003920"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "label", "ui"), FORMS)
def test_build_and_index_read_a_label_form_as_one_descriptor(mesh, tmp_path, name, label, ui):
    path = write_jsonl(tmp_path / "one.jsonl", [{"pmid": "doc-1", "abstract": "some text", name: [label]}])
    built = [record.mesh for record in read_jsonl(path, mesh)]
    indexed = [doc.mesh for doc in read_corpus(path)]
    assert built == [(ui,)]
    assert indexed == [(label,)]
    assert explain_hits([], mesh, query_mesh=indexed[0]).query_mesh == (ui,)
    assert resolve_label(mesh, label) == ui


def test_resolve_label_refuses_what_the_build_drops(mesh):
    assert [resolve_label(mesh, raw) for raw in ("D999999", "C012345", "-1", "C18", "no such term", "")] == [None] * 6


def test_plain_search_explanation_compares_hits_of_one_kind_only(mesh):
    hits = [
        Hit("a", 0.9, 1, 0, mesh=("D003920",)),
        Hit("m", 0.8, 2, 1, mesh=("D003920", "D006801"), label_kind="mentions"),
        Hit("b", 0.7, 3, 2, mesh=("D003920", "D006801")),
    ]
    explained = explain_hits(hits, mesh)
    siml = mesh.label_similarity(["D003920"], ["D003920", "D006801"])
    assert [why.siml for why in explained.hits] == [pytest.approx(siml), None, pytest.approx(siml)]
    assert explained.hits[1].no_siml == "no other hit of its label kind: no SimL"
    assert [(t.name, t.ranks) for t in explained.shared_terms] == [("Diabetes Mellitus", [1, 3])]
    assert explained.hits[1].shared == []


MIXED = [
    {"_id": "i1", "title": "diabetes and insulin", "text": "insulin resistance", "mesh": ["D003920", "D007333"]},
    {"_id": "i2", "title": "diabetes", "text": "humans", "mesh": ["D003920", "D006801"]},
    {"_id": "m1", "title": "diabetes mention", "text": "a mention", "mesh": ["D003920"], "label_kind": "mentions"},
    {
        "_id": "m2",
        "title": "insulin mention",
        "text": "another",
        "mesh": ["D003920", "D007333"],
        "label_kind": "mentions",
    },
]


@pytest.fixture(scope="module")
def mixed_index(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    corpus = write_jsonl(folder / "mixed.jsonl", MIXED)
    out = folder / "idx"
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--device", "cpu"]
    assert cli([*argv, "--no_progress"]) == 0
    return out


def test_sidecar_keeps_the_label_kind_the_corpus_gives(mixed_index):
    records = [json.loads(line) for f in sorted(mixed_index.glob("shard-*.docs.jsonl")) for line in f.open()]
    assert {r["id"]: r.get("label_kind") for r in records} == {
        "i1": None,
        "i2": None,
        "m1": "mentions",
        "m2": "mentions",
    }


def test_like_gives_no_siml_to_hits_of_the_other_kind(mesh, mixed_index, capsys):
    capsys.readouterr()
    assert cli(["search", str(mixed_index), "--like", "m1", "--top_k", "3", "--device", "cpu", "--json"]) == 0
    hits = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(hits) == {"m2", "i1", "i2"}  # the --like document is no hit of its own
    for doc in MIXED[:2] + MIXED[3:]:
        hit = hits[doc["_id"]]
        assert hit["label_kind"] == doc.get("label_kind", "indexing")
        if doc["_id"].startswith("i"):
            assert (hit["siml"], hit["shared"], hit["no_siml"]) == (None, [], OTHER_KIND)
        else:
            assert hit["siml"] == pytest.approx(mesh.label_similarity(["D003920"], doc["mesh"]))
            assert hit["no_siml"] is None
    assert cli(["search", str(mixed_index), "--like", "m1", "--top_k", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    whys = {line.split()[2]: why for line, why in zip(lines[1::2], lines[2::2], strict=False)}
    assert whys["i1"] == whys["i2"] == "       other label kind: no SimL"
    assert whys["m2"].startswith("       SimL ")


def test_an_index_corpus_with_a_classification_labels_field_reads_no_mesh(tmp_path, caplog):
    """``labels`` / ``descriptors`` of an arbitrary export are often another task's classes: a value that is no
    string or list of strings is not read as MeSH (one warning per file naming the field), the next label field is."""
    rows = [
        {"_id": "1", "title": "a", "text": "diabetes text", "labels": [0, 1]},
        {"_id": "2", "text": "insulin", "labels": 1, "mesh_ids": ["D007333"]},
        {"_id": "3", "text": "heart", "descriptors": {"class": 2}},
        {"_id": "4", "text": "humans", "labels": ["D006801"]},
    ]
    path = write_jsonl(tmp_path / "classes.jsonl", rows)
    with caplog.at_level("WARNING", logger="biohicl.data.corpus"):
        docs = list(read_corpus(path))
    assert [(doc.id, doc.mesh) for doc in docs] == [("1", ()), ("2", ("D007333",)), ("3", ()), ("4", ("D006801",))]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: line 1: `labels` is not read as MeSH labels where it is not a string or a list of strings "
        "(first: [0, 1])",
        f"{path}: line 3: `descriptors` is not read as MeSH labels where it is not a string or a list of strings "
        "(first: {'class': 2})",
    ]


@pytest.mark.parametrize("name", ["mesh", "mesh_uis", "mesh_ids"])
def test_a_mesh_field_that_is_no_label_list_is_still_refused(tmp_path, name):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "1", "text": "diabetes", name: [0, 1]}])
    with pytest.raises(DataError, match=rf"document 1: `{name}` must be a string or a list of strings, got \[0, 1\]"):
        list(read_corpus(path))


def index_messages(model, corpus: Path, out: Path, caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        build_index(model, corpus, out, shard_size=4, show_progress_bar=False)
    return [r.getMessage() for r in caplog.records if r.name == "biohicl.search.indexing"]


def test_a_rerun_that_only_records_the_default_kind_rewrites_nothing(tiny_bert_dir, tmp_path, caplog):
    """An index made before label kinds were recorded (no ``label_kind`` in its sidecar), rerun over a corpus that
    names ``indexing`` (a built dataset always does): no label changed, nothing is rewritten; a kind that did change
    is reported as such, apart from changed MeSH labels."""
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    rows = [{"_id": f"d{i}", "text": f"insulin and heart {i}", "mesh": ["D007328"]} for i in range(3)]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    sidecar = tmp_path / "idx" / "shard-00000.docs.jsonl"
    before = sidecar.read_bytes()
    write_jsonl(corpus, [row | {"label_kind": "indexing"} for row in rows])
    assert index_messages(model, corpus, tmp_path / "idx", caplog) == ["resuming: kept 1 of 1 shards"]
    assert sidecar.read_bytes() == before
    write_jsonl(corpus, [row | {"label_kind": "mentions" if i == 1 else "indexing"} for i, row in enumerate(rows)])
    assert index_messages(model, corpus, tmp_path / "idx", caplog) == [
        "shard 0: label kinds updated for 1 document(s)",
        "resuming: kept 1 of 1 shards",
    ]
    assert [json.loads(line).get("label_kind") for line in sidecar.read_text().splitlines()] == [
        None,
        "mentions",
        None,
    ]
    rows[0]["mesh"] = ["D006331"]
    write_jsonl(corpus, [row | {"label_kind": "indexing"} for row in rows])  # d0: labels, d1: back to indexing
    assert index_messages(model, corpus, tmp_path / "idx", caplog) == [
        "shard 0: MeSH labels updated for 1 document(s), label kinds for 1",
        "resuming: kept 1 of 1 shards",
    ]


def test_queries_and_encode_files_read_no_labels(tmp_path, caplog):
    """``read_texts`` (``biohicl encode --input``, ``search --queries_file``) yields texts: a line's label fields,
    MeSH or not, are neither read, warned about nor refused."""
    from biohicl.data.text_files import read_texts

    path = tmp_path / "queries.jsonl"
    lines = [
        {"_id": "d1", "title": "Heart", "text": "heart attack", "labels": [0, 1]},
        {"id": "q1", "text": "heart attack", "mesh": [1, 2], "label_kind": "Indexing"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert list(read_texts(path)) == [("d1", "Heart heart attack"), ("q1", "heart attack")]
    assert caplog.records == []


def test_a_tsv_queries_files_label_columns_are_not_read(tmp_path):
    from biohicl.data.text_files import read_texts

    path = tmp_path / "q.tsv"
    path.write_text("id\ttext\tlabel_kind\nq1\theart attack\tIndexing\n", encoding="utf-8")
    assert list(read_texts(path)) == [("q1", "heart attack")]
