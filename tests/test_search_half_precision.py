"""Indexes stored in float16/bfloat16 rank by the cosine of their stored rows: each row is renormalised in float32
when it is scored (a unit row rounded to bfloat16 is off unit length by up to ~4e-3, so without it the scores were
dot products: a copy of a document scored 1.0004 against it and longer rows ranked too high)."""

from __future__ import annotations

import pytest
import torch
from conftest import write_index

from biohicl.search.compressed import CompressedIndex
from biohicl.search.compression import compress_index
from biohicl.search.exact import search_embeddings, search_like
from biohicl.search.faiss_index import FaissSearcher
from biohicl.search.index import load_index

N, DIM, K = 200, 32, 11


def rows_and_copies(seed: int = 0) -> torch.Tensor:
    """``N`` unit rows, then an exact copy of each (row ``N + i`` is row ``i``)."""
    rows = torch.nn.functional.normalize(torch.randn(N, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)
    return torch.cat([rows, rows])


def brute_force(queries: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """float64 cosine of every query against every stored (cast) row."""
    q = torch.nn.functional.normalize(queries.double(), dim=-1)
    return q @ torch.nn.functional.normalize(stored.double(), dim=-1).T


def assert_ranked_by_cosine(scores: torch.Tensor, rows: torch.Tensor, cosine: torch.Tensor) -> None:
    """The hits are the float64 top-k (up to ties within float32 rounding) and their scores are those cosines."""
    assert (scores <= 1 + 1e-6).all()
    expected = cosine.topk(rows.shape[1], dim=1).values
    found = cosine.gather(1, rows)
    torch.testing.assert_close(found, expected, atol=1e-6, rtol=0)  # the same ranking, ties aside
    torch.testing.assert_close(scores.double(), found, atol=1e-6, rtol=0)  # each score is its row's cosine


@pytest.fixture(scope="module", params=[torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def half_index(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("half") / "index"
    rows = rows_and_copies()
    write_index(directory, rows, shard_size=150, dtype=request.param)
    compress_index(directory, "int8", calibration_rows=2 * N)
    return directory, rows.to(request.param).float()  # the rows as stored


def test_exact_search_scores_the_cosine_of_the_stored_rows(half_index):
    directory, stored = half_index
    queries = torch.randn(50, DIM, generator=torch.Generator().manual_seed(1))
    scores, rows = search_embeddings(queries, directory, top_k=K, chunk_size=64)
    assert_ranked_by_cosine(scores, rows, brute_force(queries, stored))


def test_a_copy_of_a_document_scores_one_against_it(half_index):
    directory, stored = half_index
    scores, rows = search_embeddings(stored[:N], directory, top_k=2, chunk_size=64)
    assert rows[:, 0].tolist() == list(range(N)) and rows[:, 1].tolist() == list(range(N, 2 * N))
    assert (scores - 1).abs().max() <= 1e-6  # the row itself and its copy: both 1.0, equal
    hit = search_like(directory, ["d0"], top_k=1)[0][0]
    assert hit.id == f"d{N}" and abs(hit.score - 1) <= 1e-6


def test_compressed_search_rescores_with_the_cosine_of_the_stored_rows(half_index):
    directory, stored = half_index
    queries = torch.randn(50, DIM, generator=torch.Generator().manual_seed(2))
    searcher = CompressedIndex.load(directory, "int8")
    scores, rows = searcher.search_embeddings(queries, top_k=K, candidates=2 * N)  # every row rescored
    assert_ranked_by_cosine(scores, rows, brute_force(queries, stored))


def test_faiss_flat_scores_the_cosine_of_the_stored_rows(half_index):
    pytest.importorskip("faiss")
    directory, stored = half_index
    queries = torch.randn(50, DIM, generator=torch.Generator().manual_seed(3))
    scores, rows = FaissSearcher.build(load_index(directory)).search_embeddings(queries, top_k=K)
    assert_ranked_by_cosine(scores, rows, brute_force(queries, stored))
