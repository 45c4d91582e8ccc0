"""An input file that gives nothing is said: one given with the wrong ``--source`` (0 records read) is one warning
naming the format detection's guess (an error when strict), and an empty file is ``FILE: empty file; left out``
whatever its format and however it was given; a build left with no file to read names the empty ones."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from biohicl.data.build import build_dataset_from_files
from biohicl.data.read_report import ReadReport
from biohicl.data.sources import read_records, resolve_inputs
from biohicl.errors import DataError

NAMES = ["Humans", "Diabetes Mellitus", "Heart", "Neoplasms", "Obesity"]


def write_nbib(path: Path, n: int = 3) -> Path:
    blocks = [
        f"PMID- {200 + i}\nTI  - Title {i}\nAB  - Abstract {i}.\nMH  - {NAMES[i % 5]}\nMH  - *{NAMES[(i + 1) % 5]}\n"
        for i in range(n)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def write_xml(path: Path, n: int = 2) -> Path:
    citations = "".join(
        f"<PubmedArticle><MedlineCitation><PMID>{300 + i}</PMID><Article><ArticleTitle>T {i}</ArticleTitle>"
        f"<Abstract><AbstractText>Abstract {i}.</AbstractText></Abstract></Article><MeshHeadingList><MeshHeading>"
        f"<DescriptorName>{NAMES[i]}</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>"
        "</PubmedArticle>"
        for i in range(n)
    )
    path.write_text(f'<?xml version="1.0"?>\n<PubmedArticleSet>{citations}</PubmedArticleSet>\n', encoding="utf-8")
    return path


def write_jsonl(path: Path, n: int = 12) -> Path:
    rows = [{"pmid": str(100 + i), "title": f"T {i}", "abstract": f"A {i}.", "mesh": NAMES[i % 5 : i % 5 + 2]}
            for i in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- a file read with the wrong --source
@pytest.mark.parametrize(
    ("source", "writer", "name", "guess"),
    [("medline", write_nbib, "export.nbib", "medline-text"), ("medline-text", write_xml, "export.xml", "medline")],
)
def test_wrong_source_reading_nothing_is_one_warning_with_the_guess(
    tmp_path, mesh, caplog, source, writer, name, guess
):
    path = writer(tmp_path / name)
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        assert list(read_records(source, [path], mesh, report=report)) == []
    said = [m for m in warnings_of(caplog) if "check --source" in m]
    assert said == [f"{path}: no {source} record read (it looks like {guess}; check --source)"]
    with pytest.raises(DataError, match=rf"{name}: no {source} record read \(it looks like {guess}; check --source\)"):
        list(read_records(source, [path], mesh, strict=True))


def test_wrong_source_of_no_known_format_says_so(tmp_path, mesh, caplog):
    notes = tmp_path / "notes.csv"
    notes.write_text("pmid,title\n1,x\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert list(read_records("medline", [notes], mesh)) == []
    assert f"{notes}: no medline record read (it is in no format biohicl detects; check --source)" in warnings_of(
        caplog
    )


def test_wrong_source_with_every_record_malformed_names_the_guess(tmp_path, mesh, caplog):
    path = write_nbib(tmp_path / "export.nbib")  # every line is a malformed JSON line: counted, and the cause said
    with caplog.at_level(logging.WARNING):
        assert list(read_records("jsonl", [path], mesh)) == []
    assert f"{path}: no jsonl record kept of 15 read (it looks like medline-text; check --source)" in warnings_of(
        caplog
    )


def test_right_source_reading_nothing_is_no_such_warning(tmp_path, mesh, caplog):
    """A file of the format asked whose records were all skipped (counted, with their reasons), or an XML file of
    ``<DeleteCitation>`` only, is not a wrong ``--source``."""
    unlabelled = tmp_path / "a.jsonl"
    unlabelled.write_text('{"pmid": "1", "title": "t", "abstract": "a", "mesh": []}\n', encoding="utf-8")
    deletions = tmp_path / "pubmed25n1300.xml"
    deletions.write_text("<PubmedArticleSet><DeleteCitation><PMID>5</PMID></DeleteCitation></PubmedArticleSet>\n")
    with caplog.at_level(logging.WARNING):
        assert list(read_records("jsonl", [unlabelled], mesh)) == []
        assert list(read_records("medline", [deletions], mesh, deletions=[])) == []
    assert not [m for m in warnings_of(caplog) if "check --source" in m]


def test_build_with_a_wrong_source_file_warns_and_reads_the_rest(tmp_path, mesh, caplog):
    nbib, jsonl = write_nbib(tmp_path / "export.nbib"), write_jsonl(tmp_path / "mine.jsonl")
    with caplog.at_level(logging.WARNING):
        _, summary = build_dataset_from_files(
            [("medline", [nbib]), ("jsonl", [jsonl])], None, mesh, progress=False, decontaminate=False
        )
    assert summary.documents == 12
    assert f"{nbib}: no medline record read (it looks like medline-text; check --source)" in warnings_of(caplog)


# --------------------------------------------------------------------------- empty files
EMPTY = {
    "empty.nbib": b"",
    "empty.jsonl": b"",
    "blank.xml": b"\n  \r\n\t\n",
    "bom.json": b"\xef\xbb\xbf\r\n",
    "utf16.txt": "\ufeff\n \n".encode("utf-16"),
}


def write_empty(tmp_path: Path) -> list[Path]:
    paths = []
    for name, content in EMPTY.items():
        (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    with gzip.open(tmp_path / "blank.xml.gz", "wb") as handle:
        handle.write(b"  \n")
    (tmp_path / "zero.jsonl.gz").write_bytes(b"")
    return [*paths, tmp_path / "blank.xml.gz", tmp_path / "zero.jsonl.gz"]


@pytest.mark.parametrize("source", ["auto", "medline-text", "jsonl", "medline"])
def test_an_empty_file_is_left_out_with_one_warning_whatever_its_source(tmp_path, caplog, source):
    empty = write_empty(tmp_path)
    good = write_jsonl(tmp_path / "mine.jsonl")
    with caplog.at_level(logging.WARNING):
        groups = resolve_inputs([(source, empty), ("jsonl", [good])])
    assert groups == [("jsonl", [good])]
    assert warnings_of(caplog) == [f"{path}: empty file; left out" for path in empty]


def test_only_empty_files_is_one_error_naming_them(tmp_path):
    empty = write_empty(tmp_path)[:2]
    for source in ("auto", "medline-text"):
        with pytest.raises(DataError, match=r"no input file to read: empty: .*empty\.nbib, .*empty\.jsonl$"):
            resolve_inputs([(source, empty)])
    notes = tmp_path / "notes.txt"
    notes.write_text("my search strategy\n")
    with pytest.raises(DataError, match=r"empty: .*empty\.nbib.*; not in a format biohicl reads .*notes\.txt"):
        resolve_inputs([("auto", [*empty, notes])])


def test_build_of_empty_files_only_names_them(tmp_path, run_cli):
    empty = tmp_path / "empty.nbib"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    result = run_cli(["build-dataset", "--source", "medline-text", "--input", str(empty), "--output", str(out),
                      "--no_progress", "--no_arrow"])  # fmt: skip
    assert "no input file to read: empty:" in result.err and "empty.nbib" in result.err
    assert not out.exists()


def test_build_with_an_empty_jsonl_reads_the_rest(tmp_path, run_cli, caplog):
    """An empty ``.jsonl`` found by detection is an empty file, not 'JSON lines with no MeSH label field'."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    good = write_jsonl(tmp_path / "mine.jsonl")
    with caplog.at_level(logging.WARNING):
        result = run_cli(["build-dataset", "--input", str(empty), str(good), "--output", str(tmp_path / "out"),
                          "--no_progress", "--no_arrow"], expect_error=False)  # fmt: skip
    assert result.code == 0, result.err
    assert f"{empty}: empty file; left out" in warnings_of(caplog)
    assert "no MeSH label field" not in result.err
