"""Encoding, indexing and search on bad input: mis-encoded or malformed corpora, corrupt gzip, unknown formats,
half-built or garbled indexes, a full disk while writing shards. One line at the CLI; no partial output file."""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
from pathlib import Path

import pytest

from biohicl.data.corpus import read_corpus
from biohicl.errors import DataError

DOCS = [{"_id": f"d{i}", "title": f"T{i}", "text": "the cancer cells " * (1 + i % 3)} for i in range(9)]


def jsonl(path: Path, docs=DOCS) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_corpus_opening_with_a_byte_order_mark_reads_as_without_it(tmp_path, gzipped):
    """An editor's "UTF-8 with BOM": the first id, or the TSV header's first column, is not read with the mark."""
    files = {
        "c.jsonl": b'{"_id": "d1", "title": "T", "text": "Some text"}\n',
        "c.tsv": b"id\ttitle\ttext\nd1\tT\tSome text\n",
        "c2.tsv": b"d1\tSome text\n",
    }
    for name, body in files.items():
        path = tmp_path / (name + (".gz" if gzipped else ""))
        path.write_bytes((gzip.compress if gzipped else bytes)(b"\xef\xbb\xbf" + body))
        title = "" if name == "c2.tsv" else "T"
        assert [(d.id, d.title, d.text) for d in read_corpus(path)] == [("d1", title, "Some text")]


def test_latin1_jsonl_names_the_line(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl: line 2: cannot decode the line: byte 0xe9 is not UTF-8"):
        list(read_corpus(path))


def test_utf16_tsv(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_bytes("id\ttext\n1\tinsulin\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"corpus\.tsv: line 1: cannot decode the line: byte 0xff"):
        list(read_corpus(path))


def test_tsv_text_longer_than_the_csv_field_limit(tmp_path):
    path = tmp_path / "corpus.tsv"
    long_text = "cancer " * 30_000  # 210,000 characters, over csv's 131,072 field limit
    path.write_text(f"id\ttitle\ttext\nd1\tT1\t{long_text}\r\n\nd2\t\tshort\n", encoding="utf-8")
    docs = list(read_corpus(path))
    assert [(d.id, d.title, d.text) for d in docs] == [("d1", "T1", long_text), ("d2", "", "short")]


def test_corrupt_gzip_corpus(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    data = gzip.compress(jsonl(tmp_path / "c.jsonl").read_bytes() * 50)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"corpus\.jsonl\.gz: corrupt or truncated gzip file"):
        list(read_corpus(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "x", "text": ', r"corpus\.jsonl: line 10: not valid JSON"),
        ('["x", "text"]', r"corpus\.jsonl: line 10: expected a JSON object per line"),
        ('{"text": "no id"}', r"corpus\.jsonl: line 10: no document id"),
        ('{"_id": "x"}', r"corpus\.jsonl: line 10: document x: no text"),
        ('{"_id": "x", "text": 5}', r"corpus\.jsonl: line 10: document x: title and text must be strings"),
        (
            '{"_id": "x", "text": "t", "mesh": 5}',
            r"line 10: document x: `mesh` must be a string or a list of strings, got 5$",
        ),
        (
            '{"_id": "x", "text": "t", "mesh_uis": [null, "D003920"]}',
            r"line 10: document x: `mesh_uis` must be a string or a list",
        ),
    ],
)
def test_malformed_jsonl_lines(tmp_path, line, message):
    path = jsonl(tmp_path / "corpus.jsonl")
    with path.open("a") as handle:
        handle.write(line + "\n")
    with pytest.raises(DataError, match=message):
        list(read_corpus(path))


def test_unknown_format_and_missing_corpus(tmp_path):
    (tmp_path / "corpus.csv").write_text("id,text\n")
    with pytest.raises(DataError, match=r"corpus\.csv: unknown corpus format"):
        read_corpus(tmp_path / "corpus.csv")
    with pytest.raises(DataError, match=r"nope: corpus not found"):
        read_corpus(tmp_path / "nope")


def test_encode_cli_on_a_latin1_file(tmp_path, run_cli, tiny_bert_dir):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"insulin\ncaf\xe9\n")
    out = tmp_path / "emb.safetensors"
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out)])
    assert "texts.txt: line 2: cannot decode the line" in result.err
    assert not out.exists() and not list(tmp_path.glob(".emb*"))


def test_encode_cli_refuses_a_parquet_corpus_and_a_folder(tmp_path, run_cli, tiny_bert_dir):
    # a parquet file was read as lines of text, and the error suggested `iconv`
    corpus = tmp_path / "corpus.parquet"
    corpus.write_bytes(b"PAR1\x15\x04\x15\xe0\x9c\xff\x00PAR1")
    out = tmp_path / "emb.safetensors"
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(corpus), "--output", str(out)])
    assert "corpus.parquet: not a text file" in result.err and "biohicl index" in result.err
    assert "iconv" not in result.err and not out.exists()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("insulin\n")
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(tmp_path / "texts"), "--output", str(out)]
    result = run_cli(argv)
    assert "texts: is a folder, not a file (it holds: a.txt)" in result.err


def test_build_dataset_on_a_folder_says_it_is_one(tmp_path, run_cli):
    # an existing folder was "input file not found"
    folder = tmp_path / "pubmedqa"
    folder.mkdir()
    for name in ("ori_pqal.json", "test_ground_truth.json"):
        (folder / name).write_text("{}")
    result = run_cli(["build-dataset", "--input", str(folder), "--output", str(tmp_path / "out")])
    assert "pubmedqa: is a folder, not a file (it holds: ori_pqal.json, test_ground_truth.json)" in result.err
    assert "not found" not in result.err


def torn_write_then_full_disk(real, name: str):
    """Wrap ``atomic_path`` as a module imported it: writing ``name`` leaves a torn temporary file, then ENOSPC (as
    a full disk does mid-write). Patching the module's ``atomic_path``, not ``safetensors.torch.save_file``, keeps
    modules that import ``save_file`` lazily from keeping the fake after the test."""

    @contextlib.contextmanager
    def wrapper(path, fsync=False):
        with real(path, fsync=fsync) as tmp:
            if Path(path).name != name:
                yield tmp
                return
            Path(tmp).write_bytes(b"\x00" * 10)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    return wrapper


def test_encode_cli_full_disk_leaves_no_file(tmp_path, run_cli, tiny_bert_dir, monkeypatch):
    from biohicl.search import embeddings_file

    texts = tmp_path / "texts.txt"
    texts.write_text("insulin\nheart\n")
    out = tmp_path / "emb.safetensors"
    full_disk = torn_write_then_full_disk(embeddings_file.atomic_path, out.name)
    monkeypatch.setattr(embeddings_file, "atomic_path", full_disk)
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out)])
    assert "emb.safetensors: no space left on device; nothing was written there" in result.err
    assert sorted(os.listdir(tmp_path)) == ["texts.txt"]


def test_index_cli_on_a_malformed_corpus(tmp_path, run_cli, tiny_bert_dir):
    corpus = jsonl(tmp_path / "corpus.jsonl")
    with corpus.open("a") as handle:
        handle.write("{oops\n")
    out = tmp_path / "index"
    result = run_cli(["index", "--model", str(tiny_bert_dir), "--output", str(out), "--shard_size", "4",
                      "--progress", "false", str(corpus)])  # fmt: skip
    assert "corpus.jsonl: line 10: not valid JSON" in result.err
    assert not (out / "manifest.json").exists()  # shards 0-1 are complete and kept for a rerun; no manifest


def test_index_full_disk_then_rerun_equals_a_clean_run(tmp_path, run_cli, tiny_bert_dir, monkeypatch):
    from safetensors.torch import load_file

    from biohicl.search import layout

    corpus = jsonl(tmp_path / "corpus.jsonl")
    argv = ["index", "--model", str(tiny_bert_dir), "--shard_size", "4", "--no_progress", str(corpus)]
    assert run_cli([*argv, "--output", str(tmp_path / "clean")], expect_error=False).code == 0
    real = layout.atomic_path
    monkeypatch.setattr(layout, "atomic_path", torn_write_then_full_disk(real, "shard-00001.safetensors"))
    out = tmp_path / "index"
    result = run_cli([*argv, "--output", str(out)])
    assert "shard-00001.safetensors: no space left on device; nothing was written there" in result.err
    names = sorted(os.listdir(out))
    assert "shard-00000.safetensors" in names and "shard-00001.safetensors" not in names
    assert "manifest.json" not in names and not [n for n in names if n.startswith(".")]
    monkeypatch.setattr(layout, "atomic_path", real)
    assert run_cli([*argv, "--output", str(out)], expect_error=False).code == 0
    for shard in ("shard-00000", "shard-00001", "shard-00002"):
        clean = load_file(str(tmp_path / "clean" / f"{shard}.safetensors"))
        rerun = load_file(str(out / f"{shard}.safetensors"))
        assert (clean["embeddings"] == rerun["embeddings"]).all()
        assert (tmp_path / "clean" / f"{shard}.docs.jsonl").read_bytes() == (out / f"{shard}.docs.jsonl").read_bytes()


def test_search_an_unfinished_or_garbled_index(tmp_path, run_cli):
    out = tmp_path / "index"
    out.mkdir()
    result = run_cli(["search", str(out), "insulin"])
    assert "no manifest.json: not a finished biohicl index" in result.err
    (out / "manifest.json").write_text('{"format": "biohicl-index", ')
    result = run_cli(["search", str(out), "insulin"])
    message = "not valid JSON (Expecting property name enclosed in double quotes at column 29)"
    assert f"manifest.json: line 1: {message}" in result.err
    (out / "manifest.json").write_text('{"format": "faiss"}')
    result = run_cli(["search", str(out), "insulin"])
    assert "not a biohicl index manifest" in result.err


@pytest.mark.parametrize(
    "header", ["pubmed_id\ttitle\tabstract", "key\ttext", "ref\tTitle\tContents", "PubMed ID\tTitle\tAbstract"]
)
def test_a_tsv_header_with_no_known_id_column_is_refused_not_indexed(tmp_path, header):
    """A first row naming a title or text column is a header (as in a queries file): with no id column it is refused
    at line 1, where it was indexed as a document ``pubmed_id`` titled ``title``."""
    path = tmp_path / "h.tsv"
    columns = header.count("\t") + 1
    path.write_text(f"{header}\n111\t" + "\t".join(["insulin"] * (columns - 1)) + "\n", encoding="utf-8")
    got = ", ".join(c.lower() for c in header.split("\t"))
    with pytest.raises(DataError) as raised:
        list(read_corpus(path))
    assert str(raised.value) == (
        f"{path}: line 1: the header names no id column (expected one of _id, id, doc_id, docid, pmid; got {got})"
    )


@pytest.mark.parametrize(
    "first",
    ["123\tText\tcells of the heart", "124\tTitle of a trial\tabstract", "7\ttext\tcancer", "d9\tA title\ttext"],
)
def test_a_headerless_tsv_whose_first_row_holds_a_column_word_is_a_document(tmp_path, first):
    # a first row with a field "Text" (or "abstract") was read as a header and refused for naming no id column
    path = tmp_path / "c.tsv"
    path.write_text(f"{first}\n125\tinsulin\tresistance in obesity\n", encoding="utf-8")
    docs = list(read_corpus(path))
    assert [d.id for d in docs] == [first.split("\t")[0], "125"]
    assert (docs[0].title, docs[0].text) == tuple(first.split("\t")[1:])


def test_a_tsv_header_naming_a_known_id_and_title_is_read_as_columns(tmp_path):
    path = tmp_path / "h.tsv"
    path.write_text("PMID\tTitle\tAbstract\n111\tInsulin study\tinsulin in obesity\n", encoding="utf-8")
    assert [(d.id, d.title, d.text) for d in read_corpus(path)] == [("111", "Insulin study", "insulin in obesity")]


def test_a_folder_of_loose_jsonl_files_says_what_a_folder_may_hold(tmp_path):
    folder = tmp_path / "multi"
    folder.mkdir()
    jsonl(folder / "part1.jsonl", DOCS[:4])
    jsonl(folder / "part2.jsonl", DOCS[4:])
    with pytest.raises(DataError) as raised:
        list(read_corpus(folder))
    assert str(raised.value) == (
        f"{folder}: no corpus found: a corpus folder holds a BEIR corpus.jsonl[.gz], or the documents table's "
        "parquet files (documents/*.parquet, documents-*.parquet or other *.parquet); for .jsonl files, give one "
        f"file: them concatenated in order (`cat {folder}/*.jsonl > corpus.jsonl`)"
    )
    (folder / "part1.jsonl").unlink()
    (folder / "part2.jsonl").unlink()
    with pytest.raises(DataError) as raised:
        list(read_corpus(folder))
    assert str(raised.value).endswith("documents-*.parquet or other *.parquet)")  # no hint: no loose text files


def test_bad_json_names_the_column_after_at(tmp_path):
    """err.msg alone read "not valid JSON (Invalid control character at)": the column completes it."""
    path = jsonl(tmp_path / "corpus.jsonl")
    with path.open("a") as handle:
        handle.write('{"_id": "x", "text": "a\tb"}\n')  # a raw tab inside a string
    with pytest.raises(DataError) as raised:
        list(read_corpus(path))
    assert str(raised.value) == f"{path}: line 10: not valid JSON (Invalid control character at column 24)"
