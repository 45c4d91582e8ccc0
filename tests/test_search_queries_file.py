"""`biohicl search --queries_file`: a query with an id and a blank text is refused in one line naming its file, line
and id (a .txt file's blank lines are skipped, as documented), and a pipe (`/dev/stdin`, `<(...)`) is read as a
stream."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from conftest import SEARCH_DOCS

from biohicl.cli.main import main as cli
from biohicl.data.files import check_file, is_blank_file
from biohicl.data.text_files import read_texts
from biohicl.errors import DataError

DOCS = SEARCH_DOCS[:6]


@pytest.fixture(scope="module")
def index_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("queries-file")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(folder / "idx"), "--shard_size", "4"]
    assert cli([*argv, "--device", "cpu", "--no_progress"]) == 0
    return folder / "idx"


def search(index_dir: Path, queries_file: str) -> int:
    argv = ["search", str(index_dir), "--queries_file", queries_file, "--top_k", "1", "--json", "--no_mesh"]
    return cli([*argv, "--device", "cpu"])


def test_a_query_with_an_id_and_a_blank_text_is_refused(index_dir, tmp_path, capsys):
    # {"_id": "b", "text": ""} between a and c was dropped: hits for a and c only, rc 0
    jsonl = tmp_path / "q3.jsonl"
    jsonl.write_text('{"_id":"a","text":"statin"}\n{"_id":"b","text":""}\n{"_id":"c","text":"brain"}\n')
    assert search(index_dir, str(jsonl)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"biohicl search: error: {jsonl}: line 2: query 'b' is blank; give it text or remove the line"]
    tsv = tmp_path / "q2.tsv"  # a `q2<TAB> ` row, the same
    tsv.write_text("q1\tstatin\nq2\t \nq3\tbrain\n")
    assert search(index_dir, str(tsv)) == 2
    assert f"{tsv}: line 2: query 'q2' is blank" in capsys.readouterr().err
    string = tmp_path / "strings.jsonl"  # a blank JSON string (no id): its line
    string.write_text('"statin"\n"  "\n')
    assert search(index_dir, str(string)) == 2
    assert f"{string}: line 2: query is blank; give it text or remove the line" in capsys.readouterr().err


def test_blank_lines_of_a_txt_or_between_records_are_still_skipped(index_dir, tmp_path, capsys):
    txt = tmp_path / "q.txt"  # a .txt file has no ids: its blank lines are skipped (docs/cli.md)
    txt.write_text("statin\n\n   \nbrain\n")
    assert search(index_dir, str(txt)) == 0
    assert [json.loads(line)["query"] for line in capsys.readouterr().out.splitlines()] == ["statin", "brain"]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"_id":"a","text":"statin"}\n\n{"_id":"c","text":"brain"}\n')
    assert search(index_dir, str(jsonl)) == 0
    assert [json.loads(line)["query_id"] for line in capsys.readouterr().out.splitlines()] == ["a", "c"]


def feed(path: Path, data: bytes) -> threading.Thread:
    """A writer of ``data`` into the FIFO ``path`` (it blocks until the reader opens it)."""

    def write() -> None:
        with open(path, "wb") as handle:
            handle.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_pipe_is_read_as_a_queries_file(index_dir, tmp_path, capsys):
    # `printf 'a\nb\n' | biohicl search idx --queries_file /dev/stdin` said "/dev/stdin: input file not found"
    fifo = tmp_path / "63"
    os.mkfifo(fifo)
    assert check_file(fifo) == fifo
    writer = feed(fifo, b"statin\nbrain\n")
    assert search(index_dir, str(fifo)) == 0
    writer.join(5)
    assert [json.loads(line)["query"] for line in capsys.readouterr().out.splitlines()] == ["statin", "brain"]
    writer = feed(fifo, b"q1\tstatin\n")  # a .tsv-less name reads as .txt; the readers stream it once
    assert list(read_texts(fifo)) == [(None, "q1\tstatin")]
    writer.join(5)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_reader_that_reads_its_input_twice_refuses_a_pipe(tmp_path):
    # is_blank_file reads the head before the reader reads the file again: a pipe would lose it (its size is 0)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"pipe: a pipe or device, which can be read only once; save it to a file"):
        is_blank_file(fifo)
    with pytest.raises(DataError, match="input file not found"):
        check_file(tmp_path / "missing")


def test_a_jsonl_query_without_text_names_its_line(index_dir, tmp_path, capsys):
    # the record's line was worded "record 2" while the corpus reader says "line 2"
    jsonl = tmp_path / "notext.jsonl"
    jsonl.write_text('{"_id": "a", "text": "heart disease"}\n{"_id": "b"}\n')
    assert search(index_dir, str(jsonl)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"biohicl search: error: {jsonl}: line 2: "), err
