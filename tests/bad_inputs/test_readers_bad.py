"""Readers on bad files: wrong encodings, truncated/malformed JSON and XML, corrupt gzip, empty abstracts,
unknown and misspelled MeSH names, documents with no labels. Each either raises :class:`DataError` naming the file
(and the record) or skips the record and counts it; nothing crashes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from biohicl.data.records import (
    EMPTY_ABSTRACT,
    MALFORMED,
    NO_LABELS,
    NOT_INDEXED,
    UNRESOLVED_NAME,
    ReadReport,
)
from biohicl.data.sources import read_records
from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

ARTICLE = {"pmid": "1", "title": "Café study", "abstractText": "Naïve insulin abstract.", "meshMajor": ["Humans"]}


def bioasq(articles: list) -> str:
    return json.dumps({"articles": articles})


def read(source: str, path: Path, mesh, strict: bool = False) -> tuple[list, ReadReport]:
    report = ReadReport()
    return list(read_records(source, path, mesh, strict=strict, report=report)), report


@pytest.mark.parametrize("source", ["bioasq", "pubmedqa", "pubtator"])
def test_latin1_bytes_name_the_file_and_the_byte(tmp_path, mesh, source):
    path = tmp_path / "latin1.json"
    path.write_bytes(bioasq([ARTICLE]).replace("\\u00e9", "é").encode("latin-1"))
    assert b"\xe9" in path.read_bytes()
    with pytest.raises(DataError, match=r"latin1\.json: cannot decode the file: byte 0xe9 that is not utf-8") as err:
        read(source, path, mesh)
    assert "\n" not in str(err.value) and err.value.path == str(path)


@pytest.mark.parametrize("source", ["bioasq", "pubmedqa", "pubtator"])
def test_utf16_file_is_recognised(tmp_path, mesh, source):
    path = tmp_path / "utf16.json"
    path.write_bytes(bioasq([ARTICLE]).encode("utf-16"))
    with pytest.raises(DataError, match=r"utf16\.json: cannot decode the file: UTF-16 text .*iconv -f utf-16"):
        read(source, path, mesh)


def test_utf16_medline_xml_is_a_counted_malformed_record(tmp_path, mesh):
    path = tmp_path / "pubmed.xml"
    path.write_bytes("<MedlineCitationSet><MedlineCitation><PMID>1</PMID>".encode("utf-16-le"))
    records, report = read("medline", path, mesh)
    assert records == [] and report.skipped[MALFORMED] == 1
    with pytest.raises(DataError, match=r"pubmed\.xml, record 1: malformed record: XML"):
        read("medline", path, mesh, strict=True)


@pytest.mark.parametrize("source", ["bioasq", "medline", "medline-text", "pubtator"])
def test_not_really_gzip(tmp_path, mesh, source):
    path = tmp_path / "input.xml.gz"
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match=r"input\.xml\.gz: corrupt or truncated gzip file"):
        read(source, path, mesh)


def test_truncated_gzip(tmp_path, mesh):
    path = tmp_path / "allMeSH.json.gz"
    data = gzip.compress(bioasq([ARTICLE] * 50).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"allMeSH\.json\.gz: corrupt or truncated gzip file"):
        read("bioasq", path, mesh)


def test_truncated_bioasq_json_keeps_complete_records(tmp_path, mesh):
    body = '{"articles": [\n' + ",\n".join(json.dumps(dict(ARTICLE, pmid=str(i))) for i in range(3)) + "\n]}"
    path = tmp_path / "allMeSH_2022.json"
    path.write_text(body[: body.rindex("}", 0, -3) - 5], encoding="utf-8")  # cut inside the third article
    records, report = read("bioasq", path, mesh)
    assert [r.pmid for r in records] == ["0", "1"]
    assert report.skipped[MALFORMED] == 1 and "record 3" in report.examples[MALFORMED][0]


def test_deeply_nested_json_is_malformed_not_a_recursion_error(tmp_path, mesh):
    path = tmp_path / "deep.json"
    path.write_text('{"articles": [\n' + "[" * 100_000 + "\n" + ",\n" + json.dumps(ARTICLE) + "\n]}")
    records, report = read("bioasq", path, mesh)
    assert [r.pmid for r in records] == ["1"]  # re-synchronised after the bad element
    assert report.skipped[MALFORMED] == 1 and "nested too deeply" in report.examples[MALFORMED][0]


def test_malformed_pubmedqa_json_names_file_and_record(tmp_path, mesh):
    path = tmp_path / "ori_pqal.json"
    good = {"QUESTION": "q", "CONTEXTS": ["An abstract."], "MESHES": ["Humans"]}
    path.write_text('{"1": ' + json.dumps(good) + ', "2": {"QUESTION": "q", "CONTEXTS": [')
    records, report = read("pubmedqa", path, mesh)
    assert [r.pmid for r in records] == ["1"] and report.skipped[MALFORMED] == 1
    with pytest.raises(DataError, match=r"ori_pqal\.json, record 2: malformed record"):
        read("pubmedqa", path, mesh, strict=True)


def test_truncated_medline_xml(tmp_path, mesh):
    path = tmp_path / "pubmed24n0001.xml"
    citation = (
        "<MedlineCitation><PMID>{}</PMID><Article><ArticleTitle>T</ArticleTitle><Abstract><AbstractText>"
        "Abstract text.</AbstractText></Abstract></Article><MeshHeadingList><MeshHeading>"
        '<DescriptorName UI="D006801">Humans</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>'
    )
    path.write_text("<MedlineCitationSet>" + citation.format(7) + citation.format(8)[:60])
    records, report = read("medline", path, mesh)
    assert [r.pmid for r in records] == ["7"] and report.skipped[MALFORMED] == 1
    with pytest.raises(DataError, match=r"pubmed24n0001\.xml, record 2: malformed record: XML"):
        read("medline", path, mesh, strict=True)


def test_empty_abstract_is_skipped_and_counted_strict_names_record(tmp_path, mesh):
    path = tmp_path / "a.json"
    path.write_text(bioasq([dict(ARTICLE, abstractText="   "), dict(ARTICLE, pmid="2")]))
    records, report = read("bioasq", path, mesh)
    assert [r.pmid for r in records] == ["2"] and report.skipped[EMPTY_ABSTRACT] == 1
    with pytest.raises(DataError, match=r"a\.json, record 1: empty abstract: pmid '1'"):
        read("bioasq", path, mesh, strict=True)


def test_unknown_and_misspelled_mesh_names(tmp_path, mesh):
    path = tmp_path / "a.json"
    path.write_text(bioasq([dict(ARTICLE, meshMajor=["Diabetes Melitus", "Humans"])]))
    records, report = read("bioasq", path, mesh)
    assert records[0].mesh == ("D006801",) and report.labels_dropped[UNRESOLVED_NAME] == 1
    with pytest.raises(DataError, match=r"a\.json, record 1: MeSH name not in this MeSH release: 'Diabetes Melitus'"):
        read("bioasq", path, mesh, strict=True)
    with pytest.raises(KeyError, match="close matches: Diabetes Mellitus"):
        mesh.resolve("Diabetes Melitus")


def test_documents_with_no_labels_are_skipped_not_errors(tmp_path, mesh):
    path = tmp_path / "a.json"
    path.write_text(bioasq([dict(ARTICLE, meshMajor=[]), dict(ARTICLE, pmid="2", meshMajor=["Not A Heading"])]))
    records, report = read("bioasq", path, mesh)
    assert records == [] and report.skipped[NOT_INDEXED] == 1 and report.skipped[NO_LABELS] == 1


def test_mesh_major_of_the_wrong_type(tmp_path, mesh):
    path = tmp_path / "a.json"
    path.write_text(bioasq([dict(ARTICLE, meshMajor="Humans"), dict(ARTICLE, pmid=None)]))
    records, report = read("bioasq", path, mesh)
    assert records == [] and report.skipped[MALFORMED] == 2


def test_pubtator_garbage_line_is_bounded_in_the_report(tmp_path, mesh):
    path = tmp_path / "cdr.txt"
    path.write_text("1|t|Title\n1|a|Abstract\n" + "x" * 10_000 + "\n")
    records, report = read("pubtator", path, mesh)
    assert records == [] and report.skipped[MALFORMED] == 1
    assert len(report.examples[MALFORMED][0]) < 300


def test_mesh_table_with_bad_encoding_or_line(tmp_path):
    bad = tmp_path / "mesh.tsv"
    bad.write_bytes("D000001\tCalcimycin\t\tD03.633\nD000002\tCaf\xe9\t\tD03\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"mesh\.tsv: cannot decode"):
        MeshHierarchy.load(bad)
    bad.write_text("D000001\tCalcimycin\nnot a row\n")
    with pytest.raises(DataError, match=r"mesh\.tsv: line 1: expected"):
        MeshHierarchy.load(bad)


def test_build_dataset_cli_on_a_latin1_file(tmp_path, run_cli):
    path = tmp_path / "latin1.json"
    path.write_bytes(bioasq([ARTICLE]).replace("\\u00e9", "é").encode("latin-1"))
    out = tmp_path / "out"
    result = run_cli(["build-dataset", "--source", "bioasq", "--input", str(path), "--output", str(out),
                      "--no_progress"])  # fmt: skip
    assert "latin1.json: cannot decode the file" in result.err
    assert not out.exists()


def test_utf16_medline_text_is_recognised(tmp_path, mesh):
    path = tmp_path / "pubmed.nbib"
    path.write_bytes("PMID- 1\nTI  - T\nAB  - A.\nMH  - Humans\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"pubmed\.nbib: cannot decode the file: UTF-16 text .*iconv -f utf-16"):
        read("medline-text", path, mesh)


def test_a_bad_byte_mid_file_no_longer_loses_the_rest(tmp_path, run_cli):
    """A MEDLINE XML with one undecodable byte used to stop reading there and exit 0 with every later citation
    lost: now that citation is skipped, counted and named, the rest is read."""
    citation = (
        "<PubmedArticle><MedlineCitation><PMID>{}</PMID><Article><ArticleTitle>T</ArticleTitle><Abstract>"
        "<AbstractText>Abstract {}.</AbstractText></Abstract></Article><MeshHeadingList><MeshHeading>"
        '<DescriptorName UI="D006801">Humans</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>'
        "</PubmedArticle>\n"
    )
    body = "<PubmedArticleSet>" + "".join(citation.format(i, "caf#" if i == 3 else i) for i in range(1, 8))
    path = tmp_path / "pubmed24n0001.xml"
    path.write_bytes((body + "</PubmedArticleSet>").encode().replace(b"#", b"\xe9"))
    out = tmp_path / "out"
    result = run_cli(["build-dataset", "--input", str(path), "--output", str(out), "--no_progress", "--no_arrow",
                      "--dev_fraction", "0"], expect_error=False)  # fmt: skip
    assert result.code == 0, result.err
    assert "skipped (malformed record): 1" in result.out
    assert "pubmed24n0001.xml, record 3: undecodable byte 0xe9 (not utf-8) (pmid '3')" in result.out
    from biohicl.data.storage import load_pair_dataset

    assert load_pair_dataset(out)["documents"]["pmid"] == ["1", "2", "4", "5", "6", "7"]
    result = run_cli(["build-dataset", "--input", str(path), "--output", str(tmp_path / "strict"), "--strict"])
    assert "pubmed24n0001.xml, record 3: malformed record: undecodable byte 0xe9" in result.err
