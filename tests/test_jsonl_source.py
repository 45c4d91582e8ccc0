"""The ``jsonl`` corpus source: a user's own labelled abstracts, one JSON object per line, read into MeshRecords,
detected, gzipped, and built into a dataset by ``biohicl build-dataset``."""

from __future__ import annotations

import gzip
import json

import pytest

from biohicl.data.read_report import ReadReport
from biohicl.data.records import EMPTY_ABSTRACT, MALFORMED, UNKNOWN_ID, UNRESOLVED_NAME, MeshRecord
from biohicl.data.sources import READERS, SOURCES, detect_source, read_records, resolve_inputs
from biohicl.errors import DataError

# from the packaged MeSH 2024 table: MeshHierarchy.load().try_resolve(name)
HUMANS, DM, T2, HEART, MI = "D006801", "D003920", "D003924", "D006321", "D009203"

LINES = [
    {
        "pmid": "101",
        "title": "Diabetes in humans.",
        "abstract": "About diabetes.",
        "mesh": ["Humans", "Diabetes Mellitus"],
    },
    "",  # blank line: skipped, not counted
    {"id": 102, "title": "Type 2.", "text": "About type 2 diabetes.", "mesh": [T2, "MESH:D006321", HUMANS]},
    '{"pmid": "103", "title": "broken", ',  # malformed: not valid JSON
]


def write_lines(path, lines, compress: bool = False) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def test_jsonl_reads_names_and_uis_and_counts_the_malformed_line(tmp_path, mesh):
    assert (mesh.try_resolve("Humans"), mesh.try_resolve("Diabetes Mellitus")) == (HUMANS, DM)
    path = tmp_path / "mine.jsonl"
    write_lines(path, LINES)
    report = ReadReport()
    records = list(read_records("jsonl", path, mesh, report=report))
    assert records == [
        MeshRecord("101", "Diabetes in humans.", "About diabetes.", (HUMANS, DM), "jsonl"),
        MeshRecord("102", "Type 2.", "About type 2 diabetes.", (T2, HEART, HUMANS), "jsonl"),
    ]
    assert {r.label_kind for r in records} == {"indexing"} and records[0].origin == str(path)
    assert (report.read, report.kept, report.labels_kept) == (3, 2, 5)
    assert report.skipped == {MALFORMED: 1}
    assert report.examples[MALFORMED][0].startswith(f"{path}: line 4: not valid JSON")  # the line number
    with pytest.raises(DataError, match=rf"^{path}: line 4: {MALFORMED}: not valid JSON"):
        list(read_records("jsonl", path, mesh, strict=True))


def test_jsonl_field_names_agree_with_training_documents_and_bad_lines_are_named(tmp_path, mesh):
    """The label columns of ``load_training_data`` (``LABEL_COLUMNS``, first present wins), ``text`` for the
    abstract, a ``|``-separated label string; unknown labels dropped and counted as the other readers do;
    a line of the wrong shape is malformed, counted with its line number."""
    path = tmp_path / "mine.jsonl"
    write_lines(path, [
        {"pmid": "1", "abstract": "a", "mesh_uis": [DM], "mesh": ["Heart"]},  # mesh_uis comes first
        {"pmid": "2", "text": "b", "labels": "Heart|Heart Attack|Not A Heading"},
        {"pmid": "3", "abstract": "c", "descriptors": ["D999999", "C012345", "Humans"]},
        {"id": "doc-4", "abstract": "d", "mesh_ids": [MI]},  # a non-numeric id is kept as it is
        {"pmid": "5", "abstract": "", "mesh": [DM]},  # empty abstract
        {"abstract": "no id", "mesh": [DM]},  # line 6: no id
        {"pmid": 7.0, "abstract": "float id", "mesh": [DM]},  # line 7: a float is no id
        {"pmid": "8", "abstract": "e", "mesh": [1, 2]},  # line 8: labels not strings
        ["not", "an", "object"],  # line 9
        {"pmid": "10", "abstract": "f", "mesh": [DM], "label_kind": "chemicals"},  # line 10: unknown kind
        {"id": ["11"], "abstract": "g", "mesh": [DM]},  # line 11: a list is no id
    ])  # fmt: skip
    with path.open("ab") as handle:
        handle.write(b'{"pmid": "12", "abstract": "caf\xe9", "mesh": ["Heart"]}\n')  # line 12: latin-1, not UTF-8
    report = ReadReport()
    records = list(read_records("jsonl", path, mesh, report=report))
    assert [(r.pmid, r.abstract, r.mesh) for r in records] == [
        ("1", "a", (DM,)), ("2", "b", (HEART, MI)), ("3", "c", (HUMANS,)), ("doc-4", "d", (MI,))
    ]  # fmt: skip
    assert report.skipped == {MALFORMED: 7, EMPTY_ABSTRACT: 1}
    assert report.labels_dropped == {UNRESOLVED_NAME: 1, UNKNOWN_ID: 1} and sum(report.labels_ignored.values()) == 1
    where = [e.split(": ", 2)[:2] for e in report.examples[MALFORMED]]
    assert where == [[str(path), "line 6"], [str(path), "line 7"], [str(path), "line 8"]]  # the first three, by line
    with pytest.raises(DataError, match=rf"^{path}: line 2: {UNRESOLVED_NAME}: 'Not A Heading'$"):
        list(read_records("jsonl", path, mesh, strict=True))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(path.read_bytes().splitlines(keepends=True)[-1])
    with pytest.raises(DataError, match=rf"^{latin}: line 1: {MALFORMED}: not UTF-8 \(byte 0xe9 at column 32\)$"):
        list(read_records("jsonl", latin, mesh, strict=True))
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_text('{"pmid": "1", "abstract": "a", "mesh": ["Heart"]}\n', encoding="utf-16")
    message = "cannot decode the file: UTF-16 text ({}); convert it to UTF-8 (`iconv -f utf-16 -t utf-8`)"
    with pytest.raises(DataError) as caught:  # the wording of the other readers' UTF-16 refusal (medline_text)
        list(read_records("jsonl", utf16, mesh))
    assert str(caught.value) == f"{utf16}: " + message.format("byte-order mark")
    utf16.write_bytes('{"pmid": "1", "abstract": "a", "mesh": ["Heart"]}\n'.encode("utf-16-le"))  # no BOM
    with pytest.raises(DataError) as caught:
        list(read_records("jsonl", utf16, mesh))
    assert str(caught.value) == f"{utf16}: " + message.format("NUL bytes")


def test_jsonl_mentions_lines_keep_their_kind_and_are_never_paired_with_indexing(tmp_path, mesh, capsys):
    from biohicl.cli.main import main
    from biohicl.data.storage import load_pair_dataset

    path = tmp_path / "kinds.jsonl"
    write_lines(path, [
        {"pmid": "1", "abstract": "Insulin in diabetes.", "mesh": [DM], "label_kind": "mentions"},
        {"pmid": "2", "abstract": "Type 2 diabetes.", "mesh": [T2], "label_kind": "mentions"},
        {"pmid": "3", "abstract": "Diabetes indexed.", "mesh": [DM, HUMANS]},
        {"pmid": "4", "abstract": "Heart indexed.", "mesh": [HEART, HUMANS], "label_kind": "indexing"},
    ])  # fmt: skip
    records = list(read_records("jsonl", path, mesh))
    assert [r.label_kind for r in records] == ["mentions", "mentions", "indexing", "indexing"]
    out = tmp_path / "out"
    argv = ["build-dataset", "--source", "jsonl", "--input", str(path), "--output", str(out), "--top_k", "3",
            "--no_progress", "--no_decontaminate", "--dev_fraction", "0", "--pubmedqa_dev_size", "0"]  # fmt: skip
    assert main(argv) == 2 and "mix MeSH label kinds" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--mix_label_kinds"]) == 0
    ds = load_pair_dataset(out)
    kinds = dict(zip(ds["documents"]["pmid"], ds["documents"]["label_kind"], strict=True))
    assert kinds == {"1": "mentions", "2": "mentions", "3": "indexing", "4": "indexing"}
    pairs = {(p["anchor_pmid"], p["partner_pmid"]) for p in ds["pairs"]}
    assert pairs == {("1", "2"), ("2", "1"), ("3", "4"), ("4", "3")}  # within one kind only
    # mentions only, beside PubTator: the check by source (jsonl counts as indexing) asks for --mix_label_kinds
    mentions, pubtator = tmp_path / "mentions.jsonl", tmp_path / "tiny.PubTator.txt"
    write_lines(mentions, [{"pmid": "1", "abstract": "Insulin.", "mesh": [DM], "label_kind": "mentions"}])
    pubtator.write_text("9|t|Heart.\n9|a|About the heart.\n9\t0\t5\theart\tDisease\tD006321\n")
    argv = [argv[0], "--input", str(mentions), "--input", str(pubtator), *argv[5:]]  # formats detected
    assert main(argv) == 2 and "mix MeSH label kinds" in capsys.readouterr().err
    assert main([*argv, "--mix_label_kinds"]) == 0
    assert set(load_pair_dataset(out)["documents"]["label_kind"]) == {"mentions"}


def test_detect_jsonl_and_gzip(tmp_path, mesh):
    plain, packed = tmp_path / "mine.jsonl", tmp_path / "mine.jsonl.gz"
    write_lines(plain, LINES)
    write_lines(packed, LINES, compress=True)
    no_mesh = tmp_path / "corpus.jsonl"  # a BEIR corpus: JSON lines without MeSH, not a labelled corpus
    write_lines(no_mesh, [{"_id": "1", "title": "t", "text": "x"}])
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf\n{"id": "a", "abstract": "x", "mesh": ["Heart"]}\n')
    assert "jsonl" in SOURCES and "jsonl" in READERS
    got = {p.name: detect_source(p) for p in (plain, packed, no_mesh, bom)}
    assert got == {"mine.jsonl": "jsonl", "mine.jsonl.gz": "jsonl", "corpus.jsonl": None, "bom.jsonl": "jsonl"}
    assert resolve_inputs([("auto", [packed])]) == [("jsonl", [packed])]
    report = ReadReport()
    records = list(read_records("auto", packed, mesh, report=report))
    assert [(r.pmid, r.mesh) for r in records] == [("101", (HUMANS, DM)), ("102", (T2, HEART, HUMANS))]
    assert report.skipped == {MALFORMED: 1}
    assert [(r.pmid, r.mesh) for r in read_records("jsonl", bom, mesh)] == [("a", (HEART,))]


def test_cli_build_dataset_from_a_jsonl_file(tmp_path, capsys):
    from biohicl.cli.main import main
    from biohicl.data.storage import load_pair_dataset

    path = tmp_path / "mine.jsonl"
    test_pmid = "12377809"  # a PubMedQA test item (test_ground_truth.json): removed by decontamination
    write_lines(path, [*LINES, {"pmid": "101", "abstract": "A later copy.", "mesh": [HEART]},
                       {"pmid": test_pmid, "abstract": "Not the item's text.", "mesh": [HEART]}])  # fmt: skip
    out = tmp_path / "out"
    argv = ["build-dataset", "--input", str(path), "--output", str(out), "--top_k", "1", "--no_progress",
            "--dev_fraction", "0", "--pubmedqa_dev_size", "0"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "documents read: 5; kept: 3; skipped: 2" in text
    assert f"removed pmid {test_pmid!r} (jsonl): pubmedqa-test: PMID of a PubMedQA test item" in text
    assert f"skipped ({MALFORMED}): 1" in text and "skipped (duplicate pmid): 1" in text
    documents = load_pair_dataset(out)["documents"]
    rows = [
        {k: r[k] for k in ("pmid", "title", "abstract", "mesh", "source", "label_kind", "split")} for r in documents
    ]
    assert rows == [
        {"pmid": "101", "title": "Diabetes in humans.", "abstract": "About diabetes.", "mesh": [HUMANS, DM],
         "source": "jsonl", "label_kind": "indexing", "split": "train"},
        {"pmid": "102", "title": "Type 2.", "abstract": "About type 2 diabetes.", "mesh": [T2, HEART, HUMANS],
         "source": "jsonl", "label_kind": "indexing", "split": "train"},
    ]  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"] == {"jsonl": 2}


def test_a_blank_abstract_falls_back_to_text(tmp_path, mesh):
    """The abstract is the first non-blank of ``abstract`` and ``text``: ``"abstract": ""`` beside a ``text`` is
    that text, not an empty abstract; a line with both blank is one."""
    path = tmp_path / "mine.jsonl"
    write_lines(path, [{"pmid": "1", "abstract": "", "text": "About the heart.", "mesh": [HEART]},
                       {"pmid": "2", "abstract": " \n", "text": "Heart again.", "mesh": [HEART]},
                       {"pmid": "3", "abstract": "Own abstract.", "text": "Not read.", "mesh": [HEART]},
                       {"pmid": "4", "abstract": "", "text": "  ", "mesh": [HEART]}])  # fmt: skip
    report = ReadReport()
    got = [(r.pmid, r.abstract) for r in read_records("jsonl", path, mesh, report=report)]
    assert got == [("1", "About the heart."), ("2", "Heart again."), ("3", "Own abstract.")]
    assert report.skipped == {EMPTY_ABSTRACT: 1} and report.examples[EMPTY_ABSTRACT] == [f"{path}: line 4: pmid '4'"]


def test_build_and_index_readers_take_their_own_id_and_text_fields(tmp_path, mesh):
    """The ``jsonl`` source takes ``pmid`` first and ``abstract`` before ``text`` (its id is the PMID of dedup and
    decontamination); ``biohicl index`` (``read_corpus``) takes ``_id``/``id`` first and ``text`` first, as BEIR."""
    from biohicl.data.corpus import Document, read_corpus

    path = tmp_path / "both.jsonl"
    write_lines(path, [{"pmid": 101, "abstract": "insulin abstract", "id": "doc-7", "text": "other text",
                        "mesh": [HEART]}])  # fmt: skip
    assert [(r.pmid, r.abstract) for r in read_records("jsonl", path, mesh)] == [("101", "insulin abstract")]
    assert [(d.id, d.text) for d in read_corpus(path)] == [("doc-7", "other text")]
    beir = tmp_path / "corpus.jsonl"
    write_lines(beir, [{"_id": "b1", "title": "T", "text": "x", "pmid": "9", "abstract": "y"}])
    assert list(read_corpus(beir)) == [Document("b1", "x", "T")]


def test_detect_a_jsonl_file_whose_first_line_is_over_the_64_kb_sniff(tmp_path, mesh):
    """A first line longer than the 64 KB sniff is read on to its end (up to the reader's line limit), so a
    ``mesh``/``mesh_uis``/``mesh_ids`` key after a 70 KB abstract marks it too, gzipped or after a byte-order mark
    and blank lines; a nested or quoted one does not, nor do one-line BioASQ and PubMedQA files over 64 KB (whose
    top-level keys are ``articles`` and PMIDs: never read on)."""
    long_text = "word " * 14_000  # 70,000 characters
    cases = {
        "long.jsonl": [{"pmid": "1", "title": "T", "mesh_uis": [HEART], "abstract": long_text}, {"pmid": "2"}],
        "long_mesh_last.jsonl": [{"pmid": "1", "abstract": long_text, "mesh": [HEART]}, {"pmid": "2"}],
        "nested.jsonl": [{"_id": "1", "meta": {"mesh": [HEART]}, "text": long_text}],
        "quoted.jsonl": [{"_id": "1", "title": 'a "mesh": key', "text": long_text}],
    }
    for name, lines in cases.items():
        write_lines(tmp_path / name, lines)
    write_lines(tmp_path / "long_mesh_last.jsonl.gz", cases["long_mesh_last.jsonl"], compress=True)
    last = (tmp_path / "long_mesh_last.jsonl").read_bytes()
    (tmp_path / "bom_mesh_last.jsonl").write_bytes(b"\xef\xbb\xbf\n\n" + last)
    (tmp_path / "one_line_mesh_last.jsonl").write_bytes(last.split(b"\n")[0])  # no line end: the file's end
    assert last.index(b'"mesh"') > 70_000
    article = {"pmid": "5", "title": "T", "abstractText": long_text, "meshMajor": ["Heart"], "mesh": ["Heart"]}
    (tmp_path / "bioasq.json").write_text(json.dumps({"articles": [article]}))
    item = {"QUESTION": "Q?", "CONTEXTS": [long_text], "MESHES": ["Heart"], "mesh": ["Heart"], "final_decision": "yes"}
    (tmp_path / "pubmedqa.json").write_text(json.dumps({"12345": item, "23456": item}))
    assert (tmp_path / "long.jsonl").read_bytes().index(b"\n") > 70_000
    got = {p.name: detect_source(p) for p in sorted(tmp_path.iterdir())}
    assert got == {"bioasq.json": "bioasq", "bom_mesh_last.jsonl": "jsonl", "long.jsonl": "jsonl",
                   "long_mesh_last.jsonl": "jsonl", "long_mesh_last.jsonl.gz": "jsonl", "nested.jsonl": None,
                   "one_line_mesh_last.jsonl": "jsonl", "pubmedqa.json": "pubmedqa", "quoted.jsonl": None}  # fmt: skip
    for name in ("long.jsonl", "long_mesh_last.jsonl.gz"):
        report = ReadReport()
        records = list(read_records("auto", tmp_path / name, mesh, report=report))
        assert [(r.pmid, r.mesh, len(r.abstract)) for r in records] == [("1", (HEART,), len(long_text.strip()))]
        assert report.skipped == {EMPTY_ABSTRACT: 1}


def test_detection_reads_a_cut_first_line_no_further_than_the_line_limit(tmp_path, monkeypatch):
    """The first line is read on no further than the reader's ``LINE_LIMIT``: a ``mesh`` key beyond it is not seen
    (the reader skips such a line unread), one within it is."""
    import biohicl.data.sources as sources

    monkeypatch.setattr(sources, "LINE_LIMIT", 100_000)
    for name, size in (("within.jsonl", 90_000), ("beyond.jsonl", 110_000)):
        write_lines(tmp_path / name, [{"pmid": "1", "abstract": "x" * size, "mesh": [HEART]}])
    assert detect_source(tmp_path / "within.jsonl") == "jsonl"
    assert detect_source(tmp_path / "beyond.jsonl") is None


def _build_in_cwd(tmp_path, monkeypatch, lines, capsys) -> tuple[str, str, dict]:
    """``biohicl build-dataset --source jsonl --input mine.jsonl`` run from ``tmp_path/corpus`` with RELATIVE paths
    (as a user in the file's folder types it); returns the printed report, the card and summary.json."""
    from biohicl.cli.main import main

    folder = tmp_path / "corpus"
    folder.mkdir()
    write_lines(folder / "mine.jsonl", lines)
    monkeypatch.chdir(folder)
    argv = ["build-dataset", "--source", "jsonl", "--input", "mine.jsonl", "--output", "out", "--top_k", "1",
            "--no_progress", "--dev_fraction", "0", "--pubmedqa_dev_size", "0"]  # fmt: skip
    assert main(argv) == 0
    card = (folder / "out" / "README.md").read_text(encoding="utf-8")
    return capsys.readouterr().out, card, json.loads((folder / "out" / "summary.json").read_text())


OWN = [
    {"pmid": "doc-1", "abstract": "About diabetes.", "mesh": ["Humans", "Diabetes Mellitus"]},
    {"pmid": "doc-2", "abstract": "About the heart.", "mesh": [HEART, HUMANS]},
    {"pmid": "doc-1", "abstract": "A later copy in the same file.", "mesh": [HEART]},
]


def test_card_of_own_labels_claims_no_nlm_indexing_and_no_pubmed_tag(tmp_path, monkeypatch, capsys, mesh):
    """A jsonl build's labels are the builder's, not NLM's: the card says so and drops the ``pubmed`` tag; a build
    mixing jsonl with an NLM source keeps the tag and describes each."""
    from conftest import read_card_metadata

    from biohicl.data.dataset_card import card_metadata, render_dataset_card
    from biohicl.data.pairs import build_pair_dataset

    _, card, _ = _build_in_cwd(tmp_path, monkeypatch, OWN, capsys)
    assert "- `indexing`: labels as supplied by the dataset's builder, treated as indexing labels\n" in card
    assert "NLM indexers" not in card
    assert read_card_metadata(tmp_path / "corpus" / "out" / "README.md")["tags"] == ["biomedical", "mesh", "biohicl"]

    records = [MeshRecord("1", "", "About diabetes.", (DM, HUMANS), "pubmedqa"),
               MeshRecord("doc-2", "", "About type 2.", (T2, HUMANS), "jsonl")]  # fmt: skip
    mixed, summary = build_pair_dataset(records, mesh, top_k=1, dev_split=None)
    assert card_metadata(mixed)["tags"] == ["biomedical", "mesh", "pubmed", "biohicl"]
    text = render_dataset_card(mixed, summary)
    assert (
        "- `indexing`: MeSH indexing: the descriptors NLM indexers assign to the whole article, check tags included "
        "(`pubmedqa`); `jsonl`: labels as supplied by the dataset's builder, treated as indexing labels\n"
    ) in text


def test_a_relative_input_path_names_its_folder_and_repeats_in_one_file_are_not_called_several_inputs(
    tmp_path, monkeypatch, capsys
):
    """``--input mine.jsonl`` from the file's folder: the card's documents per folder name that folder (not
    ``(records)``, no machine path); a PMID repeated inside one file is not 'the same PMID in several inputs'."""
    out, card, summary = _build_in_cwd(tmp_path, monkeypatch, OWN, capsys)
    assert summary["folders"] == {"corpus": 2} and summary["duplicates"] == 1
    assert "- documents per input folder: `corpus` 2; " in card and str(tmp_path) not in card
    assert str(tmp_path) not in json.dumps(summary)
    assert "repeated PMIDs (in one input or several) are one document each (the first read wins): 1 later copy" in card
    assert "several inputs:" not in out and "; repeated PMIDs (in one input or several): 1\n" in out


def test_a_cut_off_line_says_what_training_says_with_its_column(tmp_path, mesh):
    """The build's reader decodes the line without its line end (``\\n`` or ``\\r\\n``): an unterminated string is
    named as such, with the column training's reader (``biohicl.data.documents``) gives for the same line."""
    from biohicl.data.documents import numbered_records

    line = '{"pmid": "999999999", "title": "broken", "abstract": "cut off'
    assert line.index('"cut off') + 1 == 54
    for name, end in (("lf.jsonl", "\n"), ("crlf.jsonl", "\r\n")):
        path = tmp_path / name
        path.write_bytes(f'{{"pmid": "1", "abstract": "A.", "mesh": ["Heart"]}}{end}{line}{end}'.encode())
        report = ReadReport()
        assert [r.pmid for r in read_records("jsonl", path, mesh, report=report)] == ["1"]
        assert report.examples[MALFORMED] == [
            f"{path}: line 2: not valid JSON (Unterminated string starting at column 54)"
        ]
    with pytest.raises(DataError, match=r": line 2: not valid JSON \(Unterminated string starting at column 54\)$"):
        numbered_records(tmp_path / "lf.jsonl")


def test_the_printed_report_tallies_dropped_label_names_but_summary_json_does_not(tmp_path, monkeypatch, capsys):
    """Every unknown label counted by name, the 10 most frequent printed (the examples show only the first 3);
    summary.json keeps its fields (the tally is printed only)."""
    names = [f"Unknown {i:02d}" for i in range(12)]
    lines = [
        {"pmid": "doc-1", "abstract": "A.", "mesh": ["Heart", "Frobnication Syndrome", *names[:6]]},
        {"pmid": "doc-2", "abstract": "B.", "mesh": ["Heart", "Frobnication Syndrome", "D999999", *names[6:]]},
        {"pmid": "doc-3", "abstract": "C.", "mesh": ["Heart", "Frobnication Syndrome", "D999999"]},
    ]
    out, _, summary = _build_in_cwd(tmp_path, monkeypatch, lines, capsys)
    tally = out[out.index("  labels dropped by name") :].splitlines()
    assert tally[:13] == [
        "  labels dropped by name (the 10 most frequent of 14 names):",
        "      'Frobnication Syndrome': 3",
        "      'D999999': 2",
        *(f"      'Unknown {i:02d}': 1" for i in range(8)),
        "documents in dataset: 3 (jsonl 3); PubMedQA test documents: 0; excluded by pmid: 0",
        "label kinds: indexing 3; splits: train 3, dev 0, test 0; repeated PMIDs (in one input or several): 0",
    ]
    assert summary["read"]["labels_dropped"] == {UNRESOLVED_NAME: 15, UNKNOWN_ID: 2}
    assert set(summary["read"]) == {"read", "kept", "skipped", "labels_dropped", "labels_ignored", "labels_noted",
                                    "noted", "mean_labels_per_document", "examples", "files",
                                    "unrecognised_files", "source_files", "per_file", "empty_files"}  # fmt: skip
    assert "Unknown 07" not in json.dumps(summary) and "dropped_labels" not in summary


def test_an_id_with_control_characters_is_malformed_and_ids_are_quoted_in_messages(tmp_path, mesh):
    """A newline in an id forged a log line (and a summary.json example); NUL and ANSI escapes went into the
    documents: an id with a control character is a malformed line, and ids in messages are shown quoted."""
    forged = "doc-2\nWARNING biohicl.fake: all test PMIDs removed OK"
    path = tmp_path / "crafted.jsonl"
    write_lines(
        path,
        [
            {"pmid": "doc-1", "abstract": "Diabetes in humans.", "mesh": ["Humans"]},
            {"pmid": forged, "title": 5, "mesh": ["Humans"]},
            {"pmid": "doc-3\x00\x1b[31mRED", "abstract": "x", "mesh": ["Humans"]},
            {"pmid": "doc-4\x7f", "abstract": "x", "mesh": ["Humans"]},
            {"pmid": "doc-5\nX", "abstract": "x", "mesh": ["Humans"], "label_kind": "other"},
            {"pmid": "doc-6", "abstract": "x", "mesh": 5},
            {"pmid": " doc-7\n", "abstract": "x", "mesh": ["Humans"]},  # the ends are stripped, as before
        ],
    )
    report = ReadReport()
    records = list(read_records("jsonl", path, mesh, report=report))
    assert [r.pmid for r in records] == ["doc-1", "doc-7"]
    assert report.skipped == {MALFORMED: 5} and report.read == 7
    details = [e.split(": ", 2)[2] for e in report.examples[MALFORMED]]  # after "FILE: line N: "
    assert details[:3] == [  # ReadReport keeps 3 examples per reason
        "document id with a control character: 'doc-2\\nWARNING biohicl.fake: all test P",
        "document id with a control character: 'doc-3\\x00\\x1b[31mRED'",
        "document id with a control character: 'doc-4\\x7f'",
    ]
    assert all("\n" not in e and "\x1b" not in e for e in report.examples[MALFORMED])
    with pytest.raises(DataError, match=r": line 2: malformed record: document id with a control character"):
        list(read_records("jsonl", path, mesh, strict=True))
    # a well-formed id in a field-type message is quoted too, as the label message already was
    path.write_text(json.dumps({"pmid": "doc-8", "title": 5, "mesh": ["Humans"]}) + "\n", encoding="utf-8")
    report = ReadReport()
    assert list(read_records("jsonl", path, mesh, report=report)) == []
    assert report.examples[MALFORMED] == [f"{path}: line 1: id 'doc-8': `title` must be a string, got int"]


def test_a_line_over_the_limit_is_one_malformed_record_and_the_next_line_is_read(tmp_path, mesh, monkeypatch):
    """A one-line .jsonl.gz bomb was read whole into memory: a line over ``LINE_LIMIT`` is skipped unread (the
    rest of it consumed in bounded chunks), counted with its line number, and reading goes on."""
    from biohicl.data import jsonl

    monkeypatch.setattr(jsonl, "LINE_LIMIT", 1024, raising=False)  # not raising: before the fix it failed on values
    monkeypatch.setattr(jsonl, "_CHUNK", 100, raising=False)
    fits = {"pmid": "a", "abstract": "x" * 500, "mesh": ["Humans"]}
    exact = {"pmid": "b", "abstract": "x" * (1024 - 49), "mesh": ["Humans"]}
    assert len(json.dumps(exact)) == 1024  # exactly at the limit (the line end not counted) is read
    over = {"pmid": "c", "abstract": "x" * (1024 - 48), "mesh": ["Humans"]}  # one byte over
    long = {"pmid": "d", "abstract": "x" * 5000, "mesh": ["Humans"]}
    after = {"pmid": "e", "abstract": "y", "mesh": ["Humans"]}
    for compress in (False, True):
        path = tmp_path / ("big.jsonl.gz" if compress else "big.jsonl")
        write_lines(path, [fits, exact, over, "", long, after], compress=compress)
        report = ReadReport()
        records = list(read_records("jsonl", path, mesh, report=report))
        assert [r.pmid for r in records] == ["a", "b", "e"]
        assert report.skipped == {MALFORMED: 2} and report.read == 5
        assert report.examples[MALFORMED] == [
            f"{path}: line 3: line over 1 KiB",
            f"{path}: line 5: line over 1 KiB",
        ]
    # a last line without a line end, over the limit, is one malformed record too
    path.write_bytes(gzip.compress(b'{"pmid": "f"' + b" " * 3000 + b"}"))
    report = ReadReport()
    assert list(read_records("jsonl", path, mesh, report=report)) == []
    assert report.examples[MALFORMED] == [f"{path}: line 1: line over 1 KiB"]
    with pytest.raises(DataError, match=r": line 1: malformed record: line over 1 KiB$"):
        list(read_records("jsonl", path, mesh, strict=True))


def test_bioasq_and_pubmed_xml_ids_with_a_newline_are_malformed_not_a_forged_log_line(tmp_path, mesh):
    """The other readers whose id can carry a newline: a BioASQ ``pmid`` string, a PubMed XML ``<PMID>`` with a
    character reference (``&#10;``). MEDLINE text PMIDs must be digits and PubTator ids are cut at a line end."""
    forged = "9\nWARNING biohicl.fake: forged"
    bioasq = tmp_path / "allMeSH_2024.json"
    article = {"title": "t", "abstractText": "About diabetes.", "meshMajor": ["Humans"]}
    bioasq.write_text(json.dumps({"articles": [{**article, "pmid": forged}, {**article, "pmid": "8"}]}))
    xml = tmp_path / "pubmed24n0001.xml"
    citation = (
        "<PubmedArticle><MedlineCitation><PMID>{}</PMID><Article><ArticleTitle>t</ArticleTitle><Abstract>"
        "<AbstractText>About diabetes.</AbstractText></Abstract></Article><MeshHeadingList><MeshHeading>"
        '<DescriptorName UI="D006801">Humans</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>'
        "</PubmedArticle>"
    )
    pmids = ("9&#10;WARNING biohicl.fake: forged", "8")
    xml.write_text(f"<PubmedArticleSet>{''.join(citation.format(p) for p in pmids)}</PubmedArticleSet>")
    for source, path in (("bioasq", bioasq), ("medline", xml)):
        report = ReadReport()
        assert [r.pmid for r in read_records(source, path, mesh, report=report)] == ["8"]
        assert report.skipped == {MALFORMED: 1}
        assert report.examples[MALFORMED] == [f"{path}, record 1: pmid with a control character: {forged!r:.40}"]
