"""What the readers make of labels and ids as users write them: MeSH labels in other common forms (a qualifier UI
after the descriptor's, a tree number, a MEDLINE heading, a lower-case ``mesh:`` prefix), JSON lines detected by
any label field, the label counts of a dropped duplicate taken back, duplicates named by record, and document ids
with a control character or non-ASCII digits refused."""

from __future__ import annotations

import gzip
import json

import pytest

from biohicl.data.jsonl import read_jsonl
from biohicl.data.medline_text import read_medline_text
from biohicl.data.pubmed_xml import read_medline
from biohicl.data.pubtator import read_pubtator
from biohicl.data.records import (
    DUPLICATE,
    EMPTY_ABSTRACT,
    FROM_TREE_NUMBER,
    MALFORMED,
    SCR_ID,
    UNKNOWN_TREE,
    UNRESOLVED_NAME,
    MeshRecord,
    ReadReport,
)
from biohicl.data.sources import detect_source, read_records, resolve_inputs, unique_records
from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

# from the packaged MeSH 2024 table
DM, HUMANS, HEART = "D003920", "D006801", "D006321"
DM_TREES = ("C18.452.394.750", "C19.246")  # MeshHierarchy.load().trees["D003920"]


def write_lines(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def test_jsonl_labels_in_other_forms_resolve_to_their_descriptor(tmp_path, mesh):
    assert mesh.trees[DM] == DM_TREES
    path = tmp_path / "forms.jsonl"
    forms = ["D003920Q000628", DM_TREES[0], "*Diabetes Mellitus/therapy", "mesh:D003920"]
    write_lines(path, [{"pmid": "1", "abstract": "A.", "mesh": forms},
                       {"pmid": "2", "abstract": "B.", "mesh": "MeSH:D006801|C19.246|Heart/*physiology"}])  # fmt: skip
    report = ReadReport()
    records = list(read_jsonl(path, mesh, report=report))
    assert [(r.pmid, r.mesh) for r in records] == [("1", (DM,)), ("2", (HUMANS, DM, HEART))]
    assert report.labels_kept == 4 and not report.labels_dropped and not report.labels_ignored


def test_jsonl_unknown_tree_number_has_its_own_reason(tmp_path, mesh):
    path = tmp_path / "trees.jsonl"
    write_lines(path, [{"pmid": "1", "abstract": "A.", "mesh": ["C19.246", "C19.999.999", "Bogus/therapy"]}])
    report = ReadReport()
    assert [r.mesh for r in read_jsonl(path, mesh, report=report)] == [(DM,)]
    assert report.labels_dropped == {UNKNOWN_TREE: 1, UNRESOLVED_NAME: 1}
    assert report.dropped_names == {"C19.999.999": 1, "Bogus": 1}  # a heading's descriptor part, as MEDLINE text's
    with pytest.raises(DataError, match=rf"^{path}: line 1: {UNKNOWN_TREE}: 'C19.999.999'$"):
        list(read_jsonl(path, mesh, strict=True))


def test_jsonl_tree_numbers_resolve_in_the_loaded_release_are_counted_and_bare_codes_are_dropped(tmp_path, mesh):
    # C16.320.798: Primary Immunodeficiency Diseases (D000081207) in the packaged MeSH 2024, Polycystic Kidney
    # Diseases (D007690) in MeSH 2017 (NLM's 2017 MeshTree.txt, its three lines on that path here)
    assert "C16.320.798" in mesh.trees["D000081207"]
    mesh_2017 = tmp_path / "2017MeshTree.txt"
    mesh_2017.write_text(
        "Tree Number\tDesc Ui\tTerm\nC16\tD009358\tCongenital, Hereditary, and Neonatal Diseases and Abnormalities\n"
        "C16.320\tD030342\tGenetic Diseases, Inborn\nC16.320.798\tD007690\tPolycystic Kidney Diseases\n"
    )
    path = tmp_path / "trees.jsonl"
    write_lines(path, [{"pmid": "1", "abstract": "A.", "mesh": ["C16.320.798"]},
                       {"pmid": "2", "abstract": "B.", "mesh": ["C18", "Humans"]}])  # fmt: skip
    report = ReadReport()
    assert [r.mesh for r in read_jsonl(path, mesh, report=report)] == [("D000081207",), (HUMANS,)]
    assert report.labels_noted == {FROM_TREE_NUMBER: 1}  # the one tree number; a bare C18 (ICD-10-like) is no label
    assert report.labels_dropped == {UNRESOLVED_NAME: 1} and report.dropped_names == {"C18": 1}
    assert report.examples[FROM_TREE_NUMBER] == [
        f"{path}: line 1: 'C16.320.798' read as D000081207 'Primary Immunodeficiency Diseases' (MeSH 2024)"
    ]
    assert report.to_dict()["labels_noted"] == {FROM_TREE_NUMBER: 1}
    assert f"labels kept, noted: {FROM_TREE_NUMBER}: 1" in report.summary()
    report = ReadReport()
    records = list(read_jsonl(path, MeshHierarchy.load(mesh_2017), report=report))
    assert [r.mesh for r in records] == [("D007690",)]  # Humans is no 2017 descriptor in that file: pmid 2 skipped
    assert report.labels_noted == {FROM_TREE_NUMBER: 1}

    write_lines(path, [{"pmid": "1", "abstract": "A.", "mesh": ["C19.246"]}] * 2)  # a dropped copy's note taken back
    report = ReadReport()
    assert len(list(unique_records(read_jsonl(path, mesh, report=report), report))) == 1
    assert report.labels_noted == {FROM_TREE_NUMBER: 1} and report.skipped == {DUPLICATE: 1}


def test_jsonl_is_detected_by_any_label_field_on_any_line_of_the_head(tmp_path):
    cases = {
        "labels.jsonl": [{"pmid": "1", "abstract": "A.", "labels": [DM]}],
        "descriptors.jsonl": [{"pmid": "1", "abstract": "A.", "descriptors": DM}],
        "first_unlabelled.jsonl": [{"pmid": "1", "abstract": "A."}, {"pmid": "2", "abstract": "B.", "mesh": [DM]}],
        "corpus.jsonl": [{"_id": "1", "title": "t", "text": "x"}, {"_id": "2", "text": "y", "meta": {"mesh": [DM]}}],
    }
    for name, rows in cases.items():
        write_lines(tmp_path / name, rows)
    got = {name: detect_source(tmp_path / name) for name in cases}
    assert got == {"labels.jsonl": "jsonl", "descriptors.jsonl": "jsonl", "first_unlabelled.jsonl": "jsonl",
                   "corpus.jsonl": None}  # fmt: skip


def test_an_unrecognised_jsonl_input_is_an_error_naming_it(tmp_path, mesh):
    good, beir = tmp_path / "mine.jsonl", tmp_path / "corpus.jsonl.gz"
    write_lines(good, [{"pmid": "1", "abstract": "A.", "mesh": [DM]}])
    with gzip.open(beir, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "1", "text": "x"}) + "\n")
    (tmp_path / "README.md").write_text("# notes\n")
    report = ReadReport()
    assert resolve_inputs([("auto", [good, tmp_path / "README.md"])], report) == [("jsonl", [good])]
    assert report.unrecognised_files == [str(tmp_path / "README.md")]  # another file type is still left out
    with pytest.raises(DataError, match=rf"^{beir}: JSON lines with no MeSH label field \(mesh_uis, mesh, labels"):
        resolve_inputs([("auto", [good, beir])])
    assert [r.pmid for r in read_records("auto", [good], mesh)] == ["1"]
    for name in ("corpus.ndjson", "corpus.NDJSON.gz"):  # JSON lines by another name: refused alike, never left out
        path = tmp_path / name
        with (gzip.open if name.endswith(".gz") else open)(path, "wt", encoding="utf-8") as handle:
            handle.write(json.dumps({"_id": "1", "text": "x"}) + "\n")
        with pytest.raises(DataError, match=rf"^{path}: JSON lines with no MeSH label field"):
            resolve_inputs([("auto", [good, path])])
    labelled = tmp_path / "mine.ndjson.gz"
    with gzip.open(labelled, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"pmid": "2", "abstract": "B.", "mesh": [HEART]}) + "\n")
    assert [(r.pmid, r.mesh) for r in read_records("auto", [labelled], mesh)] == [("2", (HEART,))]


MEDLINE = "PMID- {pmid}\nTI  - Title {pmid}.\nAB  - Abstract {pmid}.\nMH  - Humans\nMH  - {bad}\n\n"


def test_a_dropped_duplicate_takes_its_dropped_and_ignored_labels_back(tmp_path, mesh):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(MEDLINE.format(pmid=1, bad="Not A Heading") + MEDLINE.format(pmid=2, bad="Bogus Two"))
    second.write_text(MEDLINE.format(pmid=1, bad="Not A Heading"))  # a copy of pmid 1: dropped
    report = ReadReport()
    records = list(unique_records(read_records("medline-text", [first, second], mesh, report=report), report))
    # by hand: pmid 1 and 2 kept with Humans each; their own unknown names, one each; the copy's is not counted
    assert [(r.pmid, r.mesh) for r in records] == [("1", (HUMANS,)), ("2", (HUMANS,))]
    assert (report.kept, report.labels_kept, report.skipped) == (2, 2, {DUPLICATE: 1})
    assert report.labels_dropped == {UNRESOLVED_NAME: 2}
    assert report.dropped_names == {"Not A Heading": 1, "Bogus Two": 1}
    assert report.examples[DUPLICATE] == [f"{second}, record 1: pmid '1' (also in {first}, record 1)"]

    path = tmp_path / "dup.jsonl"  # an SCR id is ignored once per kept copy; the duplicate named by its line
    write_lines(path, [{"pmid": "7", "abstract": "A.", "mesh": [DM, "C012345"]}, "",
                       {"pmid": "8", "abstract": "B.", "mesh": [HEART]},
                       {"pmid": "7", "abstract": "A.", "mesh": [DM, "C012345"]}])  # fmt: skip
    report = ReadReport()
    assert [r.pmid for r in unique_records(read_jsonl(path, mesh, report=report), report)] == ["7", "8"]
    assert report.labels_ignored == {SCR_ID: 1} and report.labels_kept == 2
    assert report.examples[DUPLICATE] == [f"{path}: line 4: pmid '7' (also in {path}: line 1)"]
    with pytest.raises(DataError, match=rf"^{path}: line 4: duplicate pmid '7' \(also in {path}: line 1\)$"):
        list(unique_records(read_jsonl(path, mesh), strict=True))

    path = tmp_path / "skipped.jsonl"  # a record skipped when read keeps its dropped and ignored labels counted
    write_lines(path, [{"pmid": "1", "abstract": "", "mesh": ["Nonexistent Thing", "C012345"]},
                       {"pmid": "2", "abstract": "x", "mesh": ["Humans"]}])  # fmt: skip
    report = ReadReport()
    assert [r.pmid for r in unique_records(read_jsonl(path, mesh, report=report), report)] == ["2"]
    assert (report.kept, report.labels_kept, report.skipped) == (1, 1, {EMPTY_ABSTRACT: 1})
    assert report.labels_dropped == {UNRESOLVED_NAME: 1} and report.labels_ignored == {SCR_ID: 1}


def test_a_duplicate_replaced_by_a_later_pubmedqa_copy_names_the_other_copy():
    def copies():
        mine = MeshRecord("1", "T.", "A.", (HUMANS,), "jsonl", origin="mine.jsonl", record_number=3)
        return [mine, MeshRecord("1", "T.", "A.", (HUMANS,), "pubmedqa", origin="ori_pqal.json", record_number=7)]

    report = ReadReport()
    kept = list(unique_records(copies(), report))  # the copy yielded first, then replaced in place
    assert [(r.source, r.origin, r.record_number) for r in kept] == [("pubmedqa", "ori_pqal.json", 7)]
    assert report.examples[DUPLICATE] == ["mine.jsonl, record 3: pmid '1' (also in ori_pqal.json, record 7)"]
    with pytest.raises(
        DataError, match=r"^ori_pqal.json, record 7: duplicate pmid '1' \(also in mine.jsonl, record 3\)$"
    ):
        list(unique_records(copies(), strict=True))


CITATION = (
    "<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>T</ArticleTitle><Abstract>"
    "<AbstractText>A.</AbstractText></Abstract></Article>{suppl}<MeshHeadingList><MeshHeading>"
    '<DescriptorName UI="D006801">Humans</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>'
    "</PubmedArticle>"
)


def test_pubmed_xml_reports_no_zero_count_of_ignored_labels(tmp_path, mesh):
    path = tmp_path / "a.xml"
    suppl = "<SupplMeshList><SupplMeshName UI='C1'>x</SupplMeshName><SupplMeshName UI='C2'>y</SupplMeshName>"
    suppl += "</SupplMeshList>"
    body = CITATION.format(pmid=1, suppl="") + CITATION.format(pmid=2, suppl="")
    path.write_text(f'<?xml version="1.0"?>\n<PubmedArticleSet>{body}</PubmedArticleSet>\n')
    report = ReadReport()
    assert len(list(read_medline(path, mesh, report=report))) == 2
    assert report.labels_ignored == {} and "labels ignored" not in report.summary()
    path.write_text(f"<PubmedArticleSet>{CITATION.format(pmid=3, suppl=suppl)}</PubmedArticleSet>\n")
    report = ReadReport()
    assert len(list(read_medline(path, mesh, report=report))) == 1
    assert report.labels_ignored == {SCR_ID: 2}


def test_pubtator_id_with_a_control_character_and_medline_non_ascii_digits_are_malformed(tmp_path, mesh):
    path = tmp_path / "cdr.txt"
    path.write_text(
        "1\x1b|t|Heart.\n1\x1b|a|About the heart.\n1\x1b\t0\t5\theart\tDisease\tD006321\n\n"
        "2|t|Heart.\n2|a|About the heart.\n2\t0\t5\theart\tDisease\tD006321\n"
    )
    report = ReadReport()
    assert [r.pmid for r in read_pubtator(path, mesh, report=report)] == ["2"]
    assert report.skipped == {MALFORMED: 1}
    assert report.examples[MALFORMED] == [f"{path}, record 1: document id with a control character: '1\\x1b'"]

    path = tmp_path / "export.txt"
    path.write_text(MEDLINE.format(pmid="1²", bad="Heart") + MEDLINE.format(pmid="3", bad="Heart"), encoding="utf-8")
    report = ReadReport()
    assert [r.pmid for r in read_medline_text(path, mesh, report=report)] == ["3"]
    assert report.examples[MALFORMED] == [f"{path}, record 1: citation without a PMID line (pmid '1²')"]


def test_the_build_summary_prints_the_labels_read_from_tree_numbers(tmp_path, mesh):
    """The console summary of build-dataset counts them, as summary.json does, beside the warnings' examples."""
    from biohicl.data.build import build_dataset_from_files

    path = tmp_path / "mine.jsonl"
    write_lines(
        path, [{"pmid": str(i), "abstract": f"Text {i}.", "mesh": [DM_TREES[i % 2], "Humans"]} for i in range(6)]
    )
    _, summary = build_dataset_from_files([("jsonl", [path])], tmp_path / "out", mesh, top_k=2, progress=False)
    lines = str(summary).splitlines()
    assert f"  labels kept, noted ({FROM_TREE_NUMBER}): 6" in lines
