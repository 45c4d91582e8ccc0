"""A large batch of queries is searched a fixed number of queries at a time: memory is bounded by that batch, not
by the number of queries (5,000 queries over a 50K-row shard grew the exact search's RSS by ~1 GB; the compressed
rescoring scored every query against every query's candidates, quadratic in the queries), and the results are those
of one call (bit for bit where every score is exact in float32; else up to the last bit of a score, as between
chunk sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import write_index

import biohicl.search.compressed as compressed_module
import biohicl.search.exact as exact_module
from biohicl.errors import ConfigError
from biohicl.search.compressed import CompressedIndex
from biohicl.search.compression import compress_index
from biohicl.search.exact import search_embeddings
from biohicl.search.float_rows import FloatRows

N, DIM, QUERIES = 900, 16, 600


def signs(n: int, seed: int) -> torch.Tensor:
    """Unit rows of ``DIM`` = 16 components ±1/4: every cosine between two is a multiple of 1/16, exact in float32
    whatever a matrix product's blocking, so the scores cannot depend on how many queries are scored at once (and
    the many equal ones test the ties)."""
    return torch.randint(0, 2, (n, DIM), generator=torch.Generator().manual_seed(seed)) * 0.5 - 0.25


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("batches") / "index"
    write_index(directory, signs(N, seed=0), shard_size=400)
    compress_index(directory, "int8", calibration_rows=N)
    return directory


@pytest.fixture(scope="module")
def float_index_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("batches-float") / "index"
    rows = torch.randn(N, 24, generator=torch.Generator().manual_seed(0))
    write_index(directory, torch.nn.functional.normalize(rows, dim=-1), shard_size=400)
    compress_index(directory, "int8", calibration_rows=N)
    return directory


def queries() -> torch.Tensor:
    return signs(QUERIES, seed=1)


def float_queries() -> torch.Tensor:
    return torch.randn(QUERIES, 24, generator=torch.Generator().manual_seed(1))


def test_exact_search_scores_at_most_query_batch_queries_at_once(index_dir, monkeypatch):
    seen = []
    merge = exact_module.merge_top_k

    def spy(best_scores, best_rows, scores, *args, **kwargs):
        seen.append(scores.shape[0])
        return merge(best_scores, best_rows, scores, *args, **kwargs)

    monkeypatch.setattr(exact_module, "merge_top_k", spy)
    scores, rows = search_embeddings(queries(), index_dir, top_k=10, chunk_size=128, query_batch=256)
    assert max(seen) == 256 and sum(seen) == QUERIES * 9  # 9 blocks of rows, each scored against every query
    assert scores.shape == rows.shape == (QUERIES, 10)


@pytest.mark.parametrize(("query_batch", "count"), [(1, 30), (7, 100), (256, QUERIES)])
def test_exact_search_in_query_batches_equals_one_batch(index_dir, query_batch, count):
    q = queries()[:count]
    whole = search_embeddings(q, index_dir, top_k=10, chunk_size=128, query_batch=count)
    batched = search_embeddings(q, index_dir, top_k=10, chunk_size=128, query_batch=query_batch)
    assert torch.equal(batched[1], whole[1]) and torch.equal(batched[0], whole[0])


def test_compressed_search_takes_256_queries_at_a_time_and_rescores_only_their_own_candidates(index_dir, monkeypatch):
    searcher = CompressedIndex.load(index_dir, "int8")
    stage_1, taken = [], []
    scores_int8, take = compressed_module._scores_int8, FloatRows.take

    def spy_scores(q_codes, block, count):
        stage_1.append(count)
        return scores_int8(q_codes, block, count)

    def spy_take(self, positions):
        taken.append(len(positions))
        return take(self, positions)

    monkeypatch.setattr(compressed_module, "_scores_int8", spy_scores)
    monkeypatch.setattr(FloatRows, "take", spy_take)
    scores, rows = searcher.search_embeddings(queries(), top_k=10, candidates=50)
    assert max(stage_1) == 256 and sum(taken) == QUERIES * 50  # each query's 50 candidates, no more
    assert max(taken) == 256 * 50
    assert scores.shape == rows.shape == (QUERIES, 10)


@pytest.mark.parametrize(("query_batch", "count"), [(1, 30), (7, 100), (256, QUERIES)])
def test_compressed_search_in_query_batches_equals_one_batch(index_dir, query_batch, count):
    searcher, q = CompressedIndex.load(index_dir, "int8"), queries()[:count]
    whole = searcher.search_embeddings(q, top_k=10, candidates=50, query_batch=count)
    batched = searcher.search_embeddings(q, top_k=10, candidates=50, query_batch=query_batch)
    assert torch.equal(batched[1], whole[1]) and torch.equal(batched[0], whole[0])


def test_compressed_rescoring_equals_the_exact_cosine_of_each_candidate(index_dir):
    searcher = CompressedIndex.load(index_dir, "int8")
    q = queries()[:40]
    scores, rows = searcher.search_embeddings(q, top_k=10, candidates=N)  # every row a candidate
    exact_scores, exact_rows = search_embeddings(q, index_dir, top_k=10)
    assert torch.equal(rows, exact_rows)
    torch.testing.assert_close(scores, exact_scores, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("query_batch", "count"), [(1, 30), (7, 100)])
def test_float_scores_in_query_batches_differ_from_one_batch_at_most_in_the_last_bits(
    float_index_dir, query_batch, count
):
    q = float_queries()[:count]
    for search in (
        lambda b: search_embeddings(q, float_index_dir, top_k=10, chunk_size=128, query_batch=b),
        lambda b: CompressedIndex.load(float_index_dir, "int8").search_embeddings(q, top_k=10, query_batch=b),
    ):
        (whole_scores, _), (scores, _) = search(count), search(query_batch)
        torch.testing.assert_close(scores, whole_scores, atol=1e-6, rtol=0)


def test_query_batch_must_be_positive(index_dir):
    with pytest.raises(ConfigError, match="query_batch: must be positive, got 0"):
        search_embeddings(queries(), index_dir, query_batch=0)
    with pytest.raises(ConfigError, match="query_batch: must be positive, got 0"):
        CompressedIndex.load(index_dir, "int8").search_embeddings(queries(), query_batch=0)


def test_bench_query_batches_tiny(tmp_path):
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("reads Linux's peak RSS")
    argv = [sys.executable, "benchmarks/bench_query_batches.py", "--dir", str(tmp_path), "--exact-rows", "2000"]
    argv += ["--exact-queries", "300", "--int8-rows", "3000", "--int8-queries", "300"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.count("identical hits") == 2 and "HITS DIFFER" not in out
