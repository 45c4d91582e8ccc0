"""What an index's rows were encoded from (:mod:`biohicl.search.contents`): a rerun of ``biohicl index`` over
documents that kept their ids but changed their title or text is refused naming the shard and the first such id,
one that changed only their MeSH labels rewrites the labels and keeps the rows, ``--document_index`` over a BEIR
corpus with other texts is refused; an index written before the digests were recorded keeps working, with one
warning (tiny random BERT, CPU)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from biohicl.data.corpus import Document
from biohicl.errors import DataError
from biohicl.evaluation.retrieval import load_beir
from biohicl.models.model import BioHiCL
from biohicl.search.contents import text_digest, texts_digest
from biohicl.search.documents import IndexDocuments
from biohicl.search.indexing import build_index
from biohicl.search.layout import IndexManifest, read_shard_metadata
from tests.test_distributed_index import ThreadState


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def records(n: int = 6) -> list[dict]:
    return [
        {"_id": f"D{i}", "title": f"Title {i}", "text": f"insulin and heart {i}", "mesh": ["D007328"]} for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def folder_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_digests_are_those_of_the_encoded_texts(model, tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(3))
    manifest = build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    lines = [json.loads(line) for line in (tmp_path / "idx" / "shard-00000.docs.jsonl").read_text().splitlines()]
    sha = hashlib.sha256(b"Title 0 insulin and heart 0").hexdigest()[:16]  # title + " " + text, as encoded
    assert lines[0] == {"id": "D0", "title": "Title 0", "mesh": ["D007328"], "text_sha": sha}
    docs = [Document(f"D{i}", f"insulin and heart {i}", f"Title {i}", ("D007328",)) for i in range(2)]
    assert manifest.shards[0].text_sha256 == texts_digest(docs)
    assert read_shard_metadata(tmp_path / "idx" / "shard-00000.safetensors")["text_sha256"] == texts_digest(docs)
    relabelled = [Document(d.id, d.text, d.title, ("D006331",)) for d in docs]
    assert texts_digest(relabelled) == texts_digest(docs)  # labels are not in it
    assert (
        texts_digest([Document("D0", "insulin and heart 0", "Title 0")])
        == hashlib.sha256(json.dumps(["D0", sha]).encode() + b"\n").hexdigest()
    )
    assert text_digest(" x ") == text_digest("x") != text_digest("y")


@pytest.mark.parametrize(("field", "value"), [("title", "Corrected title 4"), ("text", "new abstract")])
def test_a_rerun_over_a_changed_text_is_refused_in_one_line(model, tmp_path, field, value):
    rows = records(6)
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    before = folder_bytes(tmp_path / "idx")
    rows[4][field] = value  # shard 2, its first document
    write_jsonl(corpus, rows)
    message = (
        r"shard 2 was built from other texts \(first differing id 'D4': its title or text changed\); index into a "
        "new folder or remove it"
    )
    with pytest.raises(DataError, match=message) as caught:
        build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert "\n" not in str(caught.value) and "shard-00002.safetensors" in str(caught.value)
    assert folder_bytes(tmp_path / "idx") == before  # the finished index is left as it was


def test_an_unchanged_rerun_keeps_every_shard_and_says_so(model, tmp_path, caplog):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(5))
    build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    before = folder_bytes(tmp_path / "idx")
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert folder_bytes(tmp_path / "idx") == before
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.search.indexing"] == [
        "resuming: kept 3 of 3 shards"
    ]


def pubmed(n: int, mesh: dict[int, list[str]]) -> list[dict]:
    """``n`` PubMed-like records, ``mesh`` the labels of some of them (PubMed adds MeSH months after publication)."""
    return [
        {"_id": str(30000000 + i), "title": f"Title {i}", "text": f"insulin and heart {i}"}
        | ({"mesh": mesh[i]} if i in mesh else {})
        for i in range(n)
    ]


def test_a_grow_over_new_mesh_labels_keeps_the_rows_and_rewrites_the_labels(model, tmp_path, caplog):
    corpus = write_jsonl(tmp_path / "pm.jsonl", pubmed(4, {2: ["D006331"]}))  # January: one labelled paper
    build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    rows = (tmp_path / "idx" / "shard-00000.safetensors").read_bytes()
    write_jsonl(corpus, pubmed(6, {0: ["D007328"], 1: ["D006331"]}))  # February: 2 new papers; labels added, taken
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        manifest = build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    assert (tmp_path / "idx" / "shard-00000.safetensors").read_bytes() == rows  # not encoded again
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.search.indexing"] == [
        "shard 0: MeSH labels updated for 3 document(s)",
        "resuming: kept 1 of 2 shards",
    ]
    sidecar = [json.loads(line) for line in (tmp_path / "idx" / "shard-00000.docs.jsonl").read_text().splitlines()]
    assert [r.get("mesh") for r in sidecar] == [["D007328"], ["D006331"], None, None]
    fresh = build_index(model, corpus, tmp_path / "fresh", shard_size=4, show_progress_bar=False)
    for name in ("shard-00000.docs.jsonl", "shard-00001.docs.jsonl"):  # as a fresh build writes them
        assert (tmp_path / "idx" / name).read_text() == (tmp_path / "fresh" / name).read_text()
    assert manifest.shards == fresh.shards and manifest.has_mesh
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    assert [r.getMessage() for r in caplog.records] == ["resuming: kept 2 of 2 shards"]


def make_legacy(directory: Path) -> None:
    """Strip the content digests as an index of an older biohicl lacks them."""
    for shard in directory.glob("shard-*.safetensors"):
        metadata = read_shard_metadata(shard)
        del metadata["text_sha256"]
        save_file(load_file(str(shard)), str(shard), metadata=metadata)
    for sidecar in directory.glob("shard-*.docs.jsonl"):
        lines = [json.loads(line) for line in sidecar.read_text().splitlines()]
        sidecar.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "text_sha"}) + "\n" for r in lines))
    values = json.loads((directory / "manifest.json").read_text())
    for shard in values["shards"]:
        del shard["text_sha256"]
    (directory / "manifest.json").write_text(json.dumps(values))


def test_an_index_without_content_digests_resumes_with_one_warning(model, tmp_path, caplog):
    rows = records(6)
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    make_legacy(tmp_path / "idx")
    assert IndexManifest.load(tmp_path / "idx").shards[0].text_sha256 is None
    rows[4]["title"] = "Corrected title 4"
    rows[0]["mesh"] = ["D006331"]  # the labels of an older shard are updated too
    write_jsonl(corpus, rows + records(7)[6:])  # grown by one document: a new shard 3
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        manifest = build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert [s.text_sha256 is None for s in manifest.shards] == [True, True, True, False]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{tmp_path / 'idx'}: 3 of the 3 shards kept (6 rows) were written before biohicl recorded the texts of "
        "its documents: a changed text cannot be detected"
    ]
    assert "resuming: kept 3 of 4 shards" in [r.getMessage() for r in caplog.records]
    assert "shard 0: MeSH labels updated for 1 document(s)" in [r.getMessage() for r in caplog.records]
    line = json.loads((tmp_path / "idx" / "shard-00000.docs.jsonl").read_text().splitlines()[0])
    assert line == {"id": "D0", "title": "Title 0", "mesh": ["D006331"]}  # no text_sha: its text is still unknown


def write_beir(folder: Path, docs: list[dict]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "insulin"}])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


BEIR_DOCS = [
    {"_id": "d1", "title": "Insulin", "text": "insulin signalling"},
    {"_id": "d2", "title": "", "text": " tumor growth"},  # no title, a leading space: evaluation strips it
    {"_id": "d3", "title": "Only a title", "text": ""},  # the index encodes "Only a title", evaluation the same
]


def test_document_index_refuses_a_corpus_with_other_texts(model, tmp_path):
    folder = write_beir(tmp_path / "toy", BEIR_DOCS)
    build_index(model, folder, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    documents = IndexDocuments(tmp_path / "idx", model)
    data = load_beir(folder)
    assert documents.lookup(list(data.corpus), list(data.corpus.values()))(["d3"]).shape == (1, model.embedding_dim)
    changed = [dict(d) for d in BEIR_DOCS]
    changed[2]["text"] = "a corrected abstract"
    data = load_beir(write_beir(tmp_path / "toy2", changed))
    message = r"idx: the index was built from other texts than the corpus has \(first differing id 'd3'\); rebuild"
    with pytest.raises(DataError, match=message):
        documents.lookup(list(data.corpus), list(data.corpus.values()))


def test_document_index_of_an_older_index_warns_that_texts_are_unknown(model, tmp_path, caplog):
    folder = write_beir(tmp_path / "toy", BEIR_DOCS)
    build_index(model, folder, tmp_path / "idx", show_progress_bar=False)
    make_legacy(tmp_path / "idx")
    data = load_beir(folder)
    with caplog.at_level(logging.WARNING):
        IndexDocuments(tmp_path / "idx", model).lookup(list(data.corpus), ["other"] * len(data.corpus))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'idx'}: 3 of 3 rows were written before biohicl recorded the texts of its documents: a changed "
        "text cannot be detected"
    ]


def test_document_index_of_a_grown_older_index_counts_the_rows_it_cannot_check(model, tmp_path, caplog):
    folder = write_beir(tmp_path / "toy", BEIR_DOCS)
    build_index(model, folder, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    make_legacy(tmp_path / "idx")
    write_beir(folder, [*BEIR_DOCS, {"_id": "d4", "title": "Heart", "text": "heart failure"}])
    build_index(model, folder, tmp_path / "idx", shard_size=2, show_progress_bar=False)  # shard 1 encoded again
    data = load_beir(folder)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        IndexDocuments(tmp_path / "idx", model).lookup(list(data.corpus), list(data.corpus.values()))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'idx'}: 2 of 4 rows were written before biohicl recorded the texts of its documents: a changed "
        "text cannot be detected"
    ]


def test_ranks_record_the_digests_and_refuse_a_changed_shard_on_resume(tiny_bert_dir, model, tmp_path):
    docs = [Document(f"d{i}", f"heart cells {i}", mesh=("D006321",)) for i in range(7)]
    single = build_index(model, docs, tmp_path / "single", shard_size=2, show_progress_bar=False)
    models = [model, BioHiCL.from_base(str(tiny_bert_dir))]  # a fast tokenizer is not shared between threads

    def run(corpus: list[Document]) -> list:
        barrier, results, errors = threading.Barrier(2), [None, None], []

        def work(rank: int) -> None:
            try:
                state = ThreadState(rank, 2, barrier)
                results[rank] = build_index(
                    models[rank], corpus, tmp_path / "two", shard_size=2, state=state, show_progress_bar=False
                )
            except BaseException as err:
                errors.append(err)
                barrier.abort()

        threads = [threading.Thread(target=work, args=(rank,)) for rank in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise next((e for e in errors if isinstance(e, DataError)), errors[0])
        return results

    manifest = run(docs)[0]
    assert [s.text_sha256 for s in manifest.shards] == [s.text_sha256 for s in single.shards]
    assert all(s.text_sha256 for s in manifest.shards) and manifest.shards[3].rank == 1
    docs[6] = Document("d6", "heart cells 6 (corrected)", mesh=("D006321",))  # shard 3, rank 1's
    with pytest.raises(DataError, match=r"shard 3 was built from other texts \(first differing id 'd6'"):
        run(docs)


def test_the_command_line_shows_the_resume_line(tiny_bert_dir, tmp_path, capsys):
    """``biohicl index`` rerun into its folder says on the console how many shards it kept."""
    from biohicl.cli.main import main as cli

    corpus = write_jsonl(tmp_path / "c.jsonl", records(5))
    built = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(tmp_path / "idx"), "--no_progress"]
    assert cli([*built, "--shard_size", "2"]) == 0
    capsys.readouterr()
    assert cli([*built, "--shard_size", "2"]) == 0
    assert "resuming: kept 3 of 3 shards\n" in capsys.readouterr().out


def test_a_refused_rerun_leaves_the_labels_of_earlier_kept_shards_as_they_were(model, tmp_path, caplog):
    """Shard 0's labels changed and shard 1's text: the rerun is refused at shard 1, and shard 0's docs sidecar is
    not rewritten (its new labels are written only by a rerun that keeps every shard)."""
    rows = records(4)
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    before = folder_bytes(tmp_path / "idx")
    rows[0]["mesh"] = ["D006331"]  # shard 0: labels only
    rows[3]["text"] = "a changed text"  # shard 1: refused
    write_jsonl(corpus, rows)
    with pytest.raises(DataError, match=r"shard 1 was built from other texts \(first differing id 'D3'"):
        build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert folder_bytes(tmp_path / "idx") == before  # shard-00000.docs.jsonl included
    rows[3]["text"] = "insulin and heart 3"  # the text put back: the labels-only change is written
    write_jsonl(corpus, rows)
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.search.indexing"] == [
        "shard 0: MeSH labels updated for 1 document(s)",
        "resuming: kept 2 of 2 shards",
    ]
    line = json.loads((tmp_path / "idx" / "shard-00000.docs.jsonl").read_text().splitlines()[0])
    assert (line["id"], line["mesh"]) == ("D0", ["D006331"])
    assert (tmp_path / "idx" / "shard-00001.docs.jsonl").read_bytes() == before["shard-00001.docs.jsonl"]
