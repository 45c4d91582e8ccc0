"""Top-k MeSH pairs: each document's ``top_k`` partners by SimL, mined a block of SimL rows at a time (never the
dense n×n matrix).

SimL is rounded to :data:`SIML_DECIMALS` decimals; ties are broken by a permutation of the documents drawn from
``seed``, so mining is deterministic for a seed. :func:`mine_within_groups` mines each group of documents (label
kind, split) on its own, so no pair crosses groups.

The permutation is over the documents' *positions*, so the pairs depend on the order the documents come in (for
``biohicl build-dataset``, the order of its ``--input`` files) as well as on ``seed``: the same corpus read in another
order may pick other partners at tied SimL. Callers give their files in a fixed order (a shell glob sorts by the
locale's collation). It is kept so, not keyed by PMID, so that committed datasets rebuild identically.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biohicl.errors import ConfigError
from biohicl.mesh.gram import gram_factors, support_hashes
from biohicl.mesh.hierarchy import MeshHierarchy

SIML_DECIMALS = 6
BLOCK_BYTES = 1 << 28


@dataclass
class MinedPairs:
    """Top-k partners per anchor, as parallel arrays (anchor-major, rank ascending)."""

    anchor: np.ndarray
    partner: np.ndarray
    siml: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)


def mine_top_k(
    label_lists: Sequence[Sequence[str]],
    mesh: MeshHierarchy,
    top_k: int = 10,
    seed: int = 0,
    *,
    block_size: int | None = None,
    ancestors: bool = True,
    depth_weight: bool = True,
    progress: bool = False,
) -> MinedPairs:
    """Each document's ``top_k`` partners by SimL (> 0, self excluded), mined a block of rows at a time.

    Documents with the same tree-node set share one row of the SimL matrix (their copies are each other's
    partners at SimL 1.0), so the work grows with the number of *distinct* label sets. Ranking uses SimL
    rounded to :data:`SIML_DECIMALS` decimals, ties broken by a seeded permutation of the documents. Memory is
    O(block_size × distinct sets) on top of the sparse label vectors; ``block_size`` defaults to ~256 MB.
    """
    import torch

    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    n = len(label_lists)
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return MinedPairs(empty, empty, np.empty(0, dtype=np.float32), empty)
    k = min(top_k, n - 1)
    width = k + 1  # one spare: a document's own copy is dropped afterwards
    vectors = mesh.label_vectors(label_lists, ancestors, depth_weight, np.float32)
    set_of, representative = _unique_rows(vectors)
    m = len(representative)
    factors = gram_factors(vectors[representative], normalize=True)
    # Higher priority wins a tie; a seeded permutation makes ties deterministic but not biased by position.
    priority = np.random.default_rng(seed).permutation(n).astype(np.int64)
    members = np.lexsort((-priority, set_of))  # documents grouped by set, best priority first
    starts = np.r_[0, np.cumsum(np.bincount(set_of, minlength=m))[:-1]]
    rank_in_set = np.empty(n, dtype=np.int64)
    rank_in_set[members] = np.arange(n) - np.repeat(starts, np.bincount(set_of, minlength=m))
    best = np.full((m, width), -1, dtype=np.int64)  # each set's best documents by priority
    keep = rank_in_set[members] < width
    best[set_of[members][keep], rank_in_set[members][keep]] = members[keep]
    best_t = torch.from_numpy(best)
    prio_t = torch.from_numpy(np.r_[priority, -1])  # index -1 → priority -1 (padding)
    set_best_priority = prio_t[best_t[:, 0]]
    scale = 10**SIML_DECIMALS
    if block_size is None:
        block_size = max(1, min(m, BLOCK_BYTES // (16 * m)))
    buffer = np.empty((min(block_size, m), m), dtype=np.float32)
    lists = np.full((m, width), -1, dtype=np.int64)
    levels = np.zeros((m, width), dtype=np.int64)
    for start in progress_blocks(range(0, m, block_size), "mining MeSH pairs", progress):
        stop = min(start + block_size, m)
        level = torch.from_numpy(factors.rows(start, stop, out=buffer[: stop - start]))
        level.mul_(scale).round_()  # exact integers in float32 (< 2**24)
        # 1) the best sets by (SimL, best document priority): the top documents come from these only.
        #    Candidates: every set at or above the row's width-th largest SimL (ties included), then exact keys.
        kth = torch.topk(level, min(width, m), dim=1, sorted=False).values.min(dim=1).values.clamp(min=1.0)
        rows_idx, cols_idx = (level >= kth.unsqueeze(1)).nonzero(as_tuple=True)
        cand_level = level[rows_idx, cols_idx].to(torch.int64)
        cand_key = (cand_level * n + set_best_priority[cols_idx]).numpy()
        order = np.lexsort((-cand_key, rows_idx.numpy()))
        r_sorted = rows_idx.numpy()[order]
        run_start = np.searchsorted(r_sorted, np.arange(stop - start))
        place = np.arange(len(order)) - run_start[r_sorted]
        take = place < width
        top_sets = torch.full((stop - start, width), -1, dtype=torch.int64)
        set_level = torch.zeros((stop - start, width), dtype=torch.int64)
        top_sets[r_sorted[take], place[take]] = cols_idx[order[take]]
        set_level[r_sorted[take], place[take]] = cand_level[order[take]]
        # 2) their best documents, ranked by (SimL, priority)
        docs = best_t[top_sets.clamp(min=0)]  # [b, sets, width]
        docs[top_sets < 0] = -1
        doc_keys = set_level.unsqueeze(2) * n + prio_t[docs]
        doc_keys[(docs < 0) | (set_level.unsqueeze(2) <= 0)] = -1
        doc_keys = doc_keys.flatten(1)
        top = torch.topk(doc_keys, min(width, doc_keys.shape[1]), dim=1)
        chosen = docs.flatten(1).gather(1, top.indices)
        chosen[top.values < 0] = -1
        lists[start:stop, : chosen.shape[1]] = chosen.numpy()
        levels[start:stop, : chosen.shape[1]] = torch.div(top.values.clamp(min=0), n, rounding_mode="floor").numpy()
    # 3) each document takes its set's list without itself
    doc_lists, doc_levels = lists[set_of], levels[set_of]
    own = doc_lists == np.arange(n)[:, None]
    position = np.where(own.any(axis=1), own.argmax(axis=1), width - 1)
    columns = np.arange(k)[None, :] + (np.arange(k)[None, :] >= position[:, None])
    partner = np.take_along_axis(doc_lists, columns, axis=1)
    level = np.take_along_axis(doc_levels, columns, axis=1)
    valid = (partner >= 0) & (level > 0)
    anchor = np.broadcast_to(np.arange(n)[:, None], partner.shape)[valid]
    siml = (level[valid] / scale).astype(np.float32)
    return MinedPairs(anchor.astype(np.int64), partner[valid], siml, _ranks(anchor))


def _unique_rows(vectors) -> tuple[np.ndarray, np.ndarray]:
    """Group identical sparse rows (same columns): ``(group of each row, first row of each group)``."""
    hashes = support_hashes(vectors.indptr, vectors.indices, vectors.shape[1])
    _, representative, group = np.unique(hashes, return_index=True, return_inverse=True)
    return group.ravel().astype(np.int64), representative


def _ranks(anchor: np.ndarray) -> np.ndarray:
    """1-based position of each pair within its anchor's run (pairs are anchor-major, best first)."""
    if not len(anchor):
        return np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(anchor[1:] != anchor[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(anchor)]))
    return np.arange(len(anchor)) - run_start + 1


def mine_within_groups(
    label_lists: Sequence[Sequence[str]], groups: Sequence[Hashable], mesh: MeshHierarchy, **kwargs: Any
) -> MinedPairs:
    """:func:`mine_top_k` within each group of documents (``groups[i]``: document ``i``'s group, e.g. its
    ``(label kind, split)``), so no pair crosses groups; indices are the documents', anchor-major."""
    members_of: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members_of.setdefault(group, []).append(i)
    parts = []
    for members in members_of.values():
        index = np.asarray(members, dtype=np.int64)
        mined = mine_top_k([label_lists[i] for i in members], mesh, **kwargs)
        parts.append((index[mined.anchor], index[mined.partner], mined.siml, mined.rank))
    anchor, partner, siml, rank = (np.concatenate([p[j] for p in parts]) for j in range(4))
    order = np.argsort(anchor, kind="stable")
    return MinedPairs(anchor[order], partner[order], siml[order].astype(np.float32), rank[order])


def progress_blocks(starts: range, desc: str, progress: bool) -> Iterable[int]:
    """``starts`` (the first rows of SimL blocks), behind a tqdm bar over the blocks when ``progress``: the bar of
    every blockwise mining (the build's pairs, training's partners and negatives)."""
    if not progress:
        return starts
    from tqdm.auto import tqdm

    return tqdm(starts, desc=desc, unit="block", total=len(starts))
