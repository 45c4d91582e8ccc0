"""Bad input to the dataset build and the MeSH hierarchy found by the session-34 audit: a PubMedQA test-id file that
is empty or names none of the PubMedQA input's PMIDs (its test abstracts went into training), a custom MeSH table
with a descriptor given twice or a tree number shared by two descriptors (silently last-row-wins, SimL 1.0), a
gzip file with an upper-case or no ``.gz`` suffix (read as text), and one label string where a list is expected
(read letter by letter)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from biohicl.data.build import build_dataset_from_files
from biohicl.data.jsonl import read_jsonl
from biohicl.data.pubmedqa import read_pubmedqa
from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

# ----------------------------------------------------------------------------------- PubMedQA test ids


def write_pqal(folder: Path, n: int = 12) -> Path:
    items = {
        str(100 + i): {"QUESTION": f"Q{i}?", "CONTEXTS": [f"Abstract number {i}."], "MESHES": ["Heart", "Humans"]}
        for i in range(n)
    }
    path = folder / "ori_pqal.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def pqal_argv(pqal: Path, out: Path, ids: Path) -> list[str]:
    return ["build-dataset", "--source", "pubmedqa", "--input", str(pqal), "--test_ids", str(ids), "--output",
            str(out), "--no_progress", "--no_arrow", "--no_decontaminate"]  # fmt: skip


@pytest.mark.parametrize("content", ["{}", "{}\n"])
def test_an_empty_test_ids_file_is_refused_before_anything_is_written(tmp_path, run_cli, content):
    """``--test_ids noids.json`` holding ``{}`` built with 0 test documents: PubMedQA's 500 test abstracts trained."""
    ids = tmp_path / "noids.json"
    ids.write_text(content)
    out = tmp_path / "tq"
    result = run_cli(pqal_argv(write_pqal(tmp_path), out, ids))
    assert f"{ids}: no PubMedQA test PMIDs in the file" in result.err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["noids.json", "ori_pqal.json"]


def test_test_ids_matching_no_pubmedqa_pmid_build_with_a_warning(tmp_path, mesh, caplog):
    # refused at first; but a PQA-A input (PubMedQA's format, none of PQA-L's PMIDs) with PQA-L's test ids, given to
    # keep those 500 abstracts out of the other inputs, is a real use: it says what it means for a PQA-L input
    ids = tmp_path / "wrongids.json"
    ids.write_text(json.dumps({"900": "yes", "901": "no"}))
    pqal = write_pqal(tmp_path)
    with caplog.at_level(logging.WARNING, logger="biohicl.data.build"):
        dataset, _ = build_dataset_from_files([("pubmedqa", [pqal])], None, mesh, progress=False, test_ids=ids)
    assert [r.getMessage() for r in caplog.records if "none of its" in r.getMessage()] == [
        f"{ids}: none of its 2 test PMIDs is a PMID of the PubMedQA input ({pqal}); no PubMedQA item is marked "
        "test (if it holds PubMedQA's labelled questions, their test items are trained on)"
    ]
    assert "test" not in set(dataset["documents"]["split"])


def test_an_empty_test_ids_file_is_refused_in_python_and_by_the_reader(tmp_path, mesh):
    ids = tmp_path / "noids.json"
    ids.write_text("{}")
    pqal = write_pqal(tmp_path)
    with pytest.raises(DataError) as raised:
        build_dataset_from_files([("pubmedqa", [pqal])], None, mesh, progress=False, test_ids=ids)
    assert str(raised.value).startswith(f"{ids}: no PubMedQA test PMIDs in the file")
    with pytest.raises(DataError) as raised:
        list(read_pubmedqa(pqal, mesh, test_ids=ids))
    assert str(raised.value).startswith(f"{ids}: no PubMedQA test PMIDs in the file")


@pytest.mark.parametrize("content", ["{}", "[]"])
def test_an_empty_test_ids_file_is_refused_by_every_reader_of_it(tmp_path, content):
    """``{}`` was refused by the build but read as no test PMID by the API: load_pubmedqa_test_ids gave set(),
    pubmedqa_non_test_pmids every PQA-L PMID (the test items as dev candidates) and the Decontaminator checked none; the
    evaluation's pubmedqa:dev drew its questions from the test items."""
    from biohicl.data.decontamination import Decontaminator
    from biohicl.data.pubmedqa import load_pubmedqa_test_ids
    from biohicl.data.splits import pubmedqa_non_test_pmids
    from biohicl.evaluation.pubmedqa import load_pubmedqa

    ids = tmp_path / "noids.json"
    ids.write_text(content)
    pqal = write_pqal(tmp_path, n=2)
    full = tmp_path / "full_pqal.json"  # with the fields the evaluation reads
    full.write_text(json.dumps({"100": {"QUESTION": "q", "LONG_ANSWER": "a", "CONTEXTS": ["c"]}}))
    expected = f"{ids}: no PubMedQA test PMIDs in the file" if content == "{}" else f"{ids}: expected a {{pmid: label}}"
    for read in (
        lambda: load_pubmedqa_test_ids(ids),
        lambda: pubmedqa_non_test_pmids(pqal, ids),
        lambda: Decontaminator.from_data_dir(tmp_path / "none", test_ids=ids),
        lambda: load_pubmedqa("dev", data_file=full, test_file=ids),  # read as no test item: dev drew from test
    ):
        with pytest.raises(DataError) as raised:
            read()
        assert str(raised.value).startswith(expected)


def test_a_build_reads_its_test_ids_file_once(tmp_path, mesh, monkeypatch):
    """The build read it, then the Decontaminator read it again: it is given the PMIDs the build read."""
    import biohicl.data.pubmedqa as pubmedqa

    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"100": "yes"}))
    reads: list[Path] = []
    read = pubmedqa.read_pmid_object
    monkeypatch.setattr(
        pubmedqa, "read_pmid_object", lambda path, values: reads.append(Path(path)) or read(path, values)
    )
    _, summary = build_dataset_from_files(
        [("pubmedqa", [write_pqal(tmp_path)])], None, mesh, progress=False, test_ids=ids, decontaminate=True
    )
    assert reads.count(ids) == 1 and summary.test_documents == 1


def test_test_ids_matching_some_pmids_build_with_a_warning_counting_the_others(tmp_path, mesh, caplog):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"100": "yes", "101": "no", "900": "yes"}))
    pqal = write_pqal(tmp_path)
    with caplog.at_level(logging.WARNING, logger="biohicl"):
        ds, summary = build_dataset_from_files([("pubmedqa", [pqal])], None, mesh, progress=False, test_ids=ids)
    split = dict(zip(ds["documents"]["pmid"], ds["documents"]["split"], strict=True))
    assert sorted(p for p, s in split.items() if s == "test") == ["100", "101"] and summary.test_documents == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "test PMIDs" in r.message]
    assert warnings == [f"{ids}: 1 of its 3 test PMIDs is not a PMID of the PubMedQA input ({pqal}); 2 marked test"]


def test_test_ids_without_a_pubmedqa_input_are_not_matched(tmp_path, mesh):
    """Without PubMedQA input the ids only decontaminate and exclude: nothing to match them against."""
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"900": "yes"}))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"pmid": str(i), "abstract": f"Text {i}.", "mesh": ["Heart"]}) + "\n"
                            for i in range(6)))  # fmt: skip
    _, summary = build_dataset_from_files([("jsonl", [docs])], None, mesh, progress=False, test_ids=ids)
    assert summary.documents == 6


# ----------------------------------------------------------------------------------- custom MeSH tables


def test_a_descriptor_ui_given_twice_in_a_tsv_is_refused(tmp_path):
    dup = tmp_path / "dup.tsv"
    dup.write_text("X1\tRoot\t\tA01\nX2\tChildA\t\tA01.001\nX3\tChildB\t\tA01.002\nX2\tOther\t\tB01\n")
    with pytest.raises(DataError) as raised:
        MeshHierarchy.load(dup)
    assert (
        str(raised.value) == f"{dup}: line 4: descriptor UI 'X2' is given twice (also on line 2); one row a descriptor"
    )
    assert raised.value.line == 4


def test_a_tree_number_of_two_descriptors_is_refused(tmp_path):
    shared = tmp_path / "sharedtree.tsv"
    shared.write_text("X1\tRoot\t\tA01\nX2\tChildA\t\tA01.001\nX3\tChildB\t\tA01.001\n")
    with pytest.raises(DataError) as raised:
        MeshHierarchy.load(shared)
    expected = "line 3: tree number 'A01.001' of 'X3' is already 'X2''s (line 2); a tree number is one descriptor's"
    assert str(raised.value) == f"{shared}: {expected}"
    tree = tmp_path / "MeshTree.txt"
    tree.write_text("Tree Number\tDesc Ui\tTerm\nA01\tX1\tRoot\nA01.001\tX2\tChildA\nA01.001\tX3\tChildB\n")
    with pytest.raises(DataError) as raised:
        MeshHierarchy.load(tree)
    assert str(raised.value) == f"{tree}: line 4: tree number 'A01.001' of 'X3' is already 'X2''s (line 3); " + (
        "a tree number is one descriptor's"
    )
    mtrees = tmp_path / "mtrees2020.bin"
    mtrees.write_text("Root;A01\nChildA;A01.001\nChildB;A01.001\n")
    with pytest.raises(DataError, match=r"mtrees2020\.bin: line 3: tree number 'A01\.001' of 'ChildB' is already"):
        MeshHierarchy.load(mtrees)


def _descriptor(ui: str, name: str, *trees: str) -> str:
    tns = "".join(f"<TreeNumber>{t}</TreeNumber>" for t in trees)
    return (f"<DescriptorRecord><DescriptorUI>{ui}</DescriptorUI><DescriptorName><String>{name}</String>"
            f"</DescriptorName><TreeNumberList>{tns}</TreeNumberList></DescriptorRecord>")  # fmt: skip


def test_descriptor_xml_names_the_records_of_a_repeated_ui_or_shared_tree_number(tmp_path):
    xml = tmp_path / "desc2025.xml"
    rows = [_descriptor("D1", "Root", "A01"), _descriptor("D2", "Child", "A01.001"), _descriptor("D1", "Again", "B01")]
    xml.write_text(f"<DescriptorRecordSet>{''.join(rows)}</DescriptorRecordSet>")
    with pytest.raises(DataError) as raised:
        MeshHierarchy.load(xml)
    assert (
        str(raised.value)
        == f"{xml}, record 3: descriptor UI 'D1' is given twice (also record 1); one record a descriptor"
    )
    rows[2] = _descriptor("D3", "Other", "A01.001")
    xml.write_text(f"<DescriptorRecordSet>{''.join(rows)}</DescriptorRecordSet>")
    with pytest.raises(DataError) as raised:
        MeshHierarchy.load(xml)
    expected = "record 3: tree number 'A01.001' of 'D3' is already 'D2''s (record 2); a tree number is one descriptor's"
    assert str(raised.value) == f"{xml}, {expected}"


def test_the_packaged_table_and_the_shipped_releases_still_load(mesh, data_dir):
    assert (len(mesh.names), sum(map(len, mesh.trees.values()))) == (30764, 64457)
    assert len(MeshHierarchy.load(data_dir / "mesh" / "2017MeshTree.txt")) > 27000


def test_a_meshtree_row_repeated_is_no_clash(tmp_path):
    """A descriptor's rows (one per tree number) and a row given twice are not two descriptors."""
    tree = tmp_path / "MeshTree.txt"
    tree.write_text(
        "Tree Number\tDesc Ui\tTerm\nA01\tX1\tRoot\nA01.001\tX2\tChild\nB01\tX2\tChild\nA01.001\tX2\tChild\n"
    )
    loaded = MeshHierarchy.load(tree)
    assert loaded.names == {"X1": "Root", "X2": "Child"} and loaded.trees["X2"] == ("A01.001", "B01")


def test_an_mtrees_line_repeated_is_no_clash(tmp_path):
    from biohicl.mesh.formats import read_mtrees

    path = tmp_path / "mtrees2025.bin"
    path.write_text("Root;A01\nChild;A01.001\nChild;B01\nChild;A01.001\n")
    names, trees, _ = read_mtrees(path, {"Root": "X1", "Child": "X2"})
    assert names == {"X1": "Root", "X2": "Child"} and trees == {"X1": ("A01",), "X2": ("A01.001", "B01")}


# ----------------------------------------------------------------------------------- gzip by content


TABLE = "X1\tRoot\t\tA01\nX2\tChild\t\tA01.001\n"


@pytest.mark.parametrize("name", ["up.TSV.GZ", "up.tsv.Gz", "gzipped.tsv"])
def test_a_gzip_mesh_table_is_read_whatever_its_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(TABLE.encode()))
    loaded = MeshHierarchy.load(path)
    assert loaded.names == {"X1": "Root", "X2": "Child"} and loaded.trees["X2"] == ("A01.001",)


def test_a_gzip_descriptor_xml_with_an_upper_case_suffix(tmp_path):
    path = tmp_path / "DESC2025.XML.GZ"
    path.write_bytes(
        gzip.compress(f"<DescriptorRecordSet>{_descriptor('D1', 'Root', 'A01')}</DescriptorRecordSet>".encode())
    )
    assert MeshHierarchy.load(path).names == {"D1": "Root"}


def test_a_gzip_corpus_with_an_upper_case_suffix(tmp_path, mesh):
    path = tmp_path / "DOCS.JSONL.GZ"
    path.write_bytes(gzip.compress(json.dumps({"pmid": "7", "abstract": "Text.", "mesh": ["Heart"]}).encode() + b"\n"))
    assert [(r.pmid, r.mesh) for r in read_jsonl(path, mesh)] == [("7", ("D006321",))]
    pqal = tmp_path / "ORI_PQAL.JSON.GZ"
    pqal.write_bytes(gzip.compress(json.dumps({"5": {"CONTEXTS": ["An abstract."], "MESHES": ["Heart"]}}).encode()))
    assert [(r.pmid, r.abstract) for r in read_pubmedqa(pqal, mesh, test_ids=None)] == [("5", "An abstract.")]


# ----------------------------------------------------------------------------------- one string for a list


def test_one_label_string_where_a_list_is_expected_is_refused(mesh):
    with pytest.raises(TypeError) as raised:
        mesh.label_similarity("Brain", "Heart")
    assert str(raised.value) == "labels_a: 'Brain' is one string, not a collection of labels; pass a list: ['Brain']"
    with pytest.raises(TypeError) as raised:
        mesh.label_similarity(["Brain"], "Heart")
    assert str(raised.value) == "labels_b: 'Heart' is one string, not a collection of labels; pass a list: ['Heart']"
    with pytest.raises(TypeError) as raised:
        mesh.similarity_matrix(["Brain", "Heart"])
    assert str(raised.value) == (
        "label_lists[0]: 'Brain' is one string, not a collection of labels; pass a list: ['Brain']"
    )
    with pytest.raises(TypeError) as raised:
        mesh.label_vectors("Brain")
    assert str(raised.value) == "docs: 'Brain' is one string, not a list of label lists; pass [['Brain']]"
    with pytest.raises(TypeError) as raised:
        mesh.label_nodes("Brain")
    assert str(raised.value) == "labels: 'Brain' is one string, not a collection of labels; pass a list: ['Brain']"
    with pytest.raises(TypeError) as raised:
        mesh.label_similarity(["Brain"], ["Heart"], label_weights="Humans")
    assert str(raised.value) == "label_weights: 'Humans' is not a mapping of label to weight; pass e.g. {'Humans': 0.5}"
    assert mesh.label_similarity(["Brain"], ("Brain",)) == pytest.approx(1.0)
    assert float(mesh.similarity_matrix([["Brain"], ("Brain",)])[0, 1]) == pytest.approx(1.0)
