"""A build's ``summary.json`` says what each input file gave (``read.per_file``: read and kept, keyed by the recorded
path ``read.files`` uses) and which were empty (``read.empty_files``); with ``--strict`` an empty file stops the
build in one line naming it, as a file that gives no record under its ``--source`` does."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from biohicl.data.build import build_dataset_from_files
from biohicl.data.dataset_card import render_dataset_card
from biohicl.data.read_report import ReadReport
from biohicl.data.sources import read_records, resolve_inputs
from biohicl.data.storage import load_pair_dataset
from biohicl.errors import DataError
from tests.bad_inputs.test_input_files_read import write_nbib, write_xml  # the same small exports


def write_jsonl(path: Path) -> Path:
    """Three lines: a copy of the XML file's PMID 300 (dropped as a duplicate), an empty abstract, one kept."""
    rows = [
        {"pmid": "300", "title": "Copy", "abstract": "A copy.", "mesh": ["Heart"]},
        {"pmid": "101", "title": "No abstract", "abstract": "", "mesh": ["Heart"]},
        {"pmid": "102", "title": "Kept", "abstract": "Kept.", "mesh": ["Obesity"]},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def exports(tmp_path: Path) -> tuple[list[Path], Path]:
    """Three corpus files and an empty one in ``exports/`` (outside the data directory: recorded ``exports/X``)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    files = [write_xml(folder / "a.xml"), write_nbib(folder / "b.nbib"), write_jsonl(folder / "c.jsonl")]
    empty = folder / "empty.xml"
    empty.write_bytes(b"\n")
    return files, empty


def test_summary_json_records_read_and_kept_per_file_and_the_empty_files(tmp_path, mesh):
    files, empty = exports(tmp_path)
    out = tmp_path / "out"
    build_dataset_from_files(
        [("auto", [files[0], empty, *files[1:]])], out, mesh, top_k=2, progress=False, arrow=False,
        decontaminate=False, dev_split=None,
    )  # fmt: skip
    read = json.loads((out / "summary.json").read_text(encoding="utf-8"))["read"]
    assert read["files"] == ["exports/a.xml", "exports/b.nbib", "exports/c.jsonl"]
    assert read["per_file"] == {
        "exports/a.xml": {"read": 2, "kept": 2},
        "exports/b.nbib": {"read": 3, "kept": 3},
        "exports/c.jsonl": {"read": 3, "kept": 1},  # a duplicate of a.xml's 300 and an empty abstract
    }
    assert sum(counts["kept"] for counts in read["per_file"].values()) == read["kept"] == 6
    assert sum(counts["read"] for counts in read["per_file"].values()) == read["read"] == 8
    assert read["empty_files"] == ["exports/empty.xml"]
    assert len(load_pair_dataset(out)["documents"]) == 6


def test_a_file_that_gives_nothing_is_counted_with_zero(tmp_path, mesh):
    files, _ = exports(tmp_path)
    unlabelled = tmp_path / "exports" / "d.jsonl"
    unlabelled.write_text('{"pmid": "9", "title": "t", "abstract": "a", "mesh": []}\n', encoding="utf-8")
    report = ReadReport()
    assert len(list(read_records("jsonl", [files[2], unlabelled], mesh, report=report))) == 2
    assert report.to_dict()["per_file"] == {"exports/c.jsonl": {"read": 3, "kept": 2}, "exports/d.jsonl": {
        "read": 1, "kept": 0}}  # fmt: skip
    assert report.to_dict()["empty_files"] == []


def test_the_printed_report_has_one_line_per_file_only_for_several_files(tmp_path, mesh):
    files, empty = exports(tmp_path)
    report = ReadReport()
    list(read_records("auto", [files[0], empty, files[1]], mesh, report=report))
    lines = report.summary().splitlines()
    # the full paths, as the report's examples and unrecognised files (summary.json records them relative)
    assert [line for line in lines if line.startswith("  file ")] == [
        f"  file {files[0]}: read 2; kept by the reader 2",
        f"  file {files[1]}: read 3; kept by the reader 3",
    ]
    assert f"  files not read (empty): {empty}" in lines
    one = ReadReport()
    list(read_records("auto", [files[0]], mesh, report=one))
    assert not [line for line in one.summary().splitlines() if line.startswith("  file")]


def test_per_file_lines_read_a_summary_from_before_the_fields():
    """``summary.json`` of an older build has no ``per_file`` nor ``empty_files``: nothing to print, no error."""
    from biohicl.data.read_report import per_file_lines

    old = {"read": 5, "kept": 5, "files": ["exports/a.xml", "exports/b.nbib"], "unrecognised_files": []}
    assert per_file_lines(old) == []
    assert per_file_lines({**old, "per_file": {"exports/a.xml": {"read": 5, "kept": 5}}}) == []
    two = {"exports/a.xml": {"read": 2, "kept": 2}, "exports/b.nbib": {"read": 3, "kept": 1}}
    assert per_file_lines({**old, "per_file": two, "empty_files": ["exports/e.xml"]}) == [
        "  file exports/a.xml: read 2; kept by the reader 2",
        "  file exports/b.nbib: read 3; kept by the reader 1",
        "  files not read (empty): exports/e.xml",
    ]


def test_more_than_ten_files_print_those_that_kept_nothing_and_a_count_of_the_others():
    """The default build reads 64 files: a line each buried the rest of the printout. Above 10 files only the files
    whose reader kept nothing are named (all of them), the others counted, as the dropped-names tally is capped."""
    from biohicl.data.read_report import per_file_lines

    counts = {f"exports/f{i:02}.xml": {"read": 3, "kept": 0 if i in (4, 11) else 2} for i in range(12)}
    assert per_file_lines({"per_file": counts, "empty_files": ["exports/e.xml"]}) == [
        "  file exports/f04.xml: read 3; kept by the reader 0",
        "  file exports/f11.xml: read 3; kept by the reader 0",
        "  ... and 10 more files: summary.json read.per_file",
        "  files not read (empty): exports/e.xml",
    ]
    kept = {path: {"read": 3, "kept": 2} for path in counts}
    assert per_file_lines({"per_file": kept}) == [
        "  12 files, each with a record kept by the reader: summary.json read.per_file"
    ]
    one_left = {
        **{f"exports/g{i:02}.xml": {"read": 1, "kept": 0} for i in range(10)},
        "exports/h.xml": counts["exports/f00.xml"],
    }
    assert per_file_lines({"per_file": one_left})[-1] == "  ... and 1 more file: summary.json read.per_file"
    ten = dict(list(counts.items())[:10])
    assert len(per_file_lines({"per_file": ten})) == 10  # 10 files or fewer: all, as before


def test_the_dataset_card_renders_from_a_summary_with_and_without_the_new_fields(tmp_path, mesh):
    files, empty = exports(tmp_path)
    out = tmp_path / "out"
    dataset, _ = build_dataset_from_files(
        [("auto", [*files, empty])], out, mesh, top_k=2, progress=False, arrow=False, decontaminate=False,
        dev_split=None,
    )  # fmt: skip
    saved = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    old = json.loads(json.dumps(saved))
    del old["read"]["per_file"], old["read"]["empty_files"]
    assert render_dataset_card(dataset, saved) == render_dataset_card(dataset, old)


def test_strict_stops_at_an_empty_file_naming_it(tmp_path, mesh, caplog):
    files, empty = exports(tmp_path)
    for source in ("auto", "medline"):
        with pytest.raises(DataError, match=rf"^{re.escape(str(empty))}: empty file; nothing to read$"):
            resolve_inputs([(source, [files[0], empty])], strict=True)
    with pytest.raises(DataError, match=rf"^{re.escape(str(empty))}: empty file"):
        build_dataset_from_files(
            [("auto", [*files, empty])], tmp_path / "out", mesh, strict=True, progress=False, decontaminate=False,
            dev_split=None,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
    with caplog.at_level(logging.WARNING):  # not strict: left out with a warning, as before
        assert resolve_inputs([("medline", [files[0], empty])]) == [("medline", [files[0]])]
    assert f"{empty}: empty file; left out" in [r.getMessage() for r in caplog.records]


def test_the_build_prints_one_line_per_file_only_for_several_files(tmp_path, capsys):
    from biohicl.cli.main import main

    files, empty = exports(tmp_path)
    common = ["--output", str(tmp_path / "out"), "--top_k", "2", "--no_progress", "--no_arrow", "--no_decontaminate"]
    assert main(["build-dataset", "--input", *map(str, [*files, empty]), *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("  file")] == [
        "  file exports/a.xml: read 2; kept by the reader 2",
        "  file exports/b.nbib: read 3; kept by the reader 3",
        "  file exports/c.jsonl: read 3; kept by the reader 1",
        "  files not read (empty): exports/empty.xml",
    ]
    assert main(["build-dataset", "--input", str(files[1]), *common]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("  file")]
