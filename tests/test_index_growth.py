"""Indexing a corpus: blank documents, repeated ids (their records, and the digests that find them), an index grown
by documents added at the end, and the model check of a search (tiny random BERT, CPU)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
import torch

from biohicl.data.corpus import Document
from biohicl.errors import DataError
from biohicl.models.model import BioHiCL
from biohicl.search import seen_ids
from biohicl.search.indexing import _shards, build_index
from biohicl.search.layout import IndexManifest
from biohicl.search.seen_ids import SeenIds


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def write_jsonl(path: Path, records: list[dict | None]) -> Path:
    """One JSON object per line; None: an empty line."""
    path.write_text("".join(("" if r is None else json.dumps(r)) + "\n" for r in records))
    return path


def docs_of(ids: list[str]) -> list[Document]:
    return [Document(doc_id, f"text of {doc_id}") for doc_id in ids]


# ---------------------------------------------------------------------------------------------- blank documents
def test_blank_documents_are_left_out_counted_and_logged(model, tmp_path, caplog):
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"_id": "A", "title": "Insulin", "text": "insulin resistance"},
            {"_id": "E1", "title": "", "text": ""},
            None,
            {"_id": "B", "text": "heart failure"},
            {"_id": "E2", "title": "  ", "text": "\n\t"},
            {"_id": "C", "title": "Only a title", "text": ""},
            {"_id": "E3", "text": " "},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="biohicl.search.indexing"):
        manifest = build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert manifest.count == 3 and manifest.skipped_blank == 3
    assert IndexManifest.load(tmp_path / "idx").skipped_blank == 3
    lines = [line for s in manifest.shards for line in (tmp_path / "idx" / s.docs).read_text().splitlines()]
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == ["A", "B", "C"]
    assert [r.getMessage() for r in caplog.records] == [f"{corpus}: skipped 3 documents with no text, e.g. E1"]


def test_an_older_manifest_without_the_blank_count_reads_as_zero(model, tmp_path):
    build_index(model, docs_of(["a", "b"]), tmp_path / "idx", show_progress_bar=False)
    values = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    del values["skipped_blank"]
    assert IndexManifest.from_dict(values).skipped_blank == 0


def test_document_index_of_a_corpus_with_blank_documents_says_why_ids_are_missing(model, tmp_path):
    from biohicl.search.documents import IndexDocuments

    docs = [Document("A", "insulin"), Document("E1", " "), Document("B", "heart")]
    build_index(model, docs, tmp_path / "idx", show_progress_bar=False)
    documents = IndexDocuments(tmp_path / "idx", model)
    with pytest.raises(DataError, match=r"1 of 3 corpus ids missing, e\.g\. E1; 2 indexed; the index left out 1 "):
        documents.lookup(["A", "E1", "B"])
    assert documents.lookup(["A", "B"])(["B"]).shape == (1, model.embedding_dim)


# ---------------------------------------------------------------------------------------------- repeated ids
def test_a_repeated_id_names_its_record_and_the_first(model, tmp_path):
    corpus = write_jsonl(
        tmp_path / "dup.jsonl",
        [
            {"_id": "P0", "text": "a"},
            {"_id": "P1", "text": "b"},
            {"_id": "P2", "text": "c"},
            None,
            {"_id": "P1", "text": "d"},
        ],
    )
    for shard_size in (1, 2, 50):  # the repeat in a later shard, in the same shard
        with pytest.raises(DataError) as caught:
            build_index(model, corpus, tmp_path / f"idx{shard_size}", shard_size=shard_size)
        assert str(caught.value) == f"{corpus}: line 5: duplicate document id 'P1' (first at line 2)"


@pytest.mark.parametrize("one_shot", [False, True])
def test_the_first_repeat_in_stream_order_is_reported(one_shot):
    docs = [Document(d, "x", record=i) for i, d in enumerate("abcdca", 1)]  # shard [c, a]: c's repeat comes first
    seen = SeenIds(None if one_shot else (lambda: iter(docs)))
    with pytest.raises(DataError, match=r"^record 5: duplicate document id 'c' \(first at record 3\)$"):
        list(_shards(iter(docs), 2, None, seen))
    docs[4] = Document("e", "x", record=5)
    seen = SeenIds(None if one_shot else (lambda: iter(docs)))
    with pytest.raises(DataError, match=r"^record 6: duplicate document id 'a' \(first at record 1\)$"):
        list(_shards(iter(docs), 2, None, seen))
    docs = [Document(d, "x", record=i) for i, d in enumerate("abcdda", 1)]  # in shard [d, d, a]: d's first
    seen = SeenIds(None if one_shot else (lambda: iter(docs)))
    with pytest.raises(DataError, match=r"^record 5: duplicate document id 'd' \(first at record 4\)$"):
        list(_shards(iter(docs), 3, None, seen))


def test_a_digest_collision_is_never_a_duplicate(monkeypatch):
    """Every id given one digest: each shard's ids all "hit" an earlier level, and re-reading shows they are new."""
    monkeypatch.setattr(seen_ids, "id_digest", lambda doc_id: b"\x07" * 8)
    docs = [Document(f"id{i}", "x", record=i + 1) for i in range(23)]
    seen = SeenIds(lambda: iter(docs))
    assert [len(c) for c in _shards(iter(docs), 4, None, seen)] == [4, 4, 4, 4, 4, 3]
    assert seen.count == 23 and sorted(len(level) for level in seen.levels) == [3, 4, 16]
    repeated = [*docs[:9], Document("id3", "again", record=10), *docs[9:]]
    seen = SeenIds(lambda: iter(repeated))
    with pytest.raises(DataError, match=r"^record 10: duplicate document id 'id3' \(first at record 4\)$"):
        list(_shards(iter(repeated), 4, None, seen))


def test_digest_levels_find_exactly_the_repeats_a_set_finds():
    rng = __import__("random").Random(0)
    for trial in range(30):
        ids = [f"p{rng.randrange(400)}" for _ in range(rng.randrange(1, 60))]
        docs = [Document(doc_id, "x", record=i) for i, doc_id in enumerate(ids, 1)]
        first_repeat = next((i for i in range(len(ids)) if ids[i] in ids[:i]), None)
        shard_size = rng.randrange(1, 9)
        seen = SeenIds(lambda docs=docs: iter(docs))
        if first_repeat is None:
            assert sum(len(c) for c in _shards(iter(docs), shard_size, None, seen)) == len(ids), trial
            assert seen.nbytes == 8 * len(ids)
            continue
        expected = f"record {first_repeat + 1}: duplicate document id '{ids[first_repeat]}' "
        expected += f"(first at record {ids.index(ids[first_repeat]) + 1})"
        with pytest.raises(DataError) as caught:
            list(_shards(iter(docs), shard_size, None, seen))
        assert str(caught.value) == expected, trial


# ---------------------------------------------------------------------------------------------- model check
def test_a_copy_of_the_model_folder_is_the_same_model_other_weights_warn_in_one_line(
    tiny_bert_dir, tmp_path, capsys, caplog
):
    """`cp -r tiny tinycopy; biohicl search idx q --model tinycopy` warned that another model encodes the queries
    (as a Python warning with a source line); a copy with other weights still warns, in one log line."""
    import shutil
    import warnings

    from safetensors.torch import load_file, save_file

    from biohicl.cli.main import main as cli
    from biohicl.models.onnx_backend import load_inference_model
    from biohicl.search.exact import check_model_matches
    from biohicl.search.index import load_index

    build_index(load_inference_model(str(tiny_bert_dir)), docs_of(["a", "b", "c"]), tmp_path / "idx")
    shutil.copytree(tiny_bert_dir, tmp_path / "copy")
    shutil.copytree(tiny_bert_dir, tmp_path / "other")
    weights = load_file(str(tmp_path / "other" / "model.safetensors"))
    for name, tensor in weights.items():
        if tensor.dtype.is_floating_point and tensor.ndim == 2:
            weights[name] = tensor + 0.5 * torch.randn(tensor.shape, generator=torch.Generator().manual_seed(0))
    save_file(weights, str(tmp_path / "other" / "model.safetensors"), metadata={"format": "pt"})
    index = load_index(tmp_path / "idx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_model_matches(load_inference_model(str(tmp_path / "copy")), index)
    with pytest.warns(UserWarning, match=f"built with {tiny_bert_dir.resolve()}, the queries are encoded with"):
        check_model_matches(load_inference_model(str(tmp_path / "other")), index)

    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert cli(["search", str(tmp_path / "idx"), "heart", "--model", str(tmp_path / "copy"), "--top_k", "1"]) == 0
        ours = [r for r in caplog.records if r.name != "biohicl.models.config"]  # not the folder's pooling guess
        assert not ours and "Warning" not in capsys.readouterr().err
        assert cli(["search", str(tmp_path / "idx"), "heart", "--model", str(tmp_path / "other"), "--top_k", "1"]) == 0
    err = capsys.readouterr().err
    assert [r.getMessage() for r in caplog.records if r.name != "biohicl.models.config"] == [
        f"warning: the index was built with {tiny_bert_dir.resolve()}, the queries are encoded with "
        f"{(tmp_path / 'other').resolve()}"
    ]
    assert "UserWarning" not in err and "search.py" not in err


# ---------------------------------------------------------------------------------------------- growth
def index_tensors(directory: Path) -> tuple[torch.Tensor, list[str]]:
    from safetensors.torch import load_file

    manifest = IndexManifest.load(directory)
    rows = torch.cat([load_file(str(directory / s.file))["embeddings"] for s in manifest.shards])
    docs = [line for s in manifest.shards for line in (directory / s.docs).read_text().splitlines()]
    return rows, docs


def growing_corpus(n: int) -> list[Document]:
    return [Document(f"d{i}", f"cancer cells in the heart {i} " * (1 + i % 3), f"title {i}") for i in range(n)]


def test_a_grown_index_rebuilds_its_stale_compressed_form(model, tmp_path, caplog):
    """A rerun on a corpus with documents added (the shards it had full) left compressed-int8.json describing the
    old rows: `biohicl search` then refused the index."""
    import numpy as np

    from biohicl.search.exact import search

    build_index(model, growing_corpus(10), tmp_path / "idx", shard_size=5, compress="int8", show_progress_bar=False)
    with caplog.at_level(logging.WARNING, logger="biohicl.search.compression"):
        grown = build_index(model, growing_corpus(13), tmp_path / "idx", shard_size=5, show_progress_bar=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'idx'}: rebuilding compressed-int8.json: it describes other rows than the index's 13 "
        "(documents were added)"
    ]
    fresh = build_index(model, growing_corpus(13), tmp_path / "fresh", shard_size=5, compress="int8")
    assert grown.count == fresh.count == 13
    rows, docs = index_tensors(tmp_path / "idx")
    fresh_rows, fresh_docs = index_tensors(tmp_path / "fresh")
    assert torch.equal(rows, fresh_rows) and docs == fresh_docs
    info = json.loads((tmp_path / "idx" / "compressed-int8.json").read_text())
    assert info == json.loads((tmp_path / "fresh" / "compressed-int8.json").read_text())
    for number in range(3):
        name = f"shard-{number:05d}.int8.npy"
        assert np.array_equal(np.load(tmp_path / "idx" / name), np.load(tmp_path / "fresh" / name))
    hits = search(model, "title 12", tmp_path / "idx", top_k=13)[0]
    assert sorted(h.id for h in hits) == sorted(d.id for d in growing_corpus(13))


def test_a_stale_compressed_form_is_rebuilt_at_the_calibration_rows_it_was_built_with(model, tmp_path):
    """A rerun without --calibration_rows rebuilt a form built with --calibration_rows 4 at the default (all 13
    rows sampled), so it no longer equalled a fresh build at 4; an info file older than the record falls back to the
    rerun's value."""
    import numpy as np

    build = functools.partial(build_index, model, shard_size=5, show_progress_bar=False)
    build(growing_corpus(10), tmp_path / "idx", compress="int8", calibration_rows=4)
    build(growing_corpus(13), tmp_path / "idx")
    build(growing_corpus(13), tmp_path / "fresh", compress="int8", calibration_rows=4)
    info = json.loads((tmp_path / "idx" / "compressed-int8.json").read_text())
    assert info["calibration"]["rows"] == 4 and info["calibration_rows"] == 4  # rows 0, 4, 8, 12 of 13
    assert info == json.loads((tmp_path / "fresh" / "compressed-int8.json").read_text())
    for number in range(3):
        name = f"shard-{number:05d}.int8.npy"
        assert np.array_equal(np.load(tmp_path / "idx" / name), np.load(tmp_path / "fresh" / name))

    build(growing_corpus(10), tmp_path / "old", compress="int8", calibration_rows=4)
    path = tmp_path / "old" / "compressed-int8.json"
    old = json.loads(path.read_text())
    del old["calibration_rows"]  # as written before the record
    path.write_text(json.dumps(old))
    build(growing_corpus(13), tmp_path / "old", calibration_rows=6)
    info = json.loads(path.read_text())
    assert info["calibration_rows"] == 6 and info["calibration"]["rows"] == 6


def count_encoded(monkeypatch) -> list[int]:
    """The sizes of the batches of documents ``BioHiCL.encode`` is given from now on (the probe texts left out)."""
    from biohicl.search.layout import PROBE_TEXTS

    encoded: list[int] = []
    original = BioHiCL.encode

    def counting(self, texts, *args, **kwargs):
        if list(texts) != list(PROBE_TEXTS):
            encoded.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(BioHiCL, "encode", counting)
    return encoded


@pytest.mark.parametrize("grown_to", [13, 17])
def test_documents_added_to_a_partial_last_shard_re_encode_it(model, tmp_path, monkeypatch, grown_to):
    """12 documents in shards of 5 end in a shard of 2; with 1 (or 5) added the rerun refused ("shard 2 was built
    from other documents"): it now encodes that shard again (and any new one), and equals a fresh build."""
    from biohicl.search.exact import search

    build_index(model, growing_corpus(12), tmp_path / "idx", shard_size=5, compress="int8", show_progress_bar=False)
    encoded = count_encoded(monkeypatch)
    grown = build_index(model, growing_corpus(grown_to), tmp_path / "idx", shard_size=5, show_progress_bar=False)
    assert encoded == ([3] if grown_to == 13 else [5, 2])  # shard 2 again (and shard 3), never shards 0 and 1
    monkeypatch.undo()  # BioHiCL.encode as it was
    build_index(model, growing_corpus(grown_to), tmp_path / "fresh", shard_size=5, compress="int8")
    rows, docs = index_tensors(tmp_path / "idx")
    fresh_rows, fresh_docs = index_tensors(tmp_path / "fresh")
    assert grown.count == grown_to and torch.equal(rows, fresh_rows) and docs == fresh_docs
    assert json.loads((tmp_path / "idx" / "compressed-int8.json").read_text()) == json.loads(
        (tmp_path / "fresh" / "compressed-int8.json").read_text()
    )
    hits = search(model, "title 11", tmp_path / "idx", top_k=grown_to)[0]
    assert sorted(h.id for h in hits) == sorted(d.id for d in growing_corpus(grown_to))


def test_a_partial_last_shard_with_other_documents_is_still_refused(model, tmp_path):
    build_index(model, growing_corpus(7), tmp_path / "idx", shard_size=5, show_progress_bar=False)
    changed = growing_corpus(8)
    changed[5] = Document("other", "text")  # the partial shard's first document replaced, one added
    with pytest.raises(DataError, match=r"shard 1 was built from other documents .* only be added at its end"):
        build_index(model, changed, tmp_path / "idx", shard_size=5, show_progress_bar=False)
    assert IndexManifest.load(tmp_path / "idx").count == 7  # the finished index is left as it was


# ---------------------------------------------------------------------------------------------- an index keeping blanks
def blank_corpus(n: int) -> list[Document]:
    """``growing_corpus(n)`` with documents 2 and 9 blank."""
    return [Document(d.id, " ", "") if i in (2, 9) else d for i, d in enumerate(growing_corpus(n))]


def build_keeping_blanks(model, corpus: list[Document], directory: Path, monkeypatch) -> None:
    """An index as biohicl built it before blank documents were left out: they are rows, and neither its
    manifest.json (``skipped_blank``) nor its settings.json (``blank_documents``) says anything about them."""
    from biohicl.search import blank_documents

    with monkeypatch.context() as patch:
        patch.setattr(blank_documents, "skip_blank", lambda docs, blank: iter(docs), raising=False)
        patch.setattr("biohicl.search.indexing.skip_blank", lambda docs, blank: iter(docs), raising=False)
        build_index(model, corpus, directory, shard_size=3, show_progress_bar=False)
    for name, key in (("manifest.json", "skipped_blank"), ("settings.json", "blank_documents")):
        values = json.loads((directory / name).read_text())
        values.pop(key, None)
        (directory / name).write_text(json.dumps(values))


def test_an_index_built_keeping_blank_documents_is_rerun_and_grown_keeping_them(model, tmp_path, monkeypatch, caplog):
    """A rerun on an index older biohicl built (blank documents kept) left them out of the corpus stream, so shard 0
    held other ids and it refused ("the corpus changed since the earlier run") even on the same corpus."""

    build_keeping_blanks(model, blank_corpus(7), tmp_path / "idx", monkeypatch)
    blank = '{"id": "d2", "text_sha": "e3b0c44298fc1c14"}'  # sha256 of ""
    assert index_tensors(tmp_path / "idx")[1][2] == blank  # the blank document is row 2
    encoded = count_encoded(monkeypatch)
    build = functools.partial(build_index, model, shard_size=3, show_progress_bar=False)
    with caplog.at_level(logging.WARNING, logger="biohicl.search"):
        same = build(blank_corpus(7), tmp_path / "idx")
    assert encoded == [] and same.count == 7 and same.skipped_blank == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'idx'}: built before blank documents were left out, it still holds them (documents with no "
        "text: 1, e.g. d2); an index built in a new folder leaves them out"
    ]
    assert json.loads((tmp_path / "idx" / "settings.json").read_text())["blank_documents"] == "keep"

    grown = build(blank_corpus(11), tmp_path / "idx")  # the manifest now has skipped_blank: settings.json tells
    assert encoded == [3, 2] and grown.count == 11  # shard 2 (d6-d8) again, shard 3 (d9, blank, kept, and d10)
    assert build(blank_corpus(11), tmp_path / "idx").count == 11 and encoded == [3, 2]
    monkeypatch.undo()  # BioHiCL.encode as it was
    build_keeping_blanks(model, blank_corpus(11), tmp_path / "fresh", monkeypatch)
    rows, docs = index_tensors(tmp_path / "idx")
    fresh_rows, fresh_docs = index_tensors(tmp_path / "fresh")
    assert torch.equal(rows, fresh_rows) and docs == fresh_docs and len(docs) == 11

    build(blank_corpus(11), tmp_path / "new")  # a new folder leaves them out
    assert IndexManifest.load(tmp_path / "new").count == 9
    assert json.loads((tmp_path / "new" / "settings.json").read_text())["blank_documents"] == "skip"


def test_a_shard_holding_blank_documents_in_a_folder_that_does_not_say_so_is_refused_saying_why(
    model, tmp_path, monkeypatch
):
    build_keeping_blanks(model, blank_corpus(7), tmp_path / "idx", monkeypatch)
    (tmp_path / "idx" / "manifest.json").unlink()  # as a killed run leaves it: nothing tells the blanks were kept
    with pytest.raises(
        DataError, match=r"shard 0 was built .* \(it was built keeping documents with no text \(1, e\.g\. 'd2'\)"
    ):
        build_index(model, blank_corpus(7), tmp_path / "idx", shard_size=3, show_progress_bar=False)
