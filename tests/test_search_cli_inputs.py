"""The input files of `biohicl search --queries_file` and `biohicl encode` (.tsv with the corpus reader's rules and
queries headers, .jsonl, .csv/.json refused, any other name lines of text), `search --json` with the MeSH
explanation, and `encode --no_progress`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SEARCH_DOCS
from safetensors import safe_open

from biohicl.cli.main import main as cli
from biohicl.data.text_files import read_texts
from biohicl.errors import DataError
from biohicl.models.model import BioHiCL
from biohicl.search.exact import search_like
from biohicl.search.explain import explain_hits
from biohicl.search.index import Hit, load_index

DOCS = SEARCH_DOCS[:6]  # p1-p6: p5 has no labels
TEXTS = [f"{d['title']} {d['text']}" for d in DOCS[2:5]]


@pytest.fixture(scope="module")
def index_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search-inputs")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(folder / "idx"), "--shard_size", "4"]
    assert cli([*argv, "--device", "cpu", "--no_progress"]) == 0
    return folder / "idx"


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_tsv_queries_file_is_read_with_its_ids_and_header(index_dir, tmp_path, capsys):
    # a .tsv was read as lines of text: the header `id<TAB>text` was a query, and `q1<TAB>...` searched with its id
    assert cli(["search", str(index_dir), *TEXTS, "--top_k", "2", "--json", "--no_mesh", "--device", "cpu"]) == 0
    by_strings = json_lines(capsys.readouterr().out)
    with_header = tmp_path / "queries.tsv"
    with_header.write_text("id\ttext\n" + "".join(f"q{i}\t{t}\n" for i, t in enumerate(TEXTS)))
    no_header = tmp_path / "plain.tsv"
    no_header.write_text("".join(f"q{i}\t{t}\n" for i, t in enumerate(TEXTS)) + "\n")  # a blank line is skipped
    for path in (with_header, no_header):
        argv = ["search", str(index_dir), "--queries_file", str(path), "--top_k", "2", "--json", "--no_mesh"]
        assert cli(argv) == 0
        by_file = json_lines(capsys.readouterr().out)
        assert [r.pop("query_id") for r in by_file] == ["q0", "q0", "q1", "q1", "q2", "q2"]
        assert by_file == by_strings  # the same texts (no id in them), the same hits
    assert list(read_texts(with_header)) == [(f"q{i}", t) for i, t in enumerate(TEXTS)]
    titled = tmp_path / "titled.tsv"  # id, title, text: searched as title + text, as a corpus is encoded
    titled.write_text("q9\tbrain cancer\tcancer of the brain\n")
    assert list(read_texts(titled)) == [("q9", TEXTS[0])]


def test_a_queries_file_of_another_format_is_refused_in_one_line(index_dir, tmp_path, capsys):
    csv = tmp_path / "queries.csv"
    csv.write_text("id,text\nq1,statin dementia\n")
    assert cli(["search", str(index_dir), "--queries_file", str(csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert "queries.csv: unknown format .csv (expected .txt" in err and len(err.splitlines()) == 1
    bad = tmp_path / "one_column.tsv"  # a .tsv row without its id is named by its line
    bad.write_text("q1\tstatin dementia\nstatin dementia\n")
    assert cli(["search", str(index_dir), "--queries_file", str(bad)]) == 2
    assert "one_column.tsv: line 2: expected 2 (id, text) or 3 (id, title, text) columns, got 1" in (
        capsys.readouterr().err
    )
    with pytest.raises(DataError, match=r"queries.csv: unknown format .csv"):
        list(read_texts(csv))


def test_a_tsv_with_a_queries_header_is_read_by_its_columns(tmp_path):
    # BEIR's query-id and TREC's qid/query headers were a data row (a query "query", an encoded row "qid"), and
    # id<TAB>query a "no text" error: each is one query, id 1
    headers = ["qid\tquery", "query-id\ttext", "query_id\tquery", "id\tquery", "\ufeffqid\tquery"]
    for number, header in enumerate(headers):
        path = tmp_path / f"q{number}.tsv"
        path.write_text(f"{header}\n1\twhat is diabetes\n", encoding="utf-8")
        assert list(read_texts(path)) == [("1", "what is diabetes")], header
    titled = tmp_path / "titled.tsv"  # a header naming no id column still is one; a row without an id is refused
    titled.write_text("title\ttext\nbrain cancer\tcancer of the brain\n")
    with pytest.raises(DataError, match=r"titled.tsv: line 2: no document id"):
        list(read_texts(titled))


def test_a_texts_file_of_any_other_name_is_read_as_lines(tmp_path):
    # every suffix but .txt/.tsv/.jsonl was refused, a `mktemp` name's too: only .csv, .json and binaries are
    for name in ("tmp.cU40Jj1cBw", "q.text", "q.md", "q.lst", "Q.TXT"):
        path = tmp_path / name
        path.write_text("statin dementia\n\nheart\n")
        assert list(read_texts(path)) == [(None, "statin dementia"), (None, ""), (None, "heart")], name
    for name in ("q.csv", "q.json", "q.json.gz"):
        (tmp_path / name).write_text("[]\n")
        with pytest.raises(DataError, match=rf"{name}: unknown format \.(csv|json)"):
            list(read_texts(tmp_path / name))


def test_like_json_carries_siml_and_shared_terms(index_dir, mesh, capsys):
    # --json turned the MeSH explanation off: `--like --json` had no SimL
    index = load_index(index_dir)
    hits = search_like(index, "p4", top_k=3)[0]
    assert cli(["search", str(index_dir), "--like", "p4", "--top_k", "3", "--json", "--device", "cpu"]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [r["id"] for r in records] == [h.id for h in hits]
    for record, hit in zip(records, hits, strict=True):
        siml = mesh.label_similarity(["D009765", "D003924"], list(hit.mesh)) if hit.mesh else None
        assert record["siml"] == (None if siml is None else pytest.approx(siml, abs=1e-12))
        shared = [mesh.names[ui] for ui in ("D009765", "D003924") if ui in hit.mesh]
        assert sorted(record["shared"]) == sorted(shared)
    assert cli(["search", str(index_dir), "--like", "p4", "--top_k", "3", "--json", "--no_mesh"]) == 0
    assert all("siml" not in r and "shared" not in r for r in json_lines(capsys.readouterr().out))


def test_query_json_carries_each_hits_explanation(index_dir, mesh, capsys):
    assert cli(["search", str(index_dir), TEXTS[1], "--top_k", "6", "--json", "--device", "cpu"]) == 0
    records = json_lines(capsys.readouterr().out)
    hits = [Hit(r["id"], r["score"], r["rank"], r["position"], r["title"], tuple(r["mesh"])) for r in records]
    explanation = explain_hits(hits, mesh)
    assert [r["shared"] for r in records] == [why.shared for why in explanation.hits]
    assert [r["siml"] for r in records] == [why.siml for why in explanation.hits]
    diabetes, heart = mesh.names["D003924"], mesh.names["D006331"]  # by hand: the labels at least two hits carry
    expected = {"p1": {diabetes}, "p2": {diabetes, heart}, "p3": set(), "p4": {diabetes}, "p5": set(), "p6": {heart}}
    assert {r["id"]: set(r["shared"]) for r in records} == expected
    assert [r["siml"] is None for r in records] == [r["id"] == "p5" for r in records]  # p5 has no label


def test_encode_no_progress_and_blank_lines(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "in.txt"
    texts.write_text("heart disease\n\nthe brain\n")
    out = tmp_path / "emb.safetensors"
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "--device", "cpu"]
    assert cli([*argv, "--batch_size", "1"]) == 0
    assert "Encoding" not in capsys.readouterr().err  # a stream of unknown length, 3 texts: no bar (drawn before)
    longer = tmp_path / "longer.txt"
    longer.write_text("heart disease\n" * 5)
    assert cli([*argv[:4], str(longer), *argv[5:], "--batch_size", "1"]) == 0
    assert "Encoding" in capsys.readouterr().err  # the bar, once the stream is past four batches
    assert cli([*argv, "--batch_size", "1", "--no_progress"]) == 0
    captured = capsys.readouterr()
    assert "Encoding" not in captured.err and "wrote 3 × 32 float32 embeddings" in captured.out
    with safe_open(str(out), framework="pt") as handle:
        emb = handle.get_tensor("embeddings")
    model = BioHiCL.from_base(str(tiny_bert_dir))
    # row i is line i: the blank line is the empty text's row (a .txt file has no ids to realign rows by)
    expected = model.encode(["heart disease", "", "the brain"], convert_to="torch", show_progress_bar=False)
    torch.testing.assert_close(emb, expected, atol=1e-6, rtol=0)
    tsv = tmp_path / "in.tsv"  # a .tsv is read with its ids, as a queries file is
    tsv.write_text("id\ttext\na\theart disease\n\nb\tthe brain\n")
    assert (
        cli(["encode", "--model", str(tiny_bert_dir), "--input", str(tsv), "--output", str(out), "--no_progress"]) == 0
    )
    with safe_open(str(out), framework="pt") as handle:
        assert json.loads(handle.metadata()["ids"]) == ["a", "b"]
        torch.testing.assert_close(handle.get_tensor("embeddings"), expected[[0, 2]], atol=1e-6, rtol=0)
