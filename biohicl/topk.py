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
    cut is kept is unspecified). ``stable=True``: a stable descending sort of the union, so among equal scores
    the earlier row wins and the result is sorted (what trec_eval's tie order needs).
    """
    if stable:
        rows = torch.arange(offset, offset + scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_rows = torch.cat([best_rows, rows], dim=1)
        ordered, order = torch.sort(merged_scores, dim=1, descending=True, stable=True)
        return ordered[:, :k], torch.gather(merged_rows, 1, order[:, :k])
    values, rows = scores.topk(min(k, scores.shape[1]), dim=1)
    best_scores = torch.cat([best_scores, values], dim=1)
    best_rows = torch.cat([best_rows, rows + offset], dim=1)
    if best_scores.shape[1] > k:
        best_scores, keep = best_scores.topk(k, dim=1)
        best_rows = best_rows.gather(1, keep)
    return best_scores, best_rows


def sort_top_k(scores: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each query's hits by score (descending), equal scores by row number (ascending)."""
    by_row = rows.argsort(dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), rows.gather(1, by_score)
