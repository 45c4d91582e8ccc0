"""biohicl.topk: the running per-query top-k of a blockwise scan equals one top-k over all rows."""

from __future__ import annotations

import torch

from biohicl.topk import merge_top_k, sort_top_k


def scan(scores: torch.Tensor, k: int, block: int, stable: bool) -> tuple[torch.Tensor, torch.Tensor]:
    best_scores = torch.empty(scores.shape[0], 0)
    best_rows = torch.empty(scores.shape[0], 0, dtype=torch.long)
    for start in range(0, scores.shape[1], block):
        chunk = scores[:, start : start + block]
        best_scores, best_rows = merge_top_k(best_scores, best_rows, chunk, start, k, stable=stable)
    return best_scores, best_rows


def test_blockwise_top_k_equals_the_full_top_k():
    scores = torch.randn(5, 103, generator=torch.Generator().manual_seed(0))
    expected_scores, expected_rows = scores.topk(7, dim=1)
    for stable in (False, True):
        got_scores, got_rows = sort_top_k(*scan(scores, 7, block=10, stable=stable))
        assert torch.equal(got_scores, expected_scores) and torch.equal(got_rows, expected_rows)


def test_stable_merge_keeps_the_earlier_row_among_ties_and_is_sorted():
    scores = torch.tensor([[0.5, 0.75, 0.5, 0.75, 0.25, 0.5]])
    best_scores, best_rows = scan(scores, 3, block=2, stable=True)
    assert best_rows.tolist() == [[1, 3, 0]] and best_scores.tolist() == [[0.75, 0.75, 0.5]]


def test_sort_top_k_orders_by_score_then_row():
    scores, rows = sort_top_k(torch.tensor([[0.25, 0.75, 0.75]]), torch.tensor([[4, 9, 2]]))
    assert rows.tolist() == [[2, 9, 4]] and scores.tolist() == [[0.75, 0.75, 0.25]]


def test_stable_merge_of_blocks_larger_than_k_resolves_ties_at_the_cut_by_row():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (6, 50), generator=generator).float() / 4  # many equal scores per query
    scores[0] = torch.randn(50, generator=generator)  # and one query without ties
    expected_scores, expected_rows = scores.sort(dim=1, descending=True, stable=True)
    for block in (7, 20, 50):
        got_scores, got_rows = scan(scores, 5, block=block, stable=True)
        assert torch.equal(got_rows, expected_rows[:, :5]) and torch.equal(got_scores, expected_scores[:, :5])
