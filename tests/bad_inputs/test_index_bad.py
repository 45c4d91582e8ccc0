"""A garbled index folder: docs sidecars, manifest.json, compressed-<kind>.json and settings.json that are not what
biohicl wrote. Each is a one-line DataError naming the file (and line), never a raw KeyError or TypeError."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from biohicl.data.corpus import Document
from biohicl.errors import DataError
from biohicl.search.compression import compress_index
from biohicl.search.exact import hits_from, search_embeddings, search_index, search_like
from biohicl.search.index import Index
from biohicl.search.layout import IndexManifest, write_shard

ROWS, SHARD = 10, 4


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """An index of 10 rows in shards of 4, 4, 2, with its int8 form."""
    directory = tmp_path_factory.mktemp("garbled") / "index"
    directory.mkdir()
    rows = torch.nn.functional.normalize(torch.randn(ROWS, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    shards = []
    for number, first in enumerate(range(0, ROWS, SHARD)):
        docs = [Document(f"d{i}", "text", f"title {i}") for i in range(first, min(first + SHARD, ROWS))]
        shards.append(write_shard(directory, number, rows[first : first + SHARD], docs))
        shards[-1].start = first
    IndexManifest(model="test", model_revision=None, dtype="float32", dim=8, count=ROWS, shards=shards).save(directory)
    compress_index(directory, "int8", calibration_rows=ROWS)
    return directory


@pytest.fixture
def index(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path / "index")
    return tmp_path / "index"


def every_hit(directory: Path) -> list:
    loaded = Index.load(directory)
    scores, rows = search_embeddings(loaded.rows([0]), loaded, top_k=ROWS)
    return hits_from(loaded, scores, rows)


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


def test_a_docs_sidecar_shorter_than_its_shard(index):
    sidecar = index / "shard-00001.docs.jsonl"
    sidecar.write_text("".join(sidecar.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(DataError, match=r"shard-00001\.docs\.jsonl: has 2 lines, the manifest lists 4 documents"):
        every_hit(index)


@pytest.mark.parametrize("line", ["[1, 2]", '{"title": "no id"}', '"d5"'])
def test_a_docs_line_that_is_not_an_object_with_an_id(index, line):
    sidecar = index / "shard-00001.docs.jsonl"
    lines = sidecar.read_text().splitlines()
    lines[1] = line
    sidecar.write_text("\n".join(lines) + "\n")
    message = r"shard-00001\.docs\.jsonl: line 2: not a JSON object with an `id`"
    with pytest.raises(DataError, match=message):
        every_hit(index)
    with pytest.raises(DataError, match=message):
        search_like(index, ["d9"])  # the id lookup reads every line


def test_a_docs_line_that_is_not_json_names_its_line_and_column(index):
    sidecar = index / "shard-00001.docs.jsonl"
    lines = sidecar.read_text().splitlines()
    lines[2] = '{"id": "d6", "title": "a\tb"}'
    sidecar.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as raised:
        every_hit(index)
    assert str(raised.value) == f"{sidecar}: line 3: not valid JSON (Invalid control character at column 25)"


def test_a_docs_sidecar_that_is_not_utf8(index):
    (index / "shard-00000.docs.jsonl").write_bytes(b'{"id": "d0"}\n{"id": "\xff"}\n' * 2)
    message = r"shard-00000\.docs\.jsonl: line 2: cannot decode the line: byte 0xff is not UTF-8"
    with pytest.raises(DataError, match=message):
        every_hit(index)
    with pytest.raises(DataError, match=message):
        search_like(index, ["d9"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["shards"][0].pop("count"), r"shards\[0\]: missing field\(s\) count"),
        (lambda v: v["shards"][1].update(extra=1), r"shards\[1\]: unknown field\(s\) extra"),
        (lambda v: v["shards"][2].update(start="8"), r"shards\[2\]\.start: expected a non-negative integer, got '8'"),
        (lambda v: v["shards"][0].update(file=None), r"shards\[0\]\.file: expected a string, got None"),
        (lambda v: v.update(shards=[7]), r"shards\[0\]: not a JSON object"),
        (lambda v: v.update(shards={}), r"shards: expected a list"),
        (lambda v: v.update(dim="8"), r"dim: expected a non-negative integer, got '8'"),
        (lambda v: v.update(count=None), r"count: expected a non-negative integer, got None"),
    ],
)
def test_a_manifest_field_of_the_wrong_shape(index, change, message):
    edit_json(index / "manifest.json", change)
    with pytest.raises(DataError, match=r"manifest\.json: " + message):
        Index.load(index)


def test_a_manifest_that_is_not_an_object(index):
    (index / "manifest.json").write_text("[1]")
    with pytest.raises(DataError, match=r"manifest\.json: not a JSON object \(a list\)"):
        Index.load(index)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(calibration={"kind": "int8"}), r"calibration: missing field\(s\) dim, mean, offset"),
        (lambda v: v["calibration"].update(scale=[1.0]), r"calibration\.scale: expected a list of 8 numbers"),
        (lambda v: v.update(calibration=None), "calibration: not a JSON object"),
        (lambda v: v["shards"][0].pop("file"), r"shards\[0\]: not a JSON object with a `file`"),
        (lambda v: v.update(shards=["a"]), r"shards\[0\]: not a JSON object with a `file`"),
    ],
)
def test_a_compressed_record_of_the_wrong_shape(index, change, message):
    edit_json(index / "compressed-int8.json", change)
    with pytest.raises(DataError, match=r"compressed-int8\.json: " + message):
        search_index(torch.ones(1, 8), index, top_k=3, backend="int8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{bad", "line 1: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        ("[]", "not a JSON object (a list)"),
    ],
)
def test_index_resume_with_a_garbled_settings_file(tmp_path, run_cli, tiny_bert_dir, text, message):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": "the cells"}) + "\n" for i in range(3)))
    out = tmp_path / "index"
    out.mkdir()
    (out / "settings.json").write_text(text)
    result = run_cli(["index", "--model", str(tiny_bert_dir), "--output", str(out), "--progress", "false", str(corpus)])
    assert f"settings.json: {message}" in result.err


def test_search_like_cli_on_a_garbled_sidecar(index, run_cli):
    (index / "shard-00002.docs.jsonl").write_text('{"id": "d8"}\n[]\n')
    result = run_cli(["search", str(index), "--like", "d0"])
    assert "shard-00002.docs.jsonl: line 2: not a JSON object with an `id`" in result.err


def test_search_like_before_the_index_folder_takes_one_id_per_use(index, run_cli):
    """``--like ID INDEX``: the option takes one id (repeatable), so it no longer swallows the index folder."""
    result = run_cli(["search", "--like", "d0", str(index), "--like", "d5", "--top_k", "3"], expect_error=False)
    assert result.code == 0, result.err
    likes = [line for line in result.out.splitlines() if line.startswith("like: ")]
    assert [line.split()[1] for line in likes] == ["d0", "d5"]


def test_a_corpus_with_a_duplicate_document_id(tmp_path, tiny_bert_dir):
    """Refused where the id repeats, across shards too (else `IndexDocuments.lookup` fails on a count mismatch)."""
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": i, "text": f"text {n}"}) + "\n" for n, i in enumerate("abca")))
    model = BioHiCL.from_base(str(tiny_bert_dir))
    with pytest.raises(DataError, match=rf"^{corpus}: line 4: duplicate document id 'a' \(first at line 1\)$"):
        build_index(model, corpus, tmp_path / "index", shard_size=2, show_progress_bar=False)
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_index_a_missing_corpus_fails_before_the_model_loads(tmp_path, run_cli, tiny_bert_dir, monkeypatch):
    import biohicl.models.onnx_backend as onnx_backend

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before the corpus was checked")

    monkeypatch.setattr(onnx_backend, "load_inference_model", no_model)
    out = tmp_path / "idx"
    result = run_cli(["index", "--model", str(tiny_bert_dir), "--output", str(out), str(tmp_path / "nope.jsonl")])
    assert "corpus not found" in result.err and "nope.jsonl" in result.err
    assert not out.exists()


def test_a_failed_first_index_run_does_not_block_the_corrected_rerun(tmp_path, run_cli, tiny_bert_dir):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('["not an object"]\n{"_id": "d1", "text": "b"}\n')
    out = tmp_path / "idx"
    argv = ["index", "--model", str(tiny_bert_dir), "--output", str(out), "--progress", "false", str(corpus)]
    result = run_cli(argv)
    assert "expected a JSON object per line" in result.err
    assert not out.exists()  # nor a settings.json that would refuse the rerun's settings
    existing = tmp_path / "existing"
    existing.mkdir()
    run_cli([*argv[:4], str(existing), *argv[5:]])
    assert list(existing.iterdir()) == []  # a folder the user made stays, emptied of what the run wrote
    corpus.write_text('{"_id": "d0", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    result = run_cli([*argv[:-3], "--dtype", "float16", *argv[-3:]], expect_error=False)
    assert result.code == 0 and "indexed 2 documents" in result.out, result.err


def test_index_with_no_calibration_rows_fails_before_encoding(tmp_path, run_cli, tiny_bert_dir, monkeypatch):
    import biohicl.models.onnx_backend as onnx_backend
    from biohicl.errors import ConfigError
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d0", "text": "a"}\n')
    model = BioHiCL.from_base(str(tiny_bert_dir))
    encoded = []
    monkeypatch.setattr(model, "encode", lambda *a, **k: encoded.append(1))
    with pytest.raises(ConfigError, match="calibration_rows: must be positive, got 0"):
        build_index(model, corpus, tmp_path / "api", compress="int8", calibration_rows=0)
    assert not encoded and not (tmp_path / "api").exists()

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before --calibration_rows was checked")

    monkeypatch.setattr(onnx_backend, "load_inference_model", no_model)
    argv = ["index", "--model", str(tiny_bert_dir), "--output", str(tmp_path / "idx"), "--compress", "int8"]
    result = run_cli([*argv, "--calibration_rows", "0", str(corpus)])
    assert "calibration_rows: must be positive, got 0" in result.err and not (tmp_path / "idx").exists()


@pytest.mark.parametrize(("queries", "number"), [([""], 1), (["heart", "   "], 2), (["heart", "\t\n", ""], 2)])
def test_a_blank_query_is_refused_naming_it(index, run_cli, tiny_bert_dir, monkeypatch, queries, number):
    import biohicl.models.onnx_backend as onnx_backend
    from biohicl.errors import ConfigError
    from biohicl.search.exact import search

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before the queries were checked")

    with pytest.raises(ConfigError, match=rf"^query {number}: is blank; give it text$"):
        search(None, queries, index)
    monkeypatch.setattr(onnx_backend, "load_inference_model", no_model)
    result = run_cli(["search", str(index), *queries, "--model", str(tiny_bert_dir)])
    assert f"query {number}: is blank" in result.err
