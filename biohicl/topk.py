"""The running per-query top-k of a blockwise scan (exact search, the compressed first stage, BEIR retrieval).

>>> best_scores, best_rows = torch.empty(q, 0), torch.empty(q, 0, dtype=torch.long)
>>> for start, block in blocks:
...     best_scores, best_rows = merge_top_k(best_scores, best_rows, queries @ block.T, start, k)
>>> scores, rows = sort_top_k(best_scores, best_rows)
"""

from __future__ import annotations

import torch


def merge_top_k(
    best_scores: torch.Tensor,
    best_rows: torch.Tensor,
    scores: torch.Tensor,
    offset: int,
    k: int,
    *,
    stable: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold one block's ``scores`` [q, n] (rows ``offset…offset + n - 1``) into the running top ``k`` per query.

    ``stable=False``: ``torch.topk`` of the block, then of the union (fast; which of several equal scores at the
    cut is kept is unspecified). ``stable=True``: among equal scores the lower row number wins and the result is
    sorted (what trec_eval's tie order needs, and what makes exact search independent of its block size); it costs a
    stable sort of the block only for the queries whose ``k``-th best score in it is tied with the next.
    """
    if stable:
        values, local = _stable_block_top(scores, k)
        merged_scores, merged_rows = sort_top_k(
            torch.cat([best_scores, values], dim=1), torch.cat([best_rows, local + offset], dim=1)
        )
        return merged_scores[:, :k], merged_rows[:, :k]
    values, rows = scores.topk(min(k, scores.shape[1]), dim=1)
    best_scores = torch.cat([best_scores, values], dim=1)
    best_rows = torch.cat([best_rows, rows + offset], dim=1)
    if best_scores.shape[1] > k:
        best_scores, keep = best_scores.topk(k, dim=1)
        best_rows = best_rows.gather(1, keep)
    return best_scores, best_rows


def _stable_block_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` of each row of ``scores`` [q, n] with their column numbers, the lower column first among equal
    scores at the cut: ``torch.topk`` of ``k + 1``, then a stable sort only for the rows whose ``k``-th and
    ``k + 1``-th scores are equal (ties straddle the cut, so ``topk``'s pick among them is arbitrary)."""
    if k >= scores.shape[1]:
        return scores, torch.arange(scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
    values, columns = scores.topk(k + 1, dim=1)
    tied = (values[:, k - 1] == values[:, k]).nonzero().flatten()
    values, columns = values[:, :k], columns[:, :k]
    if len(tied):
        ordered, order = torch.sort(scores[tied], dim=1, descending=True, stable=True)
        values, columns = values.clone(), columns.clone()
        values[tied], columns[tied] = ordered[:, :k], order[:, :k]
    return values, columns


def sort_top_k(scores: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each query's hits by score (descending), equal scores by row number (ascending)."""
    by_row = rows.argsort(dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), rows.gather(1, by_score)
