"""Search mends (session 32): the compressed codes of a float16/bfloat16 index are those of its rows renormalised in
float32 (as exact search scores them; a form built before says so when it loads), and a one-shot stream of two
corpus files names a repeated id's first copy by its own file and line (tiny random BERT, CPU, for the stream)."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from test_compressed_index import clustered, write_index

from biohicl.data.corpus import Document, iter_documents
from biohicl.errors import DataError
from biohicl.models.model import BioHiCL
from biohicl.search.compressed import CompressedIndex
from biohicl.search.compression import COMPRESSED_VERSION, Calibration, compress_index, compressed_info_name
from biohicl.search.exact import search_embeddings
from biohicl.search.index import Index
from biohicl.search.indexing import _shards, build_index
from biohicl.search.layout import IndexManifest
from biohicl.search.seen_ids import SeenIds


# ---------------------------------------------------------------------------------------------- compressed codes
def recall(queries: torch.Tensor, exact_rows: torch.Tensor, compressed: CompressedIndex, pool: int) -> float:
    """Mean share of each query's exact top-k that the compressed first stage's ``pool`` candidates hold."""
    _, candidates = compressed.approximate_top(queries, pool)
    found = [len(set(e.tolist()) & set(c.tolist())) for e, c in zip(exact_rows, candidates, strict=True)]
    return sum(found) / exact_rows.numel()


@pytest.mark.parametrize("kind", ["int8", "binary"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_codes_of_a_half_precision_index_are_those_of_its_rows_renormalised(tmp_path, kind, dtype):
    """Rows off unit length (norms 0.6 to 1.6, as a half cast of unnormalised rows leaves them) in an index that
    says it is normalised: its codes were built from the rows as stored, so they chose candidates by length."""
    g = torch.Generator().manual_seed(1)
    rows = clustered(1200, 64) * (0.6 + torch.rand(1200, 1, generator=g))
    write_index(tmp_path, rows, shard_size=500, dtype=dtype)
    info = compress_index(tmp_path, kind, calibration_rows=1200)  # every row in the sample

    stored = rows.to(dtype).float()
    unit = torch.nn.functional.normalize(stored, dim=-1).numpy()  # as exact search scores them
    calibration = Calibration.fit(unit, kind)
    assert info["calibration"] == asdict(calibration)
    codes = np.concatenate([np.load(tmp_path / shard["file"]) for shard in info["shards"]])
    np.testing.assert_array_equal(codes, calibration.encode(unit))

    queries = clustered(60, 64, seed=7)
    _, exact_rows = search_embeddings(queries, Index.load(tmp_path), top_k=10)
    compressed = CompressedIndex.load(tmp_path, kind)
    as_stored = Calibration.fit(stored.numpy(), kind)  # the codes of the rows as stored, as they were built before
    before = CompressedIndex(
        tmp_path,
        compressed.manifest,
        {**info, "calibration": asdict(as_stored)},
        torch.from_numpy(as_stored.encode(stored.numpy())),
    )
    pool = 40 if kind == "int8" else 100
    assert recall(queries, exact_rows, compressed, pool) > recall(queries, exact_rows, before, pool)


def set_version(directory: Path, kind: str, version: object) -> None:
    """Write ``version`` into the ``kind`` form's info record, as a form built by another biohicl has it."""
    path = directory / compressed_info_name(kind)
    info = json.loads(path.read_text())
    info["format_version"] = version
    path.write_text(json.dumps(info) + "\n")


def load_warnings(caplog, directory: Path, kind: str) -> tuple[CompressedIndex, list[str]]:
    """``CompressedIndex.load`` of the ``kind`` form, and the warnings it logged."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.search.compressed"):
        compressed = CompressedIndex.load(directory, kind)
    return compressed, [r.getMessage() for r in caplog.records if r.name == "biohicl.search.compressed"]


@pytest.mark.parametrize("kind", ["int8", "binary"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_form_built_before_the_renormalised_codes_loads_searches_and_warns_once(tmp_path, caplog, kind, dtype):
    """A version-1 form of a float16/bfloat16 index chose its candidates from the rows as stored: it still loads and
    searches (every query's hits are the exact ones here), with one warning naming the option that rebuilds it."""
    rows = clustered(600, 64)
    write_index(tmp_path, rows, shard_size=250, dtype=dtype)
    info = compress_index(tmp_path, kind, calibration_rows=600)
    assert info["format_version"] == COMPRESSED_VERSION == 2
    _, warned = load_warnings(caplog, tmp_path, kind)
    assert warned == []  # a form built from renormalised rows

    set_version(tmp_path, kind, 1)
    compressed, warned = load_warnings(caplog, tmp_path, kind)
    assert len(warned) == 1
    assert f"compressed-{kind}.json: its candidates were chosen from the index's rows not renormalised" in warned[0]
    assert f"--compress {kind}`" in warned[0] and "biohicl index CORPUS --model test" in warned[0]
    queries = clustered(20, 64, seed=7)
    _, exact_rows = search_embeddings(queries, Index.load(tmp_path), top_k=5)
    with caplog.at_level(logging.WARNING, logger="biohicl.search.compressed"):
        for _ in range(2):
            _, found = compressed.search_embeddings(queries, top_k=5, candidates=600)
            assert torch.equal(found, exact_rows)
    assert len([r for r in caplog.records if r.name == "biohicl.search.compressed"]) == 1  # at load only


@pytest.mark.parametrize("version", [1, 0, None])  # None: no format_version field at all
@pytest.mark.parametrize("dtype", [torch.float32, "unnormalised float16"])
def test_an_older_form_whose_codes_are_unchanged_does_not_warn(tmp_path, caplog, dtype, version):
    """Renormalising leaves a float32 normalised index's rows as they are, and an unnormalised index's rows were
    renormalised before too: their older forms hold the codes a rebuild would write."""
    write_index(tmp_path, clustered(300, 32), shard_size=100, dtype=torch.float16 if dtype != torch.float32 else dtype)
    if dtype != torch.float32:
        manifest = IndexManifest.load(tmp_path)
        manifest.normalized = False
        manifest.save(tmp_path)
    compress_index(tmp_path, "int8", calibration_rows=300)
    if version is None:
        info = json.loads((tmp_path / "compressed-int8.json").read_text())
        del info["format_version"]
        (tmp_path / "compressed-int8.json").write_text(json.dumps(info))
    else:
        set_version(tmp_path, "int8", version)
    compressed, warned = load_warnings(caplog, tmp_path, "int8")
    assert warned == [] and len(compressed) == 300


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        (3, "format version 3 is newer than this biohicl"),
        ("2", "format_version: expected a non-negative integer, got '2'"),
        ("x", "format_version: expected a non-negative integer, got 'x'"),
        (None, "format_version: expected a non-negative integer, got None"),
        (1.5, "format_version: expected a non-negative integer, got 1.5"),
        (True, "format_version: expected a non-negative integer, got True"),
        (-1, "format_version: expected a non-negative integer, got -1"),
    ],
)
def test_an_unknown_or_newer_form_version_is_refused_in_one_line(tmp_path, version, problem):
    write_index(tmp_path, clustered(100, 16), shard_size=100)
    compress_index(tmp_path, "int8", calibration_rows=100)
    set_version(tmp_path, "int8", version)
    with pytest.raises(DataError) as caught:
        CompressedIndex.load(tmp_path, "int8")
    assert str(caught.value) == f"{tmp_path / 'compressed-int8.json'}: {problem}"


# ---------------------------------------------------------------------------------------------- repeated ids
@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def write_jsonl(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"_id": doc_id, "text": f"text of {doc_id}"}) + "\n" for doc_id in ids))
    return path


@pytest.mark.parametrize("shard_size", [2, 50])  # the first copy in an earlier shard, in the same shard
def test_a_one_shot_stream_of_two_files_names_the_first_copys_own_file_and_line(model, tmp_path, shard_size):
    first = write_jsonl(tmp_path / "a.jsonl", ["a1", "a2", "P", "a4"])
    second = write_jsonl(tmp_path / "b.jsonl", ["b1", "b2", "b3", "b4", "P"])
    stream = itertools.chain(iter_documents(first), iter_documents(second))  # one-shot: the ids themselves are kept
    with pytest.raises(DataError) as caught:
        build_index(model, stream, tmp_path / "idx", shard_size=shard_size, show_progress_bar=False)
    assert str(caught.value) == f"{second}: line 5: duplicate document id 'P' (first at {first}: line 3)"


def test_a_one_shot_stream_keeps_one_entry_per_file_not_a_name_per_id(tmp_path):
    """The first copy's place is its record and a small index into the files seen; a repeat within one file, or
    of an in-memory document among in-memory documents, is still named by its line or record alone."""
    first = write_jsonl(tmp_path / "a.jsonl", [f"a{i}" for i in range(300)])
    second = write_jsonl(tmp_path / "b.jsonl", [f"b{i}" for i in range(300)])
    seen = SeenIds()
    stream = itertools.chain(iter_documents(first), iter_documents(second))
    assert sum(len(c) for c in _shards(stream, 64, None, seen)) == 600
    assert seen.exact is not None and len(seen.exact) == 600
    assert all(type(code) is int for code in seen.exact.values())
    assert [source for source, _ in seen.places] == [str(first), str(second)]

    repeat = write_jsonl(tmp_path / "c.jsonl", ["c0", "c1", "c2", "c0"])
    with pytest.raises(DataError, match=r"c\.jsonl: line 4: duplicate document id 'c0' \(first at line 1\)$"):
        list(_shards(iter_documents(repeat), 2, None, SeenIds()))
    docs = [Document("m", "x"), Document("n", "x")]
    stream = itertools.chain(iter_documents(docs), iter_documents(write_jsonl(tmp_path / "d.jsonl", ["d", "m"])))
    with pytest.raises(DataError) as caught:
        list(_shards(stream, 2, None, SeenIds()))
    assert str(caught.value) == (
        f"{tmp_path / 'd.jsonl'}: line 2: duplicate document id 'm' (first at record 1 of the in-memory documents)"
    )
    stream = iter_documents([Document("m", "x"), Document("n", "x"), Document("m", "y")])  # both in memory
    with pytest.raises(DataError) as caught:
        list(_shards(stream, 2, None, SeenIds()))
    assert str(caught.value) == "record 3: duplicate document id 'm' (first at record 1)"
    stream = itertools.chain(  # a file, then in memory: the repeat is named as one of the in-memory documents
        iter_documents(write_jsonl(tmp_path / "f.jsonl", ["m"])),
        iter_documents([Document("n", "x"), Document("m", "y")]),
    )
    with pytest.raises(DataError) as caught:
        list(_shards(stream, 2, None, SeenIds()))
    assert str(caught.value) == (
        f"record 2 of the in-memory documents: duplicate document id 'm' (first at {tmp_path / 'f.jsonl'}: line 1)"
    )
