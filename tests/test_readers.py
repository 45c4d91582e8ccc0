"""Streaming readers: BioASQ JSON, MEDLINE XML, PubMedQA, PubTator — records, bad-input policy, strict mode."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from biohicl.data.bioasq import read_bioasq
from biohicl.data.json_stream import JsonStream, MalformedElement
from biohicl.data.medline_text import parse_mesh_heading, read_medline_text
from biohicl.data.pubmed_xml import citation_blocks, read_medline
from biohicl.data.pubmedqa import read_pubmedqa
from biohicl.data.pubtator import read_pubtator
from biohicl.data.records import (
    BOOK,
    DELETED,
    DUPLICATE,
    EMPTY_ABSTRACT,
    MALFORMED,
    NO_LABELS,
    NOT_INDEXED,
    RETRACTED,
    REVISED,
    SCR_ID,
    UNKNOWN_ID,
    UNNORMALISED,
    UNRESOLVED_NAME,
    MeshRecord,
    ReadReport,
)
from biohicl.data.sources import DELETED_SPLIT, detect_source, read_records, resolve_inputs, unique_records
from biohicl.data.splits import pubmedqa_non_test_pmids
from biohicl.errors import DataError

DM, T2, HEART = "D003920", "D003924", "D006321"


# --------------------------------------------------------------------------- incremental JSON
def test_json_stream_small_chunks_array_and_object():
    text = ' { "a" : 12345 , "articles" : [ {"x": "é\\u00e9 ]}"}, [1, 2], 3.25e2, true, null, "s" ] , "z": {} } '
    stream = JsonStream(io.StringIO(text), chunk_size=3)
    seen = {}
    for key in stream.object_keys():
        seen[key] = list(stream.array()) if key == "articles" else stream.value()
    assert seen == {"a": 12345, "articles": [{"x": "éé ]}"}, [1, 2], 325.0, True, None, "s"], "z": {}}


def test_json_stream_resyncs_after_malformed_element():
    text = '{"articles": [\n{"pmid": "1"},\n{"pmid": "2", oops},\n{"pmid": "3"}\n]}'
    stream = JsonStream(io.StringIO(text), chunk_size=4)
    items = next(list(stream.array()) for key in stream.object_keys())
    assert items[0] == {"pmid": "1"} and items[2] == {"pmid": "3"} and len(items) == 3
    assert isinstance(items[1], MalformedElement)


def test_json_stream_is_incremental(tmp_path):
    path = tmp_path / "big.json"
    articles = [{"pmid": str(i), "abstractText": "x" * 500} for i in range(3000)]
    path.write_text(json.dumps({"articles": articles}))
    with path.open() as handle:
        stream = JsonStream(handle, chunk_size=1 << 14)
        next(stream.object_keys())
        first = next(stream.array())
        assert first["pmid"] == "0"
        assert handle.tell() < path.stat().st_size / 20  # read a small part of the file only


# --------------------------------------------------------------------------- BioASQ
def _bioasq_file(tmp_path, body: str, name="allMeSH_2022.json"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


BIOASQ = """{"articles":[
{"journal":"J1","meshMajor":["Diabetes Mellitus","Heart"],"year":2010,"abstractText":"A first abstract.","pmid":"101","title":"T1"},
{"journal":"J2","meshMajor":["Diabetes Mellitus, Type 2","Not A Heading Anywhere"],"year":2011,"abstractText":"Second.","pmid":"102","title":"T2"},
{"journal":"J3","meshMajor":["Heart"],"year":2012,"abstractText":"   ","pmid":"103","title":"T3"},
{"journal":"J4","meshMajor":["Heart"],"year":2012,"abstractText":"Broken" "pmid":"104","title":"T4"},
{"journal":"J5","meshMajor":["Nothing Known Here"],"year":2013,"abstractText":"Fifth.","pmid":"105","title":"T5"},
{"journal":"J6","meshMajor":["niddm"],"year":2014,"abstractText":"Sixth.","pmid":"106","title":"T6"}
]}
"""  # noqa: E501


def test_bioasq_records_and_report(tmp_path, mesh):
    path = _bioasq_file(tmp_path, BIOASQ)
    report = ReadReport()
    records = list(read_bioasq(path, mesh, report=report))
    assert [r.pmid for r in records] == ["101", "102", "106"]
    assert records[0] == MeshRecord("101", "T1", "A first abstract.", (DM, HEART), "bioasq", year="2010", journal="J1")
    assert records[1].mesh == (T2,)  # the unresolvable name is dropped, the record kept
    assert records[2].mesh == (T2,)  # entry term
    assert report.read == 6 and report.kept == 3
    assert report.skipped == {EMPTY_ABSTRACT: 1, MALFORMED: 1, NO_LABELS: 1}
    assert report.labels_dropped == {UNRESOLVED_NAME: 2}
    assert report.examples[MALFORMED] == [f"{path}, record 4: JSON: Expecting ',' delimiter"]
    assert report.examples[EMPTY_ABSTRACT] == [f"{path}, record 3: pmid '103'"]
    assert f"{path}, record 2: 'Not A Heading Anywhere'" in report.examples[UNRESOLVED_NAME]
    assert report.mean_labels == pytest.approx(4 / 3)
    text = report.summary()
    assert "documents read: 6; kept: 3; skipped: 3" in text and "malformed record: 1" in text


def test_bioasq_strict_raises_on_first_problem(tmp_path, mesh):
    path = _bioasq_file(tmp_path, BIOASQ)
    with pytest.raises(DataError, match=r"record 2: MeSH name not in this MeSH release: 'Not A Heading Anywhere'"):
        list(read_bioasq(path, mesh, strict=True))


def test_bioasq_strict_malformed_and_empty(tmp_path, mesh):
    path = _bioasq_file(tmp_path, '{"articles":[{"pmid":"1","abstractText":"","meshMajor":["Heart"]}]}')
    with pytest.raises(DataError, match=r"record 1: empty abstract"):
        list(read_bioasq(path, mesh, strict=True))
    path = _bioasq_file(tmp_path, '{"articles":[{"pmid":"1","abstractText":"a","meshMajor":["Heart"]}, 7]}')
    with pytest.raises(DataError, match=r"record 2: malformed record: not an article object"):
        list(read_bioasq(path, mesh, strict=True))


def test_bioasq_truncated_file_is_counted(tmp_path, mesh):
    path = _bioasq_file(tmp_path, BIOASQ[: BIOASQ.index('{"journal":"J3"')] + '{"journal":"J3","mesh')
    report = ReadReport()
    records = list(read_bioasq(path, mesh, report=report))
    assert [r.pmid for r in records] == ["101", "102"]
    assert report.skipped[MALFORMED] == 1 and report.read == 3


def test_missing_input_file(tmp_path, mesh):
    with pytest.raises(DataError, match="input file not found"):
        list(read_bioasq(tmp_path / "nope.json", mesh))
    with pytest.raises(DataError, match="unknown source 'foo'"):
        list(read_records("foo", [tmp_path / "x"], mesh))


# --------------------------------------------------------------------------- MEDLINE
MEDLINE = """<?xml version="1.0"?>
<PubmedArticleSet>
<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">201</PMID>
<Article><Journal><JournalIssue><PubDate><Year>2009</Year></PubDate></JournalIssue><Title>Journal A</Title></Journal>
<ArticleTitle>Heart and <i>diabetes</i>.</ArticleTitle>
<Abstract><AbstractText Label="BACKGROUND">First part.</AbstractText><AbstractText>Second
 part.</AbstractText></Abstract></Article>
<MeshHeadingList>
<MeshHeading><DescriptorName UI="D003920" MajorTopicYN="Y">Diabetes Mellitus</DescriptorName></MeshHeading>
<MeshHeading><DescriptorName UI="D006321" MajorTopicYN="N">Heart</DescriptorName></MeshHeading>
<MeshHeading><DescriptorName UI="D999998" MajorTopicYN="N">Retired Heading</DescriptorName></MeshHeading>
</MeshHeadingList></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>202</PMID><Article><ArticleTitle>No abstract</ArticleTitle></Article>
<MeshHeadingList><MeshHeading><DescriptorName UI="D006321">Heart</DescriptorName></MeshHeading></MeshHeadingList>
</MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>203</PMID><Article><ArticleTitle>Not indexed</ArticleTitle>
<Abstract><AbstractText>Text.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>
"""


@pytest.mark.parametrize("name", ["pubmed.xml", "pubmed.xml.gz"])
def test_medline_records(tmp_path, mesh, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(MEDLINE.encode()) if name.endswith(".gz") else MEDLINE.encode())
    report = ReadReport()
    records = list(read_medline(path, mesh, report=report))
    assert records == [
        MeshRecord(
            "201",
            "Heart and diabetes.",
            "First part. Second part.",
            (DM, HEART),
            "medline",
            year="2009",
            journal="Journal A",
            major=(DM,),  # MajorTopicYN="Y"
        )
    ]
    assert report.skipped == {EMPTY_ABSTRACT: 1, NOT_INDEXED: 1}
    assert report.labels_dropped == {UNKNOWN_ID: 1}
    assert report.examples[UNKNOWN_ID] == [f"{path}, record 1: 'D999998'"]
    with pytest.raises(DataError, match=r"record 1: descriptor id not in this MeSH release: 'D999998'"):
        list(read_medline(path, mesh, strict=True))


def test_medline_truncated_xml(tmp_path, mesh):
    path = tmp_path / "cut.xml"
    path.write_text(MEDLINE[: MEDLINE.index("<PMID>202")].replace('UI="D999998"', 'UI="D006321"'))
    report = ReadReport()
    assert [r.pmid for r in read_medline(path, mesh, report=report)] == ["201"]
    assert report.skipped[MALFORMED] == 1
    with pytest.raises(DataError, match=r"cut\.xml, record 2: malformed record: XML"):
        list(read_medline(path, mesh, strict=True))


def test_medline_real_sample(data_dir, mesh):
    report = ReadReport()
    records = list(read_medline(data_dir / "medline_sample" / "medline16n0902.xml.gz", mesh, report=report))
    assert report.read == 604  # PROVENANCE.md: 604 MedlineCitation records
    assert len(records) == report.kept == 94  # … 94 with both an Abstract and a MeshHeadingList
    assert records[0].pmid == "17942999" and records[0].year == "2007"
    assert records[0].title.startswith("Neuroplasticity in the processing of pitch dimensions")
    assert "D006801" in records[0].mesh  # Humans
    assert all(r.abstract and r.mesh for r in records)


# --------------------------------------------------------------------------- PubMedQA
def test_pubmedqa_real(data_dir, mesh):
    report = ReadReport()
    records = list(read_pubmedqa(data_dir / "pubmedqa" / "ori_pqal.json", mesh, report=report))
    assert len(records) == 1000 and report.kept == 1000
    assert sum(r.split == "test" for r in records) == 500  # test_ground_truth.json found beside the file
    first = records[0]
    assert first.pmid == "21645374" and first.split == "test"
    assert first.question.startswith("Do mitochondria play a role in remodelling lace plant leaves")
    assert first.long_answer.startswith("Results depicted mitochondrial dynamics")
    assert first.abstract.startswith("Programmed cell death (PCD) is the regulated death of cells")
    assert first.mesh == ("D034901", "D017209", "D002454", "D008928", "D018515")  # Alismataceae … Plant Leaves
    assert report.labels_dropped[UNRESOLVED_NAME] == 52  # names renamed before MeSH 2024
    assert report.mean_labels == pytest.approx(14.40, abs=0.01)


def test_pubmedqa_tiny_with_test_ids(tmp_path, mesh):
    path = tmp_path / "ori_pqal.json"
    items = {
        "1": {"QUESTION": "Q1?", "CONTEXTS": ["A.", "B."], "MESHES": ["Heart"], "LONG_ANSWER": "L1", "YEAR": "2001"},
        "2": {"QUESTION": "Q2?", "CONTEXTS": [], "MESHES": ["Heart"], "LONG_ANSWER": "L2"},
        "3": {"QUESTION": "Q3?", "CONTEXTS": "not a list", "MESHES": ["Heart"]},
        "4": {"QUESTION": "Q4?", "CONTEXTS": ["C."], "MESHES": ["Diabetes Mellitus", "Renamed Thing"]},
        "5": {"QUESTION": "Q5?", "CONTEXTS": ["D."], "MESHES": True},  # found by tests/test_properties.py
    }
    path.write_text(json.dumps(items))
    report = ReadReport()
    records = list(read_pubmedqa(path, mesh, report=report, test_ids=["4"]))
    assert [(r.pmid, r.split, r.mesh) for r in records] == [("1", "train", (HEART,)), ("4", "test", (DM,))]
    assert records[0].abstract == "A. B." and records[0].question == "Q1?" and records[0].long_answer == "L1"
    assert report.skipped == {EMPTY_ABSTRACT: 1, MALFORMED: 2}
    assert report.examples[MALFORMED] == [
        f"{path}, record 3: pmid '3': not an item with a CONTEXTS list",
        f"{path}, record 5: pmid '5': MESHES is not a list of MeSH names",
    ]
    no_tests = list(read_pubmedqa(path, mesh))  # no test_ground_truth.json beside it
    assert {r.split for r in no_tests} == {"train"}


def test_json_files_with_a_byte_order_mark(tmp_path, mesh):
    bom = b"\xef\xbb\xbf"
    bioasq = tmp_path / "allMeSH_2022.json"
    bioasq.write_bytes(bom + BIOASQ.encode())
    assert [r.pmid for r in read_bioasq(bioasq, mesh)] == ["101", "102", "106"]
    item = {"QUESTION": "Q?", "CONTEXTS": ["A."], "MESHES": ["Heart"]}
    pqal = tmp_path / "ori_pqal.json"
    pqal.write_bytes(bom + json.dumps({"1": item, "2": item}).encode())
    (tmp_path / "test_ground_truth.json").write_bytes(bom + b'{"2": "yes"}')
    report = ReadReport()
    assert [(r.pmid, r.split) for r in read_pubmedqa(pqal, mesh, report=report)] == [("1", "train"), ("2", "test")]
    assert report.kept == 2 and not report.skipped
    assert pubmedqa_non_test_pmids(pqal) == {"1"}


# --------------------------------------------------------------------------- PubTator
PUBTATOR = """111|t|Clonidine and heart disease.
111|a|We studied clonidine and diabetes in rats.
111\t0\t9\tClonidine\tChemical\tD003000
111\t14\t27\theart disease\tDisease\tD006331|D003920
111\t40\t48\tdiabetes\tDisease\tD003920
111\t50\t55\tfoo\tChemical\t-1
111\t56\t60\tbar\tChemical\tC012345
111\tCID\tD003000\tD006331

222|t|Only SCR ids.
222|a|Something.
222\t0\t4\tbaz\tChemical\tC000001

333|t|Broken
333|a|Abstract.
333\tnot-a-number\n
444|t|Old id.
444|a|Abstract four.
444\t0\t4\tthing\tDisease\tD999997
444\t5\t9\theart\tDisease\tMESH:D006321
"""


def test_pubtator_records(tmp_path, mesh):
    path = tmp_path / "tiny.PubTator.txt"
    path.write_text(PUBTATOR)
    report = ReadReport()
    records = list(read_pubtator(path, mesh, report=report))
    assert [(r.pmid, r.mesh) for r in records] == [("111", ("D003000", "D006331", DM)), ("444", (HEART,))]
    assert records[0].title == "Clonidine and heart disease."
    assert records[0].abstract == "We studied clonidine and diabetes in rats."
    assert report.labels_ignored == {SCR_ID: 2, UNNORMALISED: 1}
    assert report.labels_dropped == {UNKNOWN_ID: 1}
    assert report.skipped == {NOT_INDEXED: 1, MALFORMED: 1}  # 222 has SCR ids only
    assert report.examples[MALFORMED] == [f"{path}, record 3: mention line with 2 columns"]
    with pytest.raises(DataError, match=r"record 3: malformed record"):
        list(read_pubtator(path, mesh, strict=True))


def test_pubtator_only_c_and_digits_is_a_supplementary_concept(tmp_path, mesh):
    # C012345 is an SCR id (ignored); C50.8 (an ICD-10 code) and C12 are unknown ids, dropped, errors when strict
    path = tmp_path / "icd.PubTator.txt"
    path.write_text(
        "555|t|Breast cancer.\n555|a|Abstract five.\n555\t0\t6\tbreast\tDisease\tC50.8\n"
        "555\t7\t13\tcancer\tDisease\tC012345|C12|D006321\n"
    )
    report = ReadReport()
    records = list(read_pubtator(path, mesh, report=report))
    assert [(r.pmid, r.mesh) for r in records] == [("555", (HEART,))]
    assert report.labels_ignored == {SCR_ID: 1}
    assert report.labels_dropped == {UNKNOWN_ID: 2}
    assert report.examples[UNKNOWN_ID] == [f"{path}, record 1: 'C50.8'", f"{path}, record 1: 'C12'"]
    with pytest.raises(DataError, match=rf"^{path}, record 1: descriptor id not in this MeSH release: 'C50.8'$"):
        list(read_pubtator(path, mesh, strict=True))


def test_pubtator_real_bc5cdr(data_dir, mesh):
    files = sorted((data_dir / "bc5cdr").glob("CDR_*.PubTator.txt"))
    report = ReadReport()
    records = list(read_records("pubtator", files, mesh, report=report))
    assert len(records) == 1500 and len({r.pmid for r in records}) == 1500  # PROVENANCE.md
    assert report.skipped == {} and report.labels_dropped == {}
    first = next(r for r in records if r.pmid == "227508")
    assert first.title == "Naloxone reverses the antihypertensive effect of clonidine."
    assert first.mesh[:3] == ("D009270", "D003000", "D006973")  # naloxone, clonidine, hypertension


def test_unique_records_counts_duplicates():
    report = ReadReport(read=3, kept=3, labels_kept=4)
    records = [
        MeshRecord("1", "", "a", (DM,), "pubtator"),
        MeshRecord("2", "", "b", (HEART,), "pubtator"),
        MeshRecord("1", "", "a", (DM, HEART), "pubmedqa", split="test"),
    ]
    kept = list(unique_records(records, report))
    assert [r.pmid for r in kept] == ["1", "2"]
    # the PubMedQA copy wins even when read later: the record yielded first becomes it (test marking included)
    assert (kept[0].source, kept[0].split, kept[0].mesh) == ("pubmedqa", "test", (DM, HEART))
    assert report.kept == 2 and report.skipped == {DUPLICATE: 1} and report.labels_kept == 3
    assert report.examples[DUPLICATE] == ["pubtator: pmid '1' (also in pubmedqa)"]
    # the update goes to the yielded copy: the caller's own records are as they were read
    assert (records[0].source, records[0].split, records[0].mesh) == ("pubtator", "train", (DM,))
    assert kept[1] == records[1] and kept[1] is not records[1]
    with pytest.raises(DataError, match="duplicate pmid '1'"):
        list(unique_records(records, strict=True))


# --------------------------------------------------------------------------- MEDLINE/PubMed text (.txt, .nbib)
MEDLINE_TEXT = """PMID- 301
OWN - NLM
DP  - 2018 Dec 27
TI  - Heart disease and diabetes: a title long enough to be continued on the
      next line.
AB  - BACKGROUND: First sentence of the abstract, which goes on and
      on. RESULTS: Second
      part.
JT  - Journal of Examples
MH  - *Diabetes Mellitus/drug therapy/metabolism
MH  - Heart/*physiopathology
MH  - Humans
MH  - Not A Heading Anywhere/etiology

PMID- 302
TI  - No abstract here.
MH  - Heart

PMID- 303
TI  - Not indexed yet.
AB  - An abstract without MeSH headings (an in-process citation).
PMID- 304
TI  - Follows without a blank line.
AB  - Abstract four.
MH  - Diabetes Mellitus, Type 2
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_medline_text_records(tmp_path, mesh, newline):
    path = tmp_path / "pubmed.nbib"
    path.write_bytes(MEDLINE_TEXT.replace("\n", newline).encode())
    report = ReadReport()
    records = list(read_medline_text(path, mesh, report=report))
    assert records == [
        MeshRecord(
            "301",
            "Heart disease and diabetes: a title long enough to be continued on the next line.",
            "BACKGROUND: First sentence of the abstract, which goes on and on. RESULTS: Second part.",
            (DM, HEART, "D006801"),  # qualifiers and * stripped, descriptors kept in order
            "medline-text",
            year="2018",
            journal="Journal of Examples",
            major=(DM, HEART),  # *Diabetes Mellitus; Heart/*physiopathology
        ),
        MeshRecord("304", "Follows without a blank line.", "Abstract four.", (T2,), "medline-text"),
    ]
    assert records[0].label_kind == "indexing"
    assert report.read == 4 and report.kept == 2
    assert report.skipped == {EMPTY_ABSTRACT: 1, NOT_INDEXED: 1}
    assert report.labels_dropped == {UNRESOLVED_NAME: 1}
    assert report.examples[UNRESOLVED_NAME] == [f"{path}, record 1: 'Not A Heading Anywhere'"]
    assert report.examples[EMPTY_ABSTRACT] == [f"{path}, record 2: pmid '302'"]


def test_parse_mesh_heading():
    assert parse_mesh_heading("*Diabetes Mellitus, Type 2/drug therapy/*metabolism") == (
        "Diabetes Mellitus, Type 2",
        True,
    )
    assert parse_mesh_heading("Heart/physiopathology") == ("Heart", False)
    assert parse_mesh_heading("Heart/*physiopathology") == ("Heart", True)
    assert parse_mesh_heading("Humans") == ("Humans", False)


def test_medline_text_bad_line_costs_one_citation(tmp_path, mesh):
    body = MEDLINE_TEXT.encode().replace(b"PMID- 302\nTI  - No abstract", b"PMID- 302\nTI  - Caf\xe9 no abstract")
    body = body.replace(b"PMID- 303\n", b"PMID- 303\n<html>junk</html>\n")
    path = tmp_path / "export.txt"
    path.write_bytes(body)
    report = ReadReport()
    assert [r.pmid for r in read_medline_text(path, mesh, report=report)] == ["301", "304"]
    assert report.skipped[MALFORMED] == 2
    assert report.examples[MALFORMED] == [
        f"{path}, record 2: undecodable byte 0xe9 (not utf-8) on line 16 (pmid '302')",
        f"{path}, record 3: line 20: not a 'TAG - value' line: '<html>junk</html>' (pmid '303')",
    ]
    path.write_bytes(body.replace(b"MH  - Not A Heading Anywhere/etiology\n", b""))
    with pytest.raises(DataError, match=r"export\.txt, record 2: malformed record: undecodable byte 0xe9"):
        list(read_medline_text(path, mesh, strict=True))


# --------------------------------------------------------------------------- PubMed XML as it really comes
def _citation(pmid: str, ui: str = "D006321", abstract: str = "Text.") -> str:
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">{pmid}</PMID><Article>'
        f"<ArticleTitle>Title {pmid}</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText></Abstract>"
        f'</Article><MeshHeadingList><MeshHeading><DescriptorName UI="{ui}" MajorTopicYN="N">X</DescriptorName>'
        f'<QualifierName UI="Q000000981" MajorTopicYN="Y">diagnostic imaging</QualifierName></MeshHeading>'
        "</MeshHeadingList></MedlineCitation><PubmedData/></PubmedArticle>\n"
    )


def test_medline_xml_concatenated_documents_are_read_to_the_end(tmp_path, mesh):
    doc = '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet>\n<PubmedArticleSet>\n{}</PubmedArticleSet>'
    path = tmp_path / "saved_twice.xml"
    # three documents one after another (as PubMed saves appended to one file), the last without a declaration
    path.write_text(doc.format(_citation("1") + _citation("2")) + doc.format(_citation("3")) + _citation("4"))
    report = ReadReport()
    records = list(read_medline(path, mesh, report=report))
    assert [r.pmid for r in records] == ["1", "2", "3", "4"] and report.skipped == {}
    assert records[0].major == (HEART,)  # a major qualifier makes the heading a major topic


def test_medline_xml_bad_byte_costs_one_citation(tmp_path, mesh):
    path = tmp_path / "medline.xml"
    body = "<PubmedArticleSet>\n" + _citation("1") + _citation("2", abstract="Caf#") + _citation("3") + "</Pubmed"
    path.write_bytes(body.encode().replace(b"#", b"\xe9"))  # latin-1 é in a UTF-8 file
    report = ReadReport()
    assert [r.pmid for r in read_medline(path, mesh, report=report)] == ["1", "3"]
    assert report.read == 3 and report.skipped == {MALFORMED: 1}
    assert report.examples[MALFORMED] == [f"{path}, record 2: undecodable byte 0xe9 (not utf-8) (pmid '2')"]
    with pytest.raises(DataError, match=r"medline\.xml, record 2: malformed record: undecodable byte 0xe9"):
        list(read_medline(path, mesh, strict=True))


def test_medline_xml_declared_encoding_and_cut_citation(tmp_path, mesh):
    path = tmp_path / "latin1.xml"
    cut = _citation("2")[:150]
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><PubmedArticleSet>' + _citation("1", abstract="Café.")
    path.write_bytes((body + cut + _citation("3") + "</PubmedArticleSet>").encode("latin-1"))
    report = ReadReport()
    records = list(read_medline(path, mesh, report=report))
    assert [(r.pmid, r.abstract) for r in records] == [("1", "Café."), ("3", "Text.")]
    assert report.examples[MALFORMED] == [
        f"{path}, record 2: XML: citation cut off before </MedlineCitation> (pmid '2')"
    ]


def test_medline_xml_declaration_across_a_chunk_boundary_is_kept():
    first = ('<?xml version="1.0"?>\n<PubmedArticleSet>' + _citation("1") + "</PubmedArticleSet>\n").encode()
    second = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<PubmedArticleSet>' + _citation(
        "2", "D006321", "Caf\u00e9."
    ).encode("latin-1")
    chunk = 256
    for pad in range(3 * chunk):  # the second declaration starts at every offset of a few chunks
        blocks = list(citation_blocks(io.BytesIO(first + b"\n" * pad + second), chunk_size=chunk))
        assert [(encoding, broken) for _, encoding, broken in blocks] == [("utf-8", ""), ("iso-8859-1", "")], pad


def test_medline_xml_small_chunks_find_every_citation():
    body = ("<PubmedArticleSet>" + _citation("1") + "<!-- x -->" * 50 + _citation("2") + "</PubmedArticleSet>").encode()
    blocks = list(citation_blocks(io.BytesIO(body), chunk_size=7))
    assert [b.count(b"<PMID") for b, _, broken in blocks] == [1, 1] and {broken for *_, broken in blocks} == {""}


# --------------------------------------------------------------------------- format detection
def test_detect_source(tmp_path, data_dir):
    cases = {
        "a.xml": '\ufeff<?xml version="1.0"?>\n<PubmedArticleSet><PubmedArticle>',
        "b.nbib": "\r\nPMID- 123\r\nTI  - x\r\n",
        "c.json": '{"articles": [{"pmid": "1"}]}',
        "d.json": '{"123": {"QUESTION": "q?", "CONTEXTS": []}}',
        "e.txt": "123|t|Title\n123|a|Abstract\n",
        "README.md": "# not a corpus\n",
        "f.html": "<html><body>PubMed</body></html>",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    got = {name: detect_source(tmp_path / name) for name in cases}
    assert got == {"a.xml": "medline", "b.nbib": "medline-text", "c.json": "bioasq", "d.json": "pubmedqa",
                   "e.txt": "pubtator", "README.md": None, "f.html": None}  # fmt: skip
    assert detect_source(data_dir / "medline_sample" / "medline16n0902.xml.gz") == "medline"
    assert detect_source(data_dir / "bioasq_sample" / "bioasq_sample.json") == "bioasq"
    report = ReadReport()
    groups = resolve_inputs([("auto", [tmp_path / n for n in ("a.xml", "README.md", "b.nbib")])], report)
    assert groups == [("medline", [tmp_path / "a.xml"]), ("medline-text", [tmp_path / "b.nbib"])]
    assert report.unrecognised_files == [str(tmp_path / "README.md")]
    with pytest.raises(DataError, match=r"no input file is in a format biohicl reads .*README\.md"):
        resolve_inputs([("auto", [tmp_path / "README.md"])])


# --------------------------------------------------------------------------- the real PubMed exports
MULTI_DOCUMENT = {  # several XML documents in one file: citations in all / in the first document (manifest.tsv)
    "piratevax__m22_web_semantic__pubmed_result.xml": (10, 1),
    "sbalci__MyRCodesForDataAnalysis__data__PathologyTurkey_2.xml": (300, 100),  # the 300th is cut off
}


def _independent_export_count(folder) -> tuple[dict[str, int], set[str]]:
    """Citations per file and the distinct PMIDs with an abstract and MeSH headings, by regular expressions over
    the raw bytes (no XML parser, no reader code): complete ``<MedlineCitation>`` blocks with an
    ``<Abstract>`` whose ``<AbstractText>`` holds text (after any markup such as ``<i>``; an ``<OtherAbstract>``
    is not the article's abstract) and a ``<DescriptorName>``; text citations with an ``AB`` and an ``MH`` line."""
    import re

    citations: dict[str, int] = {}
    pmids: set[str] = set()
    for path in sorted(folder.iterdir()):
        if path.suffix in {".md", ".tsv"}:
            continue
        raw = path.read_bytes()
        if raw.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<"):
            blocks = re.findall(rb"<MedlineCitation[\s>].*?(?:</MedlineCitation>|\Z)", raw, re.S)
            citations[path.name] = len(blocks)
            for block in blocks:
                if not block.endswith(b"</MedlineCitation>"):
                    continue
                abstract = re.search(rb"<Abstract>.*?</Abstract>", block, re.S)  # not <OtherAbstract>
                text = abstract and re.search(rb"<AbstractText[^>]*>(?:\s|<[^>]*>)*[^<\s]", abstract.group(0))
                if text and b"<DescriptorName" in block:
                    pmids.add(re.search(rb"<PMID[^>]*>\s*(\d+)", block).group(1).decode())
        else:
            text = raw.decode("utf-8").replace("\r\n", "\n")
            blocks = [c for c in re.split(r"\n(?=PMID- )", "\n" + text) if c.strip().startswith("PMID-")]
            citations[path.name] = len(blocks)
            for citation in blocks:
                if re.search(r"^AB  - *\S", citation, re.M) and re.search(r"^MH  - ", citation, re.M):
                    pmids.add(re.search(r"PMID- *(\d+)", citation).group(1))
    return citations, pmids


def test_pubmed_exports_are_read_to_the_end(data_dir, mesh):
    import csv

    folder = data_dir / "pubmed_exports"
    citations, expected = _independent_export_count(folder)
    assert len(citations) == 61 and len(expected) == 4061
    report = ReadReport()
    records = list(read_records("auto", sorted(folder.iterdir()), mesh, report=report))
    assert {r.pmid for r in records} == expected  # every file read to its end, nothing more, nothing less
    assert sorted(Path(p).name for p in report.unrecognised_files) == ["PROVENANCE.md", "manifest.tsv"]
    assert report.read - report.skipped[BOOK] == sum(citations.values()) == 5810  # PathologyTurkey_2's cut-off one too
    assert report.skipped[BOOK] == 9  # <PubmedBookArticle> records: 2 + 1 + 6 in three exports (grep -c)
    assert report.skipped[MALFORMED] == 1 and "record 300: XML: citation cut off" in report.examples[MALFORMED][0]
    assert {r.source for r in records} == {"medline", "medline-text"} and {r.label_kind for r in records} == {
        "indexing"
    }
    assert all(r.abstract and r.mesh and set(r.major) <= set(r.mesh) for r in records)
    with (folder / "manifest.tsv").open(encoding="utf-8") as handle:
        manifest = {row["file"]: int(row["records"]) for row in csv.DictReader(handle, delimiter="\t")}
    for name, (everything, first_document) in MULTI_DOCUMENT.items():
        assert manifest[name] == first_document  # what a parser that stops at the second document sees
        assert sum(1 for r in records if Path(r.origin).name == name) > first_document
        citations[name] = everything
    assert citations == manifest | {n: everything for n, (everything, _) in MULTI_DOCUMENT.items()}


# --------------------------------------------------------------------------- NLM baseline + daily update files
def _nlm_file(path: Path, citations=(), deletions=(), extra: str = "") -> Path:
    """A small NLM distribution file (``pubmed25nNNNN.xml.gz`` layout): ``citations`` as (pmid, abstract, UI)."""
    body = "".join(
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        f"<Article><Journal><Title>J</Title><JournalIssue><PubDate><Year>2019</Year></PubDate></JournalIssue>"
        f"</Journal><ArticleTitle>Title {pmid}.</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText>"
        f'</Abstract></Article><MeshHeadingList><MeshHeading><DescriptorName UI="{ui}" MajorTopicYN="N">x'
        "</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation></PubmedArticle>\n"
        for pmid, abstract, ui in citations
    )
    if deletions:
        body += "<DeleteCitation>\n" + "".join(f'<PMID Version="1">{p}</PMID>\n' for p in deletions)
        body += "</DeleteCitation>\n"
    text = f'<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n{body}{extra}</PubmedArticleSet>\n'
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_nlm_update_file_revision_wins_in_any_order(tmp_path, mesh):
    base = _nlm_file(tmp_path / "pubmed25n0001.xml.gz", [("1", "Old abstract.", DM), ("2", "Other.", DM)])
    update = _nlm_file(tmp_path / "pubmed25n1275.xml.gz", [("1", "Revised abstract.", HEART)])
    for files in ([base, update], [update, base]):
        report = ReadReport()
        kept = list(unique_records(read_records("auto", files, mesh, report=report), report, strict=True))
        assert sorted((r.pmid, r.abstract, r.mesh) for r in kept) == [
            ("1", "Revised abstract.", (HEART,)), ("2", "Other.", (DM,))
        ]  # fmt: skip
        assert next(r for r in kept if r.pmid == "1").origin == str(update)
        assert report.skipped == {REVISED: 1} and report.kept == 2 and report.labels_kept == 2
    # files not named as NLM's keep first-copy-wins (a duplicate, an error when strict)
    other_a, other_b = tmp_path / "a.xml.gz", tmp_path / "b.xml.gz"
    other_a.write_bytes(base.read_bytes())
    other_b.write_bytes(update.read_bytes())
    report = ReadReport()
    kept = list(unique_records(read_records("auto", [other_a, other_b], mesh, report=report), report))
    assert next(r.abstract for r in kept if r.pmid == "1") == "Old abstract." and report.skipped == {DUPLICATE: 1}
    with pytest.raises(DataError, match="duplicate pmid '1'"):
        list(unique_records(read_records("auto", [other_a, other_b], mesh), strict=True))


def test_nlm_delete_citation_drops_earlier_copies_and_a_later_readd_wins(tmp_path, mesh):
    base = _nlm_file(tmp_path / "pubmed25n0001.xml.gz", [("1", "One.", DM), ("2", "Two.", DM), ("3", "Three.", DM)])
    update = _nlm_file(tmp_path / "pubmed25n1275.xml.gz", [("4", "Four.", DM)], deletions=["1", "3", "4"])
    readd = _nlm_file(tmp_path / "pubmed25n1276.xml.gz", [("3", "Three again.", HEART)])
    only_deletion = _nlm_file(tmp_path / "pubmed25n1277.xml.gz", deletions=["2"])
    assert detect_source(only_deletion) == "medline"  # a file with only a <DeleteCitation> block is read
    for files in ([base, update, readd, only_deletion], [only_deletion, readd, update, base]):
        report, deletions = ReadReport(), []
        stream = read_records("auto", files, mesh, report=report, deletions=deletions)
        kept = list(unique_records(stream, report, strict=True, deletions=deletions))
        live = sorted((r.pmid, r.abstract) for r in kept if r.split != DELETED_SPLIT)
        # 1 and 2 deleted by later files; 3 re-added after its deletion; 4 deleted by its own file (not later): kept
        assert live == [("3", "Three again."), ("4", "Four.")]
        assert report.kept == 2 and report.unrecognised_files == []
        assert report.skipped[DELETED] == 3 and report.labels_kept == 2  # 1, 2 and the baseline's 3
    # a <DeleteCitation> in a file not named as NLM's is ignored
    other = tmp_path / "deletions.xml.gz"
    other.write_bytes(update.read_bytes())
    report, deletions = ReadReport(), []
    kept = list(unique_records(read_records("auto", [base, other], mesh, report=report, deletions=deletions), report))
    assert [r.pmid for r in kept if r.split != DELETED_SPLIT] == ["1", "2", "3", "4"] and deletions == []


def test_medline_xml_counts_suppl_concepts_books_and_retracted_without_changing_records(tmp_path, mesh):
    citation = (
        '<PubmedArticle><MedlineCitation Status="MEDLINE"><PMID Version="1">{pmid}</PMID><Article><ArticleTitle>T.'
        "</ArticleTitle><Abstract><AbstractText>Abstract {pmid}.</AbstractText></Abstract><PublicationTypeList>"
        '<PublicationType UI="D016428">Journal Article</PublicationType>{types}</PublicationTypeList></Article>'
        f'<MeshHeadingList><MeshHeading><DescriptorName UI="{DM}">x</DescriptorName></MeshHeading></MeshHeadingList>'
        "{suppl}</MedlineCitation></PubmedArticle>\n"
    )
    suppl = (
        '<SupplMeshList><SupplMeshName Type="Disease" UI="C000657245">COVID-19</SupplMeshName>'
        '<SupplMeshName Type="Protocol" UI="C000000001">P</SupplMeshName></SupplMeshList>'
    )
    retracted = '<PublicationType UI="D016441">Retracted Publication</PublicationType>'
    book = (
        '<PubmedBookArticle><BookDocument><PMID Version="1">9</PMID><ArticleTitle>Book.</ArticleTitle><Abstract>'
        "<AbstractText>A book chapter.</AbstractText></Abstract></BookDocument></PubmedBookArticle>\n"
    )
    body = citation.format(pmid=1, types="", suppl=suppl) + book + citation.format(pmid=2, types=retracted, suppl="")
    path = _nlm_file(tmp_path / "pubmed25n0001.xml.gz", extra=body)
    report = ReadReport()
    records = list(read_medline(path, mesh, report=report, strict=True))
    assert [(r.pmid, r.abstract, r.mesh) for r in records] == [("1", "Abstract 1.", (DM,)), ("2", "Abstract 2.", (DM,))]
    assert report.read == 3 and report.kept == 2 and report.skipped == {BOOK: 1}
    assert report.labels_ignored == {SCR_ID: 2} and report.noted == {RETRACTED: 1}
    assert report.to_dict()["noted"] == {RETRACTED: 1} and "kept, noted: retracted publication" in report.summary()
    book_only = _nlm_file(tmp_path / "books.xml.gz", extra=book)
    assert detect_source(book_only) == "medline"


def test_medline_xml_and_text_readers_as_documented(tmp_path, mesh):
    """docs/data.md: the XML reader joins a structured abstract's sections without their labels while the
    MEDLINE-text reader keeps PubMed's ``LABEL: ``; the year is PubDate/Year only (a MedlineDate gives ""); the
    citation Status is not checked (a record with MeSH is used whatever its status); retracted ones are kept."""
    xml = (
        '<PubmedArticleSet><PubmedArticle><MedlineCitation Status="In-Process"><PMID>5</PMID><Article><Journal>'
        "<JournalIssue><PubDate><MedlineDate>2019 Jan-Feb</MedlineDate></PubDate></JournalIssue></Journal>"
        '<ArticleTitle>T.</ArticleTitle><Abstract><AbstractText Label="BACKGROUND">First part.</AbstractText>'
        '<AbstractText Label="RESULTS">Second part.</AbstractText></Abstract><PublicationTypeList>'
        "<PublicationType>Retracted Publication</PublicationType></PublicationTypeList></Article>"
        f'<MeshHeadingList><MeshHeading><DescriptorName UI="{DM}">x</DescriptorName></MeshHeading></MeshHeadingList>'
        "</MedlineCitation></PubmedArticle></PubmedArticleSet>"
    )
    (tmp_path / "a.xml").write_text(xml, encoding="utf-8")
    text = (
        "PMID- 6\nDP  - 2019\nTI  - T.\nAB  - BACKGROUND: First part. RESULTS: Second part.\nMH  - Diabetes Mellitus\n"
    )
    (tmp_path / "b.txt").write_text(text, encoding="utf-8")
    [from_xml] = read_medline(tmp_path / "a.xml", mesh)
    [from_text] = read_medline_text(tmp_path / "b.txt", mesh)
    assert (from_xml.abstract, from_xml.year, from_xml.mesh) == ("First part. Second part.", "", (DM,))
    assert from_text.abstract == "BACKGROUND: First part. RESULTS: Second part."


def test_ids_are_quoted_in_reader_messages(tmp_path, mesh):
    """A skipped record names its id quoted (``pmid 'doc 7'``, ``pmid ''``), so an id with spaces, or an empty one,
    is not read into the words around it."""
    jsonl = tmp_path / "mine.jsonl"
    rows = [{"id": "doc 7", "abstract": " ", "mesh": [HEART]}, {"id": "doc 8", "abstract": "x", "mesh": ["No Such"]}]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    pubtator = tmp_path / "p.PubTator.txt"
    pubtator.write_text("7 8|t|Title\n7 8|a|\n\n|t|Title\n\n", encoding="utf-8")
    medline = tmp_path / "export.txt"
    medline.write_text("PMID- 12 34\nTI  - T\n<junk>\n\nTI  - No PMID\n<junk>\n", encoding="utf-8")
    report = ReadReport()
    for source, path in (("jsonl", jsonl), ("pubtator", pubtator), ("medline-text", medline)):
        assert list(read_records(source, path, mesh, report=report)) == []
    assert report.examples[EMPTY_ABSTRACT] == [f"{jsonl}: line 1: pmid 'doc 7'", f"{pubtator}, record 1: pmid '7 8'"]
    assert report.examples[NO_LABELS] == [f"{jsonl}: line 2: pmid 'doc 8'"]
    assert report.examples[MALFORMED] == [
        f"{pubtator}, record 2: pmid '': missing title or abstract line",
        f"{medline}, record 1: line 3: not a 'TAG - value' line: '<junk>' (pmid '12 34')",
        f"{medline}, record 2: line 6: not a 'TAG - value' line: '<junk>' (pmid '')",
    ]
