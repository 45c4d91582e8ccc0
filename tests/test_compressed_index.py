"""Compressed indexes (int8 / binary + exact rescoring from memory-mapped float32 shards)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import sign_rows_and_queries

from biohicl.data.corpus import Document
from biohicl.errors import ConfigError, DataError
from biohicl.search.compressed import CompressedIndex
from biohicl.search.compression import Calibration, available_kinds, compress_index, compressed_info_name
from biohicl.search.exact import search_embeddings, search_index
from biohicl.search.float_rows import FloatRows, mmap_shard
from biohicl.search.index import Index
from biohicl.search.indexing import compression_kinds
from biohicl.search.layout import IndexManifest, ShardInfo, write_shard


def write_index(directory, embeddings: torch.Tensor, shard_size: int, dtype=torch.float32) -> IndexManifest:
    """An index folder over given rows (no model): shards of ``shard_size`` rows + manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    shards, start = [], 0
    for number, first in enumerate(range(0, len(embeddings), shard_size)):
        rows = embeddings[first : first + shard_size]
        docs = [Document(f"d{first + i}", "text", f"title {first + i}") for i in range(len(rows))]
        info = write_shard(directory, number, rows.to(dtype), docs)
        info.start = start
        start += info.count
        shards.append(info)
    dtype_name = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
    manifest = IndexManifest(
        model="test", model_revision=None, dtype=dtype_name, dim=embeddings.shape[1], count=start, shards=shards
    )
    manifest.save(directory)
    return manifest


def clustered(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Unit rows around 20 centres with a shared offset (like real embeddings: not centred, not isotropic)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(20, dim, generator=g)
    rows = centres[torch.randint(0, 20, (n,), generator=g)] + 0.6 * torch.randn(n, dim, generator=g) + 0.8
    return torch.nn.functional.normalize(rows, dim=-1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("compressed") / "index"
    rows = clustered(1500, 128)
    write_index(directory, rows, shard_size=400)
    for kind in ("int8", "binary"):
        compress_index(directory, kind, calibration_rows=1000)
    return directory, rows


def test_mmap_shard_reads_what_safetensors_wrote(corpus):
    directory, rows = corpus
    manifest = IndexManifest.load(directory)
    mapped = mmap_shard(directory / manifest.shards[1].file)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(np.asarray(mapped), rows[400:800].numpy())
    positions = np.array([1499, 3, 401, 0, 800, 3])
    np.testing.assert_array_equal(FloatRows(manifest, directory).take(positions), rows[positions].numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mmap_half_precision_shards(tmp_path, dtype):
    rows = clustered(50, 16)
    write_index(tmp_path, rows, shard_size=50, dtype=dtype)
    manifest = IndexManifest.load(tmp_path)
    taken = FloatRows(manifest, tmp_path).take(np.arange(50))
    np.testing.assert_array_equal(taken, rows.to(dtype).float().numpy())


def test_calibration_round_trip_error_is_within_half_a_step():
    rows = clustered(400, 32).numpy()
    calibration = Calibration.fit(rows, "int8")
    codes = calibration.encode(rows)
    assert codes.dtype == np.int8 and codes.shape == rows.shape
    inside = (rows >= np.array(calibration.offset) - 127 * np.array(calibration.scale)) & (
        rows <= np.array(calibration.offset) + 127 * np.array(calibration.scale)
    )
    error = np.abs(calibration.decode(codes) - rows)
    assert (error[inside] <= np.broadcast_to(np.array(calibration.scale) / 2 + 1e-6, rows.shape)[inside]).all()
    binary = Calibration.fit(rows, "binary")
    bits = binary.encode(rows)
    assert bits.dtype == np.uint8 and bits.shape == (400, 4)
    np.testing.assert_array_equal(binary.decode(bits) > 0, rows > np.array(binary.mean))


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_search_equals_exact_search_when_all_rows_are_rescored(corpus, kind):
    directory, rows = corpus
    queries = clustered(12, 128, seed=1)
    index = Index.load(directory)
    exact_scores, exact_rows = search_embeddings(queries, index, top_k=10)
    compressed = CompressedIndex.load(directory, kind, verify=True)
    scores, found = compressed.search_embeddings(queries, top_k=10, candidates=len(rows))
    assert torch.equal(found, exact_rows)
    torch.testing.assert_close(scores, exact_scores, rtol=0, atol=1e-6)


def test_rescoring_keeps_row_order_among_duplicate_abstracts(tmp_path):
    # exact cosines (multiples of 1/16): the copies of one abstract tie in every block of rows and every backend
    base, queries = sign_rows_and_queries(seed=0)
    write_index(tmp_path, base[torch.tensor([0, 1, 2] * 40)], shard_size=50)  # rows 0, 3, 6, ... are one abstract
    compress_index(tmp_path, "int8", calibration_rows=120)
    scores, rows = search_index(queries, tmp_path, top_k=5, backend="int8", candidates=120)
    assert rows[0].tolist() == [0, 3, 6, 9, 12]
    full = torch.nn.functional.normalize(queries, dim=-1) @ Index.load(tmp_path).embeddings().T  # one block
    expected_scores, expected_rows = full.sort(dim=1, descending=True, stable=True)
    assert torch.equal(rows, expected_rows[:, :5]) and torch.equal(scores, expected_scores[:, :5])
    assert torch.equal(rows, search_index(queries, tmp_path, top_k=5, backend="exact")[1])


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_unrescored_search_of_every_row_in_several_blocks_is_the_approximate_top_k(corpus, kind):
    directory, rows = corpus
    queries = clustered(12, 128, seed=3)
    compressed = CompressedIndex.load(directory, kind)
    every, every_rows = compressed.approximate_top(queries, len(rows), block_rows=len(rows))  # one block: sorted
    approx = torch.empty_like(every).scatter_(1, every_rows, every)  # each row's approximate score
    scores, found = compressed.search_embeddings(queries, top_k=10, candidates=len(rows), rescore=False, block_rows=100)
    torch.testing.assert_close(scores, every[:, :10], rtol=0, atol=1e-6)  # the best 10, in order (not block order)
    torch.testing.assert_close(approx.gather(1, found), scores, rtol=0, atol=1e-6)


# isotropic synthetic noise is the hard case for 128 bits (real MiniLM rows: docs/benchmarks.md)
@pytest.mark.parametrize(("kind", "minimum"), [("int8", 0.99), ("binary", 0.7)])
def test_default_candidates_recover_the_exact_top_10(corpus, kind, minimum):
    directory, _ = corpus
    queries = clustered(50, 128, seed=2)
    _, exact_rows = search_embeddings(queries, Index.load(directory), top_k=10)
    scores, found = search_index(queries, directory, top_k=10, backend=kind)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact_rows.tolist(), strict=True)])
    assert recall >= minimum
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_auto_backend_prefers_int8_and_memory_is_the_compressed_matrix(corpus):
    directory, rows = corpus
    assert available_kinds(directory) == ["int8", "binary"]
    from biohicl.search.exact import resolve_backend

    assert resolve_backend(Index.load(directory), "auto") == "int8"
    assert resolve_backend(Index.from_embeddings(rows[:5]), "auto") == "exact"
    int8 = CompressedIndex.load(directory, "int8")
    binary = CompressedIndex.load(directory, "binary")
    assert int8.nbytes * 4 == rows.numel() * 4 and binary.nbytes * 32 == rows.numel() * 4
    with pytest.raises(ConfigError, match="backend"):
        search_index(rows[:1], directory, backend="pq")


def test_compressed_files_round_trip(corpus):
    directory, _ = corpus
    info = json.loads((directory / compressed_info_name("int8")).read_text())
    loaded = CompressedIndex.load(directory, "int8")
    manifest = IndexManifest.load(directory)
    calibration = Calibration(**info["calibration"])
    expected = np.concatenate([calibration.encode(mmap_shard(directory / s.file)) for s in manifest.shards])
    np.testing.assert_array_equal(loaded.codes.numpy(), expected)
    assert [s["count"] for s in info["shards"]] == [400, 400, 400, 300]


def test_corrupt_or_stale_compressed_files_name_the_file(tmp_path):
    rows = clustered(100, 16)
    write_index(tmp_path, rows, shard_size=60)
    compress_index(tmp_path, "int8")
    shard = tmp_path / "shard-00001.int8.npy"
    original = shard.read_bytes()
    shard.write_bytes(original[:100])
    with pytest.raises(DataError, match=r"shard-00001\.int8\.npy"):
        CompressedIndex.load(tmp_path, "int8")
    shard.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    CompressedIndex.load(tmp_path, "int8")  # same shape: only the checksum sees it
    with pytest.raises(DataError, match="sha256"):
        CompressedIndex.load(tmp_path, "int8", verify=True)
    (tmp_path / compressed_info_name("int8")).write_text("{not json")
    with pytest.raises(DataError, match=r"compressed-int8\.json"):
        CompressedIndex.load(tmp_path, "int8")
    with pytest.raises(DataError, match="compress binary"):
        CompressedIndex.load(tmp_path, "binary")


def test_a_stale_or_missing_compressed_form_names_an_index_command_that_rebuilds_it(tiny_bert_dir, tmp_path, capsys):
    """The error used to suggest `biohicl index --compress int8`, which cannot run without the corpus, model and
    folder, nor, on an index built with --shard_size or --dtype, without those: the suggested command is run here."""
    from biohicl.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"cells {i}"}) + "\n" for i in range(30)))
    out = tmp_path / "idx"
    built = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--no_progress"]
    assert main([*built, "--shard_size", "20", "--dtype", "float16", "--compress", "int8", "--device", "cpu"]) == 0
    info = out / compressed_info_name("int8")
    info.write_text(json.dumps({**json.loads(info.read_text()), "count": 20}))  # stale: describes 20 of 30 rows
    with pytest.raises(DataError, match="rebuild it: ") as stale:
        CompressedIndex.load(out, "int8")
    command = str(stale.value).split("rebuild it: `")[1].split("`")[0]
    assert "--shard_size 20" in command and "--dtype float16" in command
    spaced = tmp_path / "my index"
    shutil.copytree(out, spaced)
    with pytest.raises(DataError, match=re.escape(f"--output '{spaced}' --shard_size 20")):  # quoted for a shell
        CompressedIndex.load(spaced, "int8")
    info.unlink()
    assert main([*built, "--compress", "int8", "--device", "cpu"]) == 2  # the settings it was built with, named
    assert "rerun with --dtype float16 --shard_size 20, or use a new output folder" in capsys.readouterr().err
    assert main([*command.replace("CORPUS", str(corpus)).split()[1:], "--no_progress"]) == 0
    assert len(CompressedIndex.load(out, "int8")) == 30
    with pytest.raises(DataError, match=re.escape(command.replace("int8", "binary"))):
        CompressedIndex.load(out, "binary")


def test_compression_kinds_parsing():
    assert compression_kinds(None) == [] and compression_kinds("int8,binary,int8") == ["int8", "binary"]
    with pytest.raises(ConfigError, match="compress"):
        compression_kinds("pq")


def test_unnormalized_index_is_normalized_before_compression(tmp_path):
    rows = clustered(200, 16) * torch.linspace(0.5, 3, 200)[:, None]
    manifest = write_index(tmp_path, rows, shard_size=200)
    manifest.normalized = False
    manifest.save(tmp_path)
    compress_index(tmp_path, "int8")
    queries = clustered(5, 16, seed=3)
    exact_scores, exact_rows = search_embeddings(queries, Index.load(tmp_path), top_k=5)
    scores, found = CompressedIndex.load(tmp_path).search_embeddings(queries, top_k=5, candidates=200)
    assert torch.equal(found, exact_rows)
    torch.testing.assert_close(scores, exact_scores, rtol=0, atol=1e-5)


def test_index_command_compresses_and_search_uses_it(tiny_bert_dir, tmp_path, capsys):
    from biohicl.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": f"t{i}", "text": "cancer cells " * (i % 5 + 1)}) + "\n"
            for i in range(40)
        )
    )
    out = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                str(corpus),
                "--model",
                str(tiny_bert_dir),
                "--output",
                str(out),
                "--shard_size",
                "16",
                "--compress",
                "int8,binary",
                "--no_progress",
            ]
        )
        == 0
    )
    assert "compressed: int8,binary" in capsys.readouterr().out
    assert available_kinds(out) == ["int8", "binary"]
    for backend in ("auto", "binary", "exact"):
        assert main(["search", str(out), "cancer cells", "--top_k", "3", "--json", "--backend", backend]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    by_backend = [lines[i : i + 3] for i in (0, 3, 6)]
    assert [h["id"] for h in by_backend[0]] == [h["id"] for h in by_backend[2]]
    assert [round(h["score"], 5) for h in by_backend[0]] == [round(h["score"], 5) for h in by_backend[2]]


def test_shard_info_is_unchanged_by_compression(corpus):
    directory, _ = corpus
    manifest = IndexManifest.load(directory)
    assert all(isinstance(s, ShardInfo) for s in manifest.shards) and manifest.count == 1500
