"""Batch samplers for in-batch SimL losses: batches built around mined positive pairs (SimL > β), plain shuffled
batches with the same contract, and contrastive negatives mined per document.

Both samplers have a fixed number of batches per epoch (``ceil(documents / batch_size)``), so the Trainer's step
count and resume skipping are exact, and their batches depend only on ``seed`` and the epoch (``set_epoch``), so a
resumed run sees the batches an uninterrupted one would. With ``groups`` (the label kind per document) every batch
is drawn from one group.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from biohicl.data.mining import progress_blocks
from biohicl.errors import ConfigError
from biohicl.mesh.gram import SMALL_GRAM_ROWS, gram_factors, gram_matrix
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.pair_rules import ZERO_TOLERANCE, parse_negative

logger = logging.getLogger(__name__)

#: Document indices as the samplers take them: a list (of ints or numpy integers), or a numpy array as
#: :func:`~biohicl.data.mining.mine_top_k`'s pairs and :func:`mine_negatives`' lists hold them.
Indices = Sequence[int | np.integer] | np.ndarray

PAIR_BLOCK_ENTRIES = 1 << 24
"""SimL entries (float32, 64 MiB) :meth:`MeshPairBatchSampler.from_labels` holds at once: blocks of
``max(64, PAIR_BLOCK_ENTRIES // N)`` rows."""
PARTNER_STREAM = 2**32 - 1
"""Second word of the seed of ``max_partners``' draws, ``(seed, PARTNER_STREAM)``: a stream no epoch's batches use."""


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """What both samplers share: ``ceil(num_documents / batch_size)`` batches an epoch, seeded by ``(seed, epoch)``
    (:meth:`set_epoch`), so a resumed run sees the batches of an uninterrupted one."""

    num_documents: int
    batch_size: int
    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_documents / self.batch_size)


class MeshPairBatchSampler(EpochBatchSampler):
    """Batches built around mined positive pairs (SimL > β), so that every batch holds positives.

    Each epoch walks the documents in a seeded random order; each document not yet in the current batch joins it
    as an anchor together with one of its partners (chosen at random among those not yet in the batch), until the
    batch holds ``batch_size`` documents. Documents without partners fill batches alone. An epoch has
    ``ceil(num_documents / batch_size)`` batches (fixed, so the Trainer's step count and resume skipping are exact);
    the anchor order restarts with a fresh permutation when it runs out. Batches depend only on ``seed`` and the
    epoch (:meth:`set_epoch`), so a resumed run sees the same batches as an uninterrupted one.

    Args:
        partners: ``partners[i]``: indices of the documents that form a positive pair with document ``i``.
        batch_size: documents per batch.
        seed: base seed; the epoch's generator is seeded with ``(seed, epoch)``.
        groups: a group per document (the label kind, ``indexing``/``mentions``): every batch is drawn from one
            group (chosen with probability proportional to its size; a group smaller than ``batch_size`` gives
            smaller batches), and partners or negatives in another group are ignored. ``None`` or one group:
            the batches are exactly those without groups.
        negatives: ``negatives[i]``: documents that are contrastive negatives of ``i`` (see
            :func:`mine_negatives`); when given, an anchor with none of its negatives in the batch also brings one.
    """

    #: Where the partners came from, as ``biohicl train --dry_run`` says it (:meth:`from_pairs`, :meth:`from_labels`).
    pair_pool: str | None = None

    def __init__(
        self,
        partners: Sequence[Indices],
        batch_size: int,
        seed: int = 0,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Indices] | None = None,
    ):
        if batch_size < 2:
            raise ConfigError(f"batch_size: in-batch pairs need at least 2 documents, got {batch_size}")
        self.num_documents = len(partners)
        if self.num_documents == 0:
            raise ConfigError("MeshPairBatchSampler: no documents")
        self.group_of, self.group_members = _group_index(groups, self.num_documents)
        self.partners = self._same_group(partners)
        self.negatives = None if negatives is None else self._same_group(negatives)
        self.batch_size = min(batch_size, self.num_documents)
        self.seed = seed
        self.epoch = 0

    def _same_group(self, lists: Sequence[Indices]) -> list[np.ndarray]:
        dtype = _index_dtype(self.num_documents)
        out = [_ascending_unique(p, dtype) for p in lists]
        if len(out) != self.num_documents:
            raise ConfigError(f"MeshPairBatchSampler: {len(out)} lists for {self.num_documents} documents")
        if len(self.group_members) > 1:
            for i, p in enumerate(out):
                out[i] = p[self.group_of[p] == self.group_of[i]]
        return out

    # -- construction
    @classmethod
    def from_pairs(
        cls,
        anchors: Indices,
        partners: Indices,
        siml: Sequence[float] | np.ndarray,
        num_documents: int,
        batch_size: int,
        beta: float = 0.3,
        seed: int = 0,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Indices] | None = None,
    ) -> MeshPairBatchSampler:
        """From a mined pair list (indices into the training documents); pairs with SimL ≤ β are ignored."""
        lists: list[list[int]] = [[] for _ in range(num_documents)]
        for a, p, s in zip(anchors, partners, siml, strict=True):
            if s > beta and a != p:
                lists[a].append(p)
                lists[p].append(a)
        sampler = cls(lists, batch_size, seed, groups=groups, negatives=negatives)
        sampler.pair_pool = "the dataset's mined pairs"
        return sampler

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[Sequence[str]],
        mesh: MeshHierarchy,
        batch_size: int,
        beta: float = 0.3,
        ancestors: bool = True,
        depth_weight: bool = True,
        seed: int = 0,
        label_weights: Mapping[str, float] | None = None,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Indices] | None = None,
        max_partners: int | None = None,
        progress: bool = False,
    ) -> MeshPairBatchSampler:
        """Mine every pair with SimL > β among the documents, a block of SimL rows at a time (memory
        ``PAIR_BLOCK_ENTRIES`` floats plus the partner lists, 4 bytes a pair, never the N×N matrix).

        ``max_partners``: keep at most this many partners per document, a random subset of its own group's (the
        others are ignored anyway) seeded by ``seed`` (the same for any block size) where there are more; ``None``
        keeps every one. The sampler draws one partner per anchor, so a cap bounds the lists' memory (every
        document of a large corpus can have thousands) and keeps each document's chance of joining a batch as a
        partner closer to even. ``progress``: a bar over the blocks.
        """
        docs = [mesh.known_labels(labs) for labs in labels]
        vectors = mesh.normalized_label_vectors(docs, ancestors, depth_weight, np.float64, label_weights)
        cap = None if max_partners is None else (max_partners, np.random.default_rng([seed, PARTNER_STREAM]))
        group_of, members = _group_index(groups, len(docs))
        same = group_of if len(members) > 1 else None
        partners = _partners_above(vectors, beta, PAIR_BLOCK_ENTRIES, cap, progress, same)
        sampler = cls(partners, batch_size, seed, groups=groups, negatives=negatives)
        sampler.pair_pool = "every pair, mined with the run's SimL" + (
            "" if max_partners is None else f", at most {max_partners} partners a document"
        )
        return sampler

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        grouped = len(self.group_members) > 1
        sizes = np.array([len(m) for m in self.group_members], dtype=np.float64)
        orders: list[list[int]] = [[] for _ in self.group_members]
        for _ in range(len(self)):
            group = int(rng.choice(len(sizes), p=sizes / sizes.sum())) if grouped else 0
            size = min(self.batch_size, len(self.group_members[group]))
            order = orders[group]
            batch: list[int] = []
            members: set[int] = set()
            while len(batch) < size:
                if not order:
                    fresh = (
                        rng.permutation(self.group_members[group]) if grouped else rng.permutation(self.num_documents)
                    )
                    order.extend(fresh.tolist()[::-1])
                anchor = order.pop()
                if anchor not in members:
                    batch.append(anchor)
                    members.add(anchor)
                if len(batch) >= size:
                    break
                candidates = self.partners[anchor]
                if len(candidates):
                    for partner in rng.permutation(candidates).tolist():
                        if partner not in members:
                            batch.append(partner)
                            members.add(partner)
                            break
                if self.negatives is not None and len(batch) < size:
                    pool = self.negatives[anchor]
                    if len(pool) and not members.intersection(pool.tolist()):
                        negative = int(pool[rng.integers(len(pool))])
                        batch.append(negative)
                        members.add(negative)
            yield batch


def _index_dtype(n: int) -> type[np.signedinteger]:
    """int32 for document indices when they fit, else int64."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def _ascending_unique(indices: Indices, dtype: type[np.signedinteger]) -> np.ndarray:
    """``indices`` sorted without repeats as a ``dtype`` array; an array that already is one is kept, not copied
    (the partner lists of many documents are the sampler's largest data)."""
    array = np.asarray(indices)
    if array.dtype == dtype and array.ndim == 1 and (len(array) < 2 or bool((array[1:] > array[:-1]).all())):
        return array
    return np.unique(np.asarray(indices, dtype=np.int64)).astype(dtype)


def _partners_above(
    vectors: sp.csr_matrix,
    beta: float,
    block_entries: int,
    cap: tuple[int, np.random.Generator] | None = None,
    progress: bool = False,
    group_of: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Per row ``i``: the ascending ``j != i`` with ``(vectors @ vectors.T)[i, j] > beta`` (and, with
    ``group_of``, ``group_of[j] == group_of[i]``), in row blocks; with ``cap = (k, rng)`` a row with more than
    ``k`` keeps ``k`` of them drawn by ``rng`` (rows in order).

    Each block is the float32 rows :func:`gram_matrix` gives (bitwise: every block has the same number of rows,
    at least 64, the last one overlapping the one before, since a 1-row product takes another BLAS path).
    """
    n = vectors.shape[0]
    dtype = _index_dtype(n)
    capped = f", at most {cap[0]} per document" if cap is not None else ""
    logger.info("mining batch partners (SimL > %s) among %d documents%s", beta, n, capped)

    def above(row: np.ndarray, i: int) -> np.ndarray:
        found = np.flatnonzero(row > beta)
        if group_of is not None:  # before the cap, so that it keeps partners a batch can hold
            found = found[group_of[found] == group_of[i]]
        if cap is not None and len(found) > cap[0]:
            found = np.sort(cap[1].choice(found, cap[0], replace=False))
        return found.astype(dtype)

    if n <= SMALL_GRAM_ROWS:  # gram_matrix's float64 sparse product for small inputs
        gram = gram_matrix(vectors)
        np.fill_diagonal(gram, 0.0)
        return [above(row, i) for i, row in enumerate(gram)]
    factors = gram_factors(vectors)
    size = min(n, max(64, block_entries // n))
    buffer = np.empty((size, n), dtype=np.float32)
    out: list[np.ndarray] = []
    for start in progress_blocks(range(0, n, size), "mining batch partners", progress):
        first = min(start, n - size)
        block = factors.rows(first, first + size, out=buffer)
        for i in range(start, min(start + size, n)):
            row = block[i - first]
            row[i] = 0.0
            out.append(above(row, i))
    return out


def _group_index(groups: Sequence[str] | None, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(group id per document, member indices per group)``; one group when ``groups`` is None."""
    if groups is None:
        return np.zeros(n, dtype=np.int64), [np.arange(n)]
    if len(groups) != n:
        raise ConfigError(f"groups: {len(groups)} values for {n} documents")
    names, group_of = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    group_of = group_of.ravel().astype(np.int64)
    return group_of, [np.flatnonzero(group_of == g) for g in range(len(names))]


def mine_negatives(
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy,
    negative: str = "zero",
    beta: float = 0.3,
    ancestors: bool = True,
    depth_weight: bool = True,
    label_weights: Mapping[str, float] | None = None,
    groups: Sequence[str] | None = None,
    limit: int = 64,
    seed: int = 0,
    block: int = 1024,
    progress: bool = False,
) -> list[np.ndarray]:
    """For each document, up to ``limit`` documents of its group that are its negatives under ``negative``.

    ``zero``: SimL = 0, ``below:t``: SimL < t (a seeded random ``limit`` of them); ``lowest:k``: the ``limit``
    lowest-SimL documents with SimL ≤ β. Unlabelled documents are nobody's negative. SimL is computed in row
    blocks (memory ``block × N`` floats and as many booleans: the block's masks are computed at once, per group);
    ``progress``: a bar over the blocks.
    """
    kind, value = parse_negative(negative, beta)
    logger.info("mining negatives (%s, at most %d per document) among %d documents", negative, limit, len(labels))
    docs = [mesh.known_labels(labs) for labs in labels]
    vectors = mesh.normalized_label_vectors(docs, ancestors, depth_weight, np.float64, label_weights)
    labelled = np.diff(vectors.indptr) > 0
    group_of, members = _group_index(groups, len(docs))
    allowed = [labelled & (group_of == g) for g in range(len(members))]  # who may be a negative, per group
    factors = gram_factors(vectors)
    rng = np.random.default_rng([seed, 1])
    compare = np.less if kind == "below" else np.less_equal
    threshold = beta if kind == "lowest" else ZERO_TOLERANCE if kind == "zero" else value
    size = min(block, len(docs))
    buffer, masks = np.empty((size, len(docs)), dtype=np.float32), np.empty((size, len(docs)), dtype=bool)
    out: list[np.ndarray] = []
    for start in progress_blocks(range(0, len(docs), block), "mining negatives", progress):
        stop = min(start + block, len(docs))
        rows = factors.rows(start, stop, out=buffer[: stop - start])
        # the block's masks at once (float32 comparisons, as per row), then the group's and no self-pairs
        mask = compare(rows, threshold, out=masks[: stop - start])
        if len(allowed) == 1:
            mask &= allowed[0]
        else:
            block_groups = group_of[start:stop]
            for g in np.unique(block_groups):
                mask[block_groups == g] &= allowed[g]
        mask[np.arange(stop - start), np.arange(start, stop)] = False
        for offset in range(stop - start):
            if not labelled[start + offset]:
                out.append(np.zeros(0, dtype=np.int64))
                continue
            candidates = np.flatnonzero(mask[offset])
            if kind == "lowest":
                keep = _lowest(rows[offset], candidates, limit)
            else:  # the same seeded draws, in the same order, as row by row
                keep = rng.choice(candidates, limit, replace=False) if len(candidates) > limit else candidates
            out.append(np.sort(keep).astype(np.int64))
    return out


def _lowest(row: np.ndarray, candidates: np.ndarray, limit: int) -> np.ndarray:
    """The ``limit`` candidates of lowest ``row`` value, ties to the lower index: the first ``limit`` of a stable
    argsort of ``row[candidates]``, in linear time."""
    if len(candidates) <= limit or limit < 1:
        return (
            candidates if limit >= len(candidates) else candidates[np.argsort(row[candidates], kind="stable")[:limit]]
        )
    values = row[candidates]
    kth = np.partition(values, limit - 1)[limit - 1]
    below = candidates[values < kth]
    return np.concatenate([below, candidates[values == kth][: limit - len(below)]])


class RandomBatchSampler(EpochBatchSampler):
    """Plain shuffled batches with the same length/seeding contract as :class:`MeshPairBatchSampler`.

    ``groups`` (optional, e.g. the label kind per document): every batch is drawn from one group, chosen with
    probability proportional to its size; one group (or None) gives exactly the ungrouped batches.
    """

    def __init__(self, num_documents: int, batch_size: int, seed: int = 0, groups: Sequence[str] | None = None):
        self.num_documents = num_documents
        self.batch_size = min(batch_size, num_documents)
        self.seed = seed
        self.epoch = 0
        self.group_of, self.group_members = _group_index(groups, num_documents)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if len(self.group_members) > 1:
            yield from self._grouped(rng)
            return
        order = rng.permutation(self.num_documents)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start : start + self.batch_size].tolist()
            if len(batch) < self.batch_size:  # keep every batch full: top up from a fresh permutation
                extra = [i for i in rng.permutation(self.num_documents).tolist() if i not in set(batch)]
                batch += extra[: self.batch_size - len(batch)]
            yield batch

    def _grouped(self, rng: np.random.Generator) -> Iterator[list[int]]:
        sizes = np.array([len(m) for m in self.group_members], dtype=np.float64)
        orders: list[list[int]] = [[] for _ in self.group_members]
        for _ in range(len(self)):
            group = int(rng.choice(len(sizes), p=sizes / sizes.sum()))
            size = min(self.batch_size, len(self.group_members[group]))
            batch: list[int] = []
            while len(batch) < size:
                if not orders[group]:
                    orders[group].extend(rng.permutation(self.group_members[group]).tolist()[::-1])
                index = orders[group].pop()
                if index not in batch:
                    batch.append(index)
            yield batch
