"""Corpus readers and the sharded, resumable index (tiny random BERT, CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from biohicl.data.corpus import Document, iter_documents, read_corpus
from biohicl.errors import ConfigError, DataError
from biohicl.models.model import BioHiCL
from biohicl.search.contents import text_digest
from biohicl.search.indexing import build_index
from biohicl.search.layout import PROBE_TEXTS, IndexManifest, ids_digest

MESH = [["D003924"], ["D009765", "D003924"], [], ["D006973"]]


def make_docs(n: int) -> list[dict]:
    return [
        {
            "_id": f"doc{i}",
            "title": f"title {i}",
            "text": "cancer cells in the heart " * (1 + i % 4) + str(i),
            "mesh": MESH[i % 4],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def index_rows(directory: Path) -> tuple[torch.Tensor, list[dict]]:
    manifest = IndexManifest.load(directory)
    tensors = [load_file(str(directory / s.file))["embeddings"] for s in manifest.shards]
    docs = [json.loads(line) for s in manifest.shards for line in (directory / s.docs).read_text().splitlines()]
    return torch.cat(tensors), docs


# ---------------------------------------------------------------------------------------------- corpus readers
def test_read_beir_jsonl_folder(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "7", "title": "T", "text": "body", "metadata": {}}\n\n{"_id": "8", "title": "", "text": "x"}\n'
    )
    docs = list(read_corpus(tmp_path))
    assert docs == [Document("7", "body", "T"), Document("8", "x", "")]
    assert docs[0].full_text() == "T body" and docs[1].full_text() == "x"


def test_every_json_lines_name_reads_as_a_corpus(tmp_path):
    """``biohicl index`` reads the JSON-lines names ``read_texts`` and build-dataset read, ``.ndjson.gz`` included."""
    import gzip

    line = '{"_id": "7", "title": "T", "text": "body"}\n'
    for name in ("c.jsonl", "c.ndjson"):
        (tmp_path / name).write_text(line)
    for name in ("c.jsonl.gz", "c.ndjson.gz"):
        (tmp_path / name).write_bytes(gzip.compress(line.encode()))
    for name in ("c.jsonl", "c.ndjson", "c.jsonl.gz", "c.ndjson.gz"):
        assert list(read_corpus(tmp_path / name)) == [Document("7", "body", "T")], name


def test_read_tsv_with_and_without_header(tmp_path):
    (tmp_path / "a.tsv").write_text("id\ttitle\ttext\n1\tA\tfirst\n2\tB\tsecond\n")
    (tmp_path / "b.tsv").write_text("1\tfirst\n2\tsecond\n")
    assert [(d.id, d.title, d.text) for d in read_corpus(tmp_path / "a.tsv")] == [
        ("1", "A", "first"),
        ("2", "B", "second"),
    ]
    assert [(d.id, d.text) for d in read_corpus(tmp_path / "b.tsv")] == [("1", "first"), ("2", "second")]


def test_read_documents_parquet_streams_batches(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "dataset" / "documents"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "pmid": ["11", "12", "13"],
            "title": ["a", "b", "c"],
            "abstract": ["x", "y", "z"],
            "mesh": [["D003924"], [], ["D009765", "D006973"]],
        }
    )
    pq.write_table(table, folder / "train-00000.parquet", row_group_size=2)
    docs = list(read_corpus(tmp_path / "dataset"))
    assert [(d.id, d.title, d.text, d.mesh) for d in docs] == [
        ("11", "a", "x", ("D003924",)),
        ("12", "b", "y", ()),
        ("13", "c", "z", ("D009765", "D006973")),
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["documents/documents-00000.parquet", "pairs/pairs-00000.parquet"], ["documents/documents-00000.parquet"]),
        (["data/documents-00000-of-00001.parquet", "data/pairs-00000-of-00001.parquet"],
         ["data/documents-00000-of-00001.parquet"]),
        (["documents-00000.parquet", "pairs-00000.parquet"], ["documents-00000.parquet"]),
        (["documents/train/x.parquet"], ["documents/train/x.parquet"]),
        # both a single file and a Hub data/ folder: one rule picks the single file for indexing and evaluation
        (["documents.parquet", "data/documents-00000-of-00001.parquet"], ["documents.parquet"]),
        (["docs.parquet", "pairs.parquet"], ["docs.parquet"]),  # the corpus reader's own last fallback
    ],
)  # fmt: skip
def test_corpus_parquet_files_follow_the_dataset_layouts(tmp_path, files, expected):
    from biohicl.data import corpus, documents

    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [str(p.relative_to(tmp_path)) for p in corpus.parquet_files(tmp_path)]
    assert found == expected
    if files[0] != "docs.parquet":
        assert documents.parquet_files(tmp_path, "documents") == corpus.parquet_files(tmp_path)
    with pytest.raises(DataError, match=r"empty: no corpus found: a corpus folder holds a BEIR corpus\.jsonl"):
        corpus.parquet_files(tmp_path / "empty")


def test_bad_records_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: not valid JSON"):
        list(read_corpus(bad))
    no_id = tmp_path / "noid.jsonl"
    no_id.write_text('{"text": "ok"}\n')
    with pytest.raises(DataError, match=r"noid\.jsonl: line 1: no document id"):
        list(read_corpus(no_id))
    xml = tmp_path / "corpus.xml"
    xml.write_text("<x/>")
    with pytest.raises(DataError, match="unknown corpus format"):
        read_corpus(xml)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"_id": "1", "text": "ok"}\n\n{"_id": "2", "text": \n', "line 3: not valid JSON"),
        ("array.jsonl", b'{"_id": "1", "text": "ok"}\n[1]\n', "line 2: expected a JSON object per line"),
        ("latin1.jsonl", b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n', "line 2: cannot decode"),
        ("noid.jsonl", b'{"text": "ok"}\n', "line 1: no document id"),
        ("mesh.jsonl", b'\n{"_id": "1", "text": "ok", "mesh": 7}\n', "line 2: document 1: `mesh` must be a string"),
        ("cols.tsv", b"1\tok\n2\n", "line 2: expected 2 (id, text) or 3 (id, title, text) columns, got 1"),
        ("header.tsv", b"id\ttext\n1\tok\n2\n", "line 3: expected 2 columns, got 1"),
        ("notext.tsv", b"id\ttitle\n1\t\n", "line 2: document 1: no text"),
    ],
)
def test_an_error_in_a_corpus_file_names_its_line_as_a_line(tmp_path, name, content, message):
    """Each was "FILE, record N: ..." with N a line number, while other errors of the same lines read "FILE: line N"."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path / name}: {message}")):
        list(read_corpus(tmp_path / name))


def test_an_error_in_a_parquet_corpus_names_its_row_as_a_record(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"pmid": ["1", ""], "abstract": ["ok", "no id"]}), tmp_path / "docs.parquet")
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path / 'docs.parquet'}, record 2: no document id")):
        list(read_corpus(tmp_path / "docs.parquet"))


def test_iter_documents_accepts_strings_tuples_dicts():
    docs = list(iter_documents(["plain", ("a", "text"), ("b", "T", "text"), {"id": 5, "abstract": "abs"}]))
    assert docs == [Document("0", "plain"), Document("a", "text"), Document("b", "text", "T"), Document("5", "abs")]


# ---------------------------------------------------------------------------------------------- building
def test_index_layout_manifest_and_values(model, tmp_path):
    docs = make_docs(23)
    manifest = build_index(model, docs, tmp_path / "idx", shard_size=5, batch_size=4, show_progress_bar=False)
    assert manifest.count == 23 and manifest.dim == 32 and manifest.dtype == "float32"
    assert [s.start for s in manifest.shards] == [0, 5, 10, 15, 20]
    assert [s.count for s in manifest.shards] == [5, 5, 5, 5, 3]
    assert manifest.has_titles and manifest.has_mesh and manifest.normalized
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(
        ["manifest.json", "settings.json"]
        + [f"shard-{i:05d}.safetensors" for i in range(5)]
        + [f"shard-{i:05d}.docs.jsonl" for i in range(5)]
    )
    emb, sidecar = index_rows(tmp_path / "idx")
    expected = model.encode([f"{d['title']} {d['text']}" for d in docs], convert_to="torch")
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=0)
    assert [r["id"] for r in sidecar] == [d["_id"] for d in docs]
    text_sha = text_digest(f"{docs[1]['title']} {docs[1]['text']}")  # what was encoded (biohicl.search.contents)
    assert sidecar[1] == {"id": "doc1", "title": "title 1", "mesh": ["D009765", "D003924"], "text_sha": text_sha}
    assert "mesh" not in sidecar[2]
    assert manifest.shards[0].ids_sha256 == ids_digest(f"doc{i}" for i in range(5))


def test_half_precision_storage(model, tmp_path):
    docs = make_docs(7)
    manifest = build_index(model, docs, tmp_path / "f16", shard_size=4, dtype="float16", show_progress_bar=False)
    emb, _ = index_rows(tmp_path / "f16")
    assert manifest.dtype == "float16" and emb.dtype == torch.float16
    full = model.encode([f"{d['title']} {d['text']}" for d in docs], convert_to="torch")
    torch.testing.assert_close(emb.float(), full, atol=1e-3, rtol=0)


def test_empty_corpus_is_refused_and_leaves_no_folder(model, tmp_path):
    """An index of no documents was written ("indexed 0 documents"); it is refused as build-dataset refuses an empty
    file, the folder it created removed (session 34)."""
    with pytest.raises(DataError, match=r"^no documents; nothing to index$"):
        build_index(model, [], tmp_path / "empty", show_progress_bar=False)
    assert not (tmp_path / "empty").exists()


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        build_index(model, make_docs(2), tmp_path / "x", dtype="int8")
    with pytest.raises(ConfigError, match="shard_size"):
        build_index(model, make_docs(2), tmp_path / "y", shard_size=0)


# ---------------------------------------------------------------------------------------------- resume
class Interrupted(Exception):
    pass


def interrupted_after(docs: list[dict], n: int):
    for i, doc in enumerate(docs):
        if i == n:
            raise Interrupted
        yield doc


def test_resume_after_interruption_encodes_only_missing_shards(model, tmp_path, monkeypatch):
    docs = make_docs(23)
    fresh = build_index(model, docs, tmp_path / "fresh", shard_size=5, batch_size=4, show_progress_bar=False)
    with pytest.raises(Interrupted):
        build_index(model, interrupted_after(docs, 12), tmp_path / "run", shard_size=5, batch_size=4)
    done = sorted(p.name for p in (tmp_path / "run").glob("shard-*.safetensors"))
    assert done == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert not (tmp_path / "run" / "manifest.json").exists()

    encoded: list[int] = []
    original = BioHiCL.encode

    def counting(self, texts, *args, **kwargs):
        if list(texts) != list(PROBE_TEXTS):  # the probe rows every build records
            encoded.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(BioHiCL, "encode", counting)
    resumed = build_index(model, docs, tmp_path / "run", shard_size=5, batch_size=4, show_progress_bar=False)
    assert encoded == [5, 5, 3]  # shards 2, 3, 4 only
    assert resumed.count == fresh.count and [s.ids_sha256 for s in resumed.shards] == [
        s.ids_sha256 for s in fresh.shards
    ]
    emb_fresh, docs_fresh = index_rows(tmp_path / "fresh")
    emb_run, docs_run = index_rows(tmp_path / "run")
    assert torch.equal(emb_fresh, emb_run) and docs_fresh == docs_run


def test_resume_refuses_changed_corpus_or_settings(model, tmp_path):
    docs = make_docs(10)
    with pytest.raises(Interrupted):
        build_index(model, interrupted_after(docs, 7), tmp_path / "run", shard_size=5)
    changed = [dict(d, _id=f"other{i}") for i, d in enumerate(docs)]
    with pytest.raises(DataError, match="shard 0 was built from other documents"):
        build_index(model, changed, tmp_path / "run", shard_size=5)
    with pytest.raises(ConfigError, match=r"dtype: 'float32' → 'float16'"):
        build_index(model, docs, tmp_path / "run", shard_size=5, dtype="float16")
    with pytest.raises(ConfigError, match="holds an index already"):
        build_index(model, docs, tmp_path / "run", shard_size=5, resume=False)


def test_refused_rerun_keeps_the_finished_index(model, tmp_path):
    """A rerun into a finished index with another corpus is refused and leaves that index searchable."""
    from biohicl.search.index import load_index

    docs = make_docs(10)
    build_index(model, docs, tmp_path / "run", shard_size=5, show_progress_bar=False)
    before = (tmp_path / "run" / "manifest.json").read_bytes()
    changed = [dict(d, _id=f"other{i}") for i, d in enumerate(docs)]
    with pytest.raises(DataError, match="since the earlier run") as caught:
        build_index(model, changed, tmp_path / "run", shard_size=5, show_progress_bar=False)
    assert "interrupted" not in str(caught.value)
    assert (tmp_path / "run" / "manifest.json").read_bytes() == before
    assert len(load_index(tmp_path / "run")) == 10


class OnnxInt8:
    """What build_index reads from an OnnxEncoder quantised to int8 (the backend and quantisation), over ``model``."""

    backend = "onnx"
    quantize = "int8"

    def __init__(self, model: BioHiCL):
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def test_resume_refuses_other_compute_dtype_or_backend_and_reads_older_settings(model, tmp_path):
    docs, run = make_docs(10), tmp_path / "run"
    with pytest.raises(Interrupted):
        build_index(model, interrupted_after(docs, 7), run, shard_size=5)
    with pytest.raises(ConfigError, match=r"compute_dtype: 'float32' → 'bfloat16'\)"):
        build_index(model, docs, run, shard_size=5, compute_dtype="bfloat16")
    with pytest.raises(ConfigError, match=r"\(backend: 'torch' → 'onnx', quantize: None → 'int8'\)"):
        build_index(OnnxInt8(model), docs, run, shard_size=5)
    settings = json.loads((run / "settings.json").read_text())
    older = {k: v for k, v in settings.items() if k not in ("compute_dtype", "backend", "quantize")}
    (run / "settings.json").write_text(json.dumps(older))  # as written before these were recorded: the defaults
    with pytest.raises(ConfigError, match=r"built with other settings \(compute_dtype: 'float32' → 'bfloat16'\)"):
        build_index(model, docs, run, shard_size=5, compute_dtype="bfloat16")
    manifest = build_index(model, docs, run, shard_size=5, show_progress_bar=False)
    assert (manifest.count, manifest.compute_dtype, manifest.backend, manifest.quantize) == (
        10,
        "float32",
        "torch",
        None,
    )
    values = json.loads((run / "manifest.json").read_text())
    older = {k: v for k, v in values.items() if k not in ("compute_dtype", "backend", "quantize")}
    loaded = IndexManifest.from_dict(older)
    assert (loaded.compute_dtype, loaded.backend, loaded.quantize) == (None, "torch", None)


def test_resume_reads_a_base_recorded_as_a_relative_folder(model, tiny_bert_dir, tmp_path, monkeypatch):
    # before session 28 a base given as a relative folder was recorded as typed ("tiny-bert"), now by its absolute
    # path: an index started then resumes over the same folder; another base is still refused
    docs, run = make_docs(10), tmp_path / "run"
    with pytest.raises(Interrupted):
        build_index(model, interrupted_after(docs, 7), run, shard_size=5)
    settings = json.loads((run / "settings.json").read_text())
    assert settings["base_model"] == str(Path(tiny_bert_dir).resolve())
    monkeypatch.chdir(Path(tiny_bert_dir).parent)
    (run / "settings.json").write_text(json.dumps({**settings, "base_model": "other-bert"}))
    with pytest.raises(ConfigError, match=r"\(base_model: 'other-bert' → '"):
        build_index(model, docs, run, shard_size=5)
    (run / "settings.json").write_text(json.dumps({**settings, "base_model": Path(tiny_bert_dir).name}))
    manifest = build_index(model, docs, run, shard_size=5, show_progress_bar=False)
    assert manifest.count == 10
    assert [d["id"] for d in index_rows(run)[1]] == [f"doc{i}" for i in range(10)]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from biohicl.search import indexing
    from biohicl.models.model import BioHiCL

    model_dir, out = sys.argv[1], sys.argv[2]
    docs = [(f"d{i}", "the cancer cells " * (1 + i % 3)) for i in range(14)]
    real_replace = os.replace

    def replace(src, dst):  # SIGKILL in the middle of writing shard 2: its temp file exists, the rename never happens
        if str(dst).endswith("shard-00002.safetensors"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    os.replace = replace  # the one os module: every rename in the process goes through it
    indexing.build_index(BioHiCL.from_base(model_dir), docs, out, shard_size=4, show_progress_bar=False)
    """
)


def test_sigkill_mid_shard_then_resume(model, tiny_bert_dir, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tiny_bert_dir), str(out)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert "shard-00001.safetensors" in names and "shard-00002.safetensors" not in names
    assert any(n.startswith(".shard-00002.safetensors.") and n.endswith(".tmp") for n in names)  # the torn write
    assert "manifest.json" not in names
    docs = [(f"d{i}", "the cancer cells " * (1 + i % 3)) for i in range(14)]
    resumed = build_index(model, docs, out, shard_size=4, show_progress_bar=False)
    assert resumed.count == 14 and [s.count for s in resumed.shards] == [4, 4, 4, 2]
    assert not any(p.name.startswith(".") for p in out.iterdir())
    mode = 0o666 & ~__import__("biohicl.atomic").atomic._UMASK
    assert all(p.stat().st_mode & 0o777 == mode for p in out.iterdir())  # shards readable as any file written here
    emb, sidecar = index_rows(out)
    expected = model.encode([t for _, t in docs], convert_to="torch")
    np.testing.assert_allclose(emb.numpy(), expected.numpy(), atol=1e-5)
    assert [r["id"] for r in sidecar] == [d for d, _ in docs]


def test_a_bad_compute_dtype_is_named_as_such_from_python(model, tmp_path):
    """build_index and encode_file (the library behind `biohicl index` / `encode`) name compute_dtype, not dtype."""
    from biohicl.search.embeddings_file import encode_file

    (tmp_path / "t.txt").write_text("a\nb\n", encoding="utf-8")
    docs = [{"_id": "d1", "text": "a"}]
    with pytest.raises(ConfigError, match=r"^compute_dtype: 'bogus' is not one of float32, float16, bfloat16$"):
        build_index(model, docs, tmp_path / "idx", compute_dtype="bogus", show_progress_bar=False)
    with pytest.raises(ConfigError, match=r"^compute_dtype: 'bogus' is not one of float32, float16, bfloat16$"):
        encode_file(model, tmp_path / "t.txt", tmp_path / "e.safetensors", compute_dtype="bogus")
