"""One wording for where bad input sits: a line of a text or JSON lines file is ``FILE: line N`` (``location``'s
``line=``), a JSON syntax error carries its column (``not valid JSON (... at column C)``), and a record that is no
line (an XML descriptor, a PubTator block) stays ``FILE, record N``. And ``build-dataset`` refuses one file given
twice before reading any input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from biohicl import errors
from biohicl.data.documents import numbered_records
from biohicl.data.jsonl import read_jsonl
from biohicl.data.pubmedqa import load_pubmedqa_test_ids
from biohicl.data.read_report import ReadReport
from biohicl.data.records import DUPLICATE, MALFORMED, UNRESOLVED_NAME
from biohicl.data.sources import read_records, unique_records
from biohicl.errors import ConfigError, DataError, PublishError
from biohicl.evaluation.pubmedqa import load_pubmedqa
from biohicl.jsonio import read_json
from biohicl.mesh.formats import read_descriptor_xml, read_mtrees, read_tsv

TREE_RULE = "must look like C18.452.394 (a capital letter and 2 digits, then groups of a dot and 3 digits)"
CUT = "not valid JSON (Unterminated string starting at column 27)"  # '{"pmid": "2", "abstract": "cut'


def test_json_error_gives_the_decoders_message_and_column():
    with pytest.raises(json.JSONDecodeError) as raised:
        json.loads('{"a": 1,\n "b" 2}')
    assert (raised.value.lineno, errors.json_error(raised.value)) == (
        2,
        "not valid JSON (Expecting ':' delimiter at column 6)",
    )


@pytest.mark.parametrize(
    ("name", "text", "reader", "message"),
    [
        ("2019MeshTree.txt", "Tree Number\tDesc Ui\tTerm\nC04\tD009369\tNeoplasms\nC50.9\tD001943\tBreast\n", read_tsv,
         f"line 3: tree number 'C50.9' {TREE_RULE}"),
        ("mesh.tsv", "D009369\tNeoplasms\t\tC04\nD001943\tBreast\n", read_tsv,
         "line 2: expected 4 tab-separated columns (descriptor UI, name, entry terms, tree numbers), got 2"),
        ("mesh.tsv", "# a comment\nD0 09369\tNeoplasms\t\tC04\n", read_tsv,
         "line 2: descriptor UI 'D0 09369' must look like D012345 or GO:0008150 (one word: no spaces, `|` or `;`)"),
        ("mtrees2019.bin", "Neoplasms;C04\nBreast C50\n", lambda p: read_mtrees(p, {}),
         "line 2: expected `name;tree number`: no `;` in the line"),
    ],
)  # fmt: skip
def test_mesh_text_formats_name_the_line(tmp_path, name, text, reader, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as raised:
        reader(path)
    assert str(raised.value) == f"{path}: {message}"
    assert raised.value.line == int(message.split()[1].rstrip(":")) and raised.value.record is None


def test_mesh_descriptor_xml_still_names_its_record(tmp_path):
    path = tmp_path / "desc2019.xml"
    record = "<DescriptorRecord><DescriptorUI>D001943</DescriptorUI><DescriptorName><String>Breast</String>"
    record += "</DescriptorName><TreeNumberList><TreeNumber>C50.9</TreeNumber></TreeNumberList></DescriptorRecord>"
    path.write_text(f"<DescriptorRecordSet>{record}</DescriptorRecordSet>", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_descriptor_xml(path)
    assert str(raised.value) == f"{path}, record 1: tree number 'C50.9' {TREE_RULE}"


def write_jsonl(path, *lines: str) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


GOOD = '{"pmid": "1", "abstract": "A.", "mesh": ["Humans"]}'


def test_jsonl_source_names_the_line_and_the_json_column(tmp_path, mesh):
    path = tmp_path / "mine.jsonl"
    write_jsonl(path, GOOD, '{"pmid": "2", "abstract": "cut', '{"pmid": "3", "abstract": "C.", "mesh": ["Nope Nope"]}')
    report = ReadReport()
    assert [r.pmid for r in read_jsonl(path, mesh, report=report)] == ["1"]
    assert report.examples[MALFORMED] == [f"{path}: line 2: {CUT}"]
    with pytest.raises(DataError) as raised:
        list(read_jsonl(path, mesh, strict=True))
    assert str(raised.value) == f"{path}: line 2: {MALFORMED}: {CUT}" and raised.value.line == 2
    write_jsonl(path, GOOD, "", '{"pmid": "3", "abstract": "C.", "mesh": ["Nope Nope"]}')
    with pytest.raises(DataError) as raised:
        list(read_jsonl(path, mesh, strict=True))
    assert str(raised.value) == f"{path}: line 3: {UNRESOLVED_NAME}: 'Nope Nope'"


def test_a_repeated_jsonl_pmid_names_both_lines(tmp_path, mesh):
    path = tmp_path / "mine.jsonl"
    write_jsonl(path, GOOD, "", GOOD)
    report = ReadReport()
    assert [r.pmid for r in unique_records(read_records("jsonl", path, mesh, report=report), report)] == ["1"]
    assert report.examples[DUPLICATE] == [f"{path}: line 3: pmid '1' (also in {path}: line 1)"]
    with pytest.raises(DataError) as raised:
        list(unique_records(read_records("jsonl", path, mesh), strict=True))
    assert str(raised.value) == f"{path}: line 3: duplicate pmid '1' (also in {path}: line 1)"


def test_pubtator_blocks_still_say_record(tmp_path, mesh):
    path = tmp_path / "tiny.PubTator.txt"
    path.write_text("1|t|Title one.\n1|a|\n\n", encoding="utf-8")
    report = ReadReport()
    assert list(read_records("pubtator", path, mesh, report=report)) == []
    assert report.examples["empty abstract"] == [f"{path}, record 1: pmid '1'"]


def test_read_json_names_the_line_and_column(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{\n  "a": 1,\n  "b" 2\n}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_json(path)
    assert str(raised.value) == f"{path}: line 3: not valid JSON (Expecting ':' delimiter at column 7)"
    assert raised.value.line == 3
    path.write_text('{"results": ', encoding="utf-8")
    with pytest.raises(PublishError) as raised:
        read_json(path, error=PublishError)
    assert str(raised.value) == f"{path}: line 1: not valid JSON (Expecting value at column 13)"


def test_evaluation_pubmedqa_files_name_the_line_and_column(tmp_path):
    data = tmp_path / "ori_pqal.json"
    data.write_text('{\n "1": {"QUESTION": "q"\n}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_pubmedqa("all", data)
    assert str(raised.value) == f"{data}: line 4: not valid JSON (Expecting ',' delimiter at column 1)"
    data.write_text(json.dumps({"1": {"QUESTION": "q", "LONG_ANSWER": "a", "CONTEXTS": ["c"]}}), encoding="utf-8")
    tests = tmp_path / "test_ground_truth.json"
    tests.write_text('{"1": "yes",\n "2" "no"}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_pubmedqa("test", data, tests)
    assert str(raised.value) == f"{tests}: line 2: not valid JSON (Expecting ':' delimiter at column 6)"


NOT_UTF8 = "cannot decode the file: byte 0xe9 that is not utf-8; convert it to UTF-8 (`iconv -f latin1 -t utf-8`)"


def test_evaluation_pubmedqa_files_not_utf8_are_one_line_naming_them(tmp_path):
    """A latin-1 byte said as the dataset builder's reader says it (before: a ``UnicodeDecodeError`` traceback); a
    byte-order mark still read, and a given file that is not there named (before: a ``FileNotFoundError``
    traceback)."""
    data = tmp_path / "ori_pqal.json"
    data.write_bytes(b'{"1": {"QUESTION": "caf\xe9?", "LONG_ANSWER": "a", "CONTEXTS": ["c"]}}')
    with pytest.raises(DataError) as raised:
        load_pubmedqa("all", data)
    assert str(raised.value) == f"{data}: {NOT_UTF8}"
    data.write_bytes(b'\xef\xbb\xbf{"1": {"QUESTION": "q", "LONG_ANSWER": "a", "CONTEXTS": ["c"]}}')
    tests = tmp_path / "test_ground_truth.json"
    tests.write_bytes(b'{"1": "y\xe9s"}')
    with pytest.raises(DataError) as raised:
        load_pubmedqa("test", data, tests)
    assert str(raised.value) == f"{tests}: {NOT_UTF8}"
    tests.write_bytes(b'\xef\xbb\xbf{"1": "yes"}')
    assert list(load_pubmedqa("test", data, tests)[0]) == ["1"]
    with pytest.raises(DataError) as raised:
        load_pubmedqa("test", data, tmp_path / "missing.json")
    assert str(raised.value) == f"{tmp_path / 'missing.json'}: input file not found"


def test_pubmedqa_test_ids_name_the_line_and_column(tmp_path):
    tests = tmp_path / "test_ground_truth.json"
    tests.write_text('{"1": "yes",\n "2" "no"}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_pubmedqa_test_ids(tests)
    assert str(raised.value) == f"{tests}: line 2: not valid JSON (Expecting ':' delimiter at column 6)"
    assert raised.value.line == 2


def test_training_documents_name_the_line_and_column(tmp_path):
    array = tmp_path / "docs.json"
    array.write_text('[\n {"pmid": "1", "mesh": []},\n {"pmid": "2" "mesh": []}\n]\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        numbered_records(array)
    assert str(raised.value) == f"{array}: line 3: not valid JSON (Expecting ',' delimiter at column 15)"
    lines = tmp_path / "docs.jsonl"
    lines.write_text('{"pmid": "1"}\n{"pmid": \n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        numbered_records(lines)
    assert str(raised.value) == f"{lines}: line 2: not valid JSON (Expecting value at column 10)"
    assert raised.value.line == 2
    array.write_text('[{"pmid": "1"}, 7]', encoding="utf-8")  # no lines in it: its element
    with pytest.raises(DataError) as raised:
        numbered_records(array)
    assert str(raised.value) == f"{array}: element 2: expected a JSON object per document, got int"


def test_build_dataset_refuses_one_file_given_twice_before_reading(tmp_path, monkeypatch, capsys):
    """The same file (same resolved path, however spelt) twice was read twice: its documents counted as
    duplicates of themselves. It is one line naming it, before any input is read and before the MeSH table loads
    (a --mesh that does not exist is never reached). A path that is no file (missing) is no repeat: it is said
    missing."""
    from biohicl.cli.main import main as cli
    from biohicl.data import build_dataset_from_files

    path = tmp_path / "in" / "mine.jsonl"
    path.parent.mkdir()
    write_jsonl(path, GOOD)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = ["build-dataset", "--input", "in/mine.jsonl", "--source", "jsonl", "--input", str(path), "--output",
            str(out), "--no_progress", "--no_arrow", "--mesh", "no-such-mesh.xml"]  # fmt: skip
    assert cli(argv) == 2
    message = f"in/mine.jsonl: given twice as an input (as in/mine.jsonl and {path}); give each file once"
    assert capsys.readouterr().err.strip().splitlines() == [f"biohicl build-dataset: error: {message}"]
    assert not out.exists()
    with pytest.raises(DataError) as raised:
        build_dataset_from_files([("auto", ["in/nope.jsonl", "in/../in/nope.jsonl"])], None, mesh=None)
    assert str(raised.value) == "in/nope.jsonl: input file not found"
    with pytest.raises(ConfigError, match=r"^in/mine\.jsonl: given twice as an input; give each file once$"):
        list(read_records("jsonl", ["in/mine.jsonl", "in/mine.jsonl"]))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["loop/a"], "loop/a: input file not found"),
        (["in", "in"], "in: is a folder, not a file (it holds: mine.jsonl); name one of its files"),
        (["-", "-"], "-: input file not found"),
        (["in/mine.jsonl", "loop/a", "loop/a"], "loop/a: input file not found"),
    ],
)
def test_build_dataset_input_that_is_no_file_is_said_so_not_given_twice(tmp_path, monkeypatch, capsys, inputs,
                                                                         message):  # fmt: skip
    """A symlink loop was a ``RuntimeError`` traceback (``path.resolve()``), and a folder or a missing path given
    twice was "given twice as an input", hiding what is wrong with it: only files count as repeats."""
    from biohicl.cli.main import main as cli

    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "mine.jsonl", GOOD)
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "a").symlink_to("b")
    (tmp_path / "loop" / "b").symlink_to("a")
    monkeypatch.chdir(tmp_path)
    argv = ["build-dataset", "--input", *inputs, "--output", "out", "--no_progress", "--mesh", "no-such-mesh.xml"]
    assert cli(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"biohicl build-dataset: error: {message}"]


def test_inputs_given_as_a_generator_or_a_glob_are_read(tmp_path, mesh):
    """The check for a file given twice iterated each group's files, so a generator or a glob was spent before it
    was read: no record, and a build "no documents"."""
    from biohicl.data import build_dataset_from_files
    from biohicl.data.sources import resolve_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", GOOD)
    write_jsonl(folder / "b.jsonl", '{"pmid": "2", "abstract": "B.", "mesh": ["Humans", "Heart"]}')
    files = [folder / "a.jsonl", folder / "b.jsonl"]
    report = ReadReport()
    assert sorted(r.pmid for r in read_records("jsonl", folder.glob("*.jsonl"), mesh, report=report)) == ["1", "2"]
    assert resolve_inputs([("auto", (f for f in files))]) == [("jsonl", [files[0]]), ("jsonl", [files[1]])]
    _, summary = build_dataset_from_files(
        [("jsonl", folder.glob("*.jsonl"))], None, mesh, decontaminate=False, dev_split=None, progress=False
    )
    assert summary.documents == 2


def test_pubmedqa_items_config_and_registry_json_errors_name_the_line_and_column(tmp_path):
    """Three JSON readers still gave the decoder's own text ("... line 3 column 2 (char 18)"); now as read_json
    words it, each with its own error class. A PQA-L file that is JSON but no object was a ``TypeError`` traceback
    (``set(5)``), and a registry that is not UTF-8 a ``UnicodeDecodeError`` one."""
    from biohicl.config_values import read_config
    from biohicl.data.splits import pubmedqa_non_test_pmids
    from biohicl.models.registry import Registry

    pqal = tmp_path / "ori_pqal.json"
    pqal.write_text('{"1": {},\n "2": {} "3": {}}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        pubmedqa_non_test_pmids(pqal, test_ids=[])
    assert str(raised.value) == f"{pqal}: line 2: not valid JSON (Expecting ',' delimiter at column 10)"
    assert raised.value.line == 2
    pqal.write_text("5", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        pubmedqa_non_test_pmids(pqal, test_ids=[])
    assert str(raised.value) == f"{pqal}: expected a {{pmid: item}} object"
    config = tmp_path / "bad.json"
    config.write_text('{\n "a": 1\n "b": 2}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        read_config(config)
    assert str(raised.value) == f"{config}: line 3: not valid JSON (Expecting ',' delimiter at column 2)"
    registry = tmp_path / "registry.json"
    registry.write_text('{"models": [', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        Registry.from_file(registry)
    assert str(raised.value) == f"{registry}: line 1: not valid JSON (Expecting value at column 13)"
    registry.write_bytes(b'{"models": ["caf\xe9"]}')
    with pytest.raises(ConfigError) as raised:
        Registry.from_file(registry)
    assert str(raised.value) == f"{registry}: not UTF-8 (byte 0xe9 at offset 16)"


def test_evaluation_pubmedqa_files_of_the_wrong_shape_are_one_line(tmp_path):
    """A test file that is JSON but no object (``5``) was a ``TypeError`` traceback (``list(5)``), and so was an
    ``ori_pqal.json`` item that is no object (``"x" in 5``)."""
    data = tmp_path / "ori_pqal.json"
    data.write_text(json.dumps({"1": {"QUESTION": "q", "LONG_ANSWER": "a", "CONTEXTS": ["c"]}}), encoding="utf-8")
    tests = tmp_path / "test_ground_truth.json"
    tests.write_text("5", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_pubmedqa("test", data, tests)
    assert str(raised.value) == f"{tests}: expected a {{pmid: label}} object"
    data.write_text(json.dumps({"1": 5}), encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_pubmedqa("all", data)
    assert str(raised.value) == f"{data}: item 1: expected a JSON object with QUESTION, LONG_ANSWER and CONTEXTS"


def test_training_documents_line_that_is_no_object_names_its_line(tmp_path):
    lines = tmp_path / "docs.jsonl"
    lines.write_text('{"pmid": "1"}\n7\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        numbered_records(lines)
    assert str(raised.value) == f"{lines}: line 2: expected a JSON object per document, got int"
    assert (raised.value.line, raised.value.record) == (2, None)


def test_the_given_twice_check_takes_paths_as_text_too(tmp_path):
    """``check_distinct_inputs`` as build_dataset_from_files' docstring points to it: groups of ``str`` paths (it
    called ``.is_file()`` on them: an AttributeError traceback), one path or a list."""
    from biohicl.data.sources import check_distinct_inputs

    first = tmp_path / "a.jsonl"
    first.write_text('{"pmid": "1", "mesh": ["Humans"]}\n', encoding="utf-8")
    check_distinct_inputs([("jsonl", [str(first)]), ("jsonl", str(tmp_path / "missing.jsonl"))])  # nothing repeated
    with pytest.raises(ConfigError) as raised:
        check_distinct_inputs([("jsonl", [str(first)]), ("jsonl", str(first))])
    assert str(raised.value) == f"{first}: given twice as an input; give each file once"


def test_pubmedqa_files_nested_too_deeply_are_one_line(tmp_path):
    """Both PubMedQA loaders read through ``read_pmid_object``, which let the decoder's RecursionError through (the
    evaluation's loader had caught it while it read through ``read_json``)."""
    data = tmp_path / "ori_pqal.json"
    data.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    for load in (lambda: load_pubmedqa("all", data), lambda: load_pubmedqa_test_ids(data)):
        with pytest.raises(DataError) as raised:
            load()
        assert str(raised.value) == f"{data}: not valid JSON (nested too deeply to read)"


def test_build_dataset_refuses_hard_links_to_one_file_given_twice(tmp_path, monkeypatch, capsys):
    """Two hard links to one file are two resolved paths, so both were read: each record a duplicate of itself. One
    file is one file by identity (device and inode), however it is named: the same one line naming both paths as
    given, from the command line and from Python (a glob too); a copy of its bytes is another file and is read."""
    from biohicl.cli.main import main as cli
    from biohicl.data.sources import check_distinct_inputs, resolve_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", GOOD)
    try:
        os.link(folder / "a.jsonl", folder / "b.jsonl")
    except OSError as refused:  # a file system with no hard links (some network or FAT ones)
        pytest.skip(f"no hard links here: {refused}")
    monkeypatch.chdir(tmp_path)
    argv = ["build-dataset", "--input", "in/a.jsonl", "--source", "jsonl", "--input", "in/b.jsonl", "--output",
            "out", "--no_progress", "--no_arrow", "--mesh", "no-such-mesh.xml"]  # fmt: skip
    assert cli(argv) == 2
    message = "in/a.jsonl: given twice as an input (as in/a.jsonl and in/b.jsonl); give each file once"
    assert capsys.readouterr().err.strip().splitlines() == [f"biohicl build-dataset: error: {message}"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError) as raised:
        check_distinct_inputs([("jsonl", ["in/b.jsonl"]), ("auto", "in/a.jsonl")])
    assert (
        str(raised.value) == "in/b.jsonl: given twice as an input (as in/b.jsonl and in/a.jsonl); give each file once"
    )
    with pytest.raises(ConfigError, match=r"^in/a\.jsonl: given twice as an input \(as in/a\.jsonl and in/b\.jsonl\)"):
        resolve_inputs([("jsonl", sorted(Path("in").glob("*.jsonl")))])
    (folder / "b.jsonl").unlink()
    write_jsonl(folder / "b.jsonl", GOOD)  # the same bytes in another file: not a repeat
    assert resolve_inputs([("jsonl", sorted(Path("in").glob("*.jsonl")))]) == [
        ("jsonl", [Path("in/a.jsonl"), Path("in/b.jsonl")])
    ]
