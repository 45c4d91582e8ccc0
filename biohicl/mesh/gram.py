"""The Gram matrix ``V @ V.T`` of sparse non-negative rows (label vectors): SimL for a batch, or row blocks of it
for mining pairs over many documents.

Label vectors have few distinct column supports and a few very popular columns (the top of the tree), so
:func:`gram_factors` merges columns with the same support, sends the popular ones through a dense BLAS product and
keeps the rest sparse; :func:`gram_matrix` is the dense result. :func:`support_hashes` (equal index sets, equal
hashes) finds the columns, or rows, with the same support.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


def inverse_row_norms(vectors: sp.csr_matrix) -> np.ndarray:
    """``1 / ‖row‖₂`` per row of a CSR matrix (float64; 0.0 for an empty row)."""
    rows = np.repeat(np.arange(vectors.shape[0]), np.diff(vectors.indptr))
    squares = np.square(vectors.data, dtype=np.float64)
    norms = np.sqrt(np.bincount(rows, weights=squares, minlength=vectors.shape[0]))
    return np.divide(1.0, norms, out=np.zeros(vectors.shape[0]), where=norms > 0)


SUPPORT_KEYS_SEED = 0x5EED
"""Seed of the random 64-bit keys :func:`support_hashes` sums."""
SMALL_GRAM_ROWS = 256
"""Up to this many rows :func:`gram_matrix` uses one plain sparse product (cheaper than factoring)."""
_TORCH_MIN_FMAS = 1 << 24
DENSE_COLUMN_FRACTION = 0.1
"""Columns shared by more than this fraction of the rows go through a dense float32 BLAS product."""


@dataclass
class GramFactors:
    """``vectors @ vectors.T`` split as ``dense @ dense.T + sparse @ sparse.T`` off the diagonal, plus ``diag``.

    Built by :func:`gram_factors`; :meth:`rows` gives any block of rows of the Gram matrix without the others,
    which is how pairs are mined blockwise over many documents.
    """

    dense: np.ndarray  # [n, k] float32: popular columns
    sparse: sp.csr_matrix  # [n, m] float32: the other shared columns
    diag: np.ndarray  # [n] float64: the exact diagonal
    normalized: bool
    _sparse_t: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.diag)

    def rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the Gram matrix as a dense float32 array [stop - start, n]."""
        import torch

        if out is None:
            out = np.zeros((stop - start, self.n), dtype=np.float32)
        else:
            out.fill(0.0)
        if self.sparse.nnz:
            if self._sparse_t is None:
                self._sparse_t = sp.csr_matrix(self.sparse.T)
            (self.sparse[start:stop] @ self._sparse_t).toarray(out=out)
        if self.dense.shape[1]:
            block = self.dense[start:stop]
            if block.size * self.n < _TORCH_MIN_FMAS:  # small: numpy, no thread-pool start-up
                out += block @ self.dense.T
            else:
                torch.from_numpy(out).addmm_(torch.from_numpy(block), torch.from_numpy(self.dense).T)
        index = np.arange(start, stop)
        out[index - start, index] = self.diag[start:stop]
        np.clip(out, 0.0, 1.0 if self.normalized else None, out=out)
        return out


def gram_factors(
    vectors: sp.spmatrix, normalize: bool = False, dense_fraction: float = DENSE_COLUMN_FRACTION
) -> GramFactors:
    """Factor ``vectors @ vectors.T`` for non-negative sparse rows (see :class:`GramFactors`).

    Label vectors have few distinct column supports, so: columns with the same support and one value (every
    label-vector column: ``w_j``) merge into one column of weight ``sqrt(Σ w_j²)``; a column held by one row
    only adds to the diagonal; columns shared by more than ``dense_fraction`` of the rows go to a dense
    float32 matrix (BLAS), the rest to a sparse one. With ``normalize=True`` rows are scaled to unit norm.
    """
    csc = sp.csc_matrix(vectors, dtype=np.float64)
    csc.sum_duplicates()
    n = csc.shape[0]
    counts = np.diff(csc.indptr)
    rows, data = csc.indices.astype(np.int64), csc.data
    squares = data * data
    diag = np.bincount(rows, weights=squares, minlength=n)
    scale = np.ones(n)
    if normalize:
        np.divide(1.0, np.sqrt(diag), out=scale, where=diag > 0)
        scale[diag <= 0] = 0.0
        diag = np.where(diag > 0, 1.0, 0.0)
    shared = counts >= 2  # a column held by one row only adds to that row's diagonal
    counts = counts[shared]
    member = np.repeat(shared, np.diff(csc.indptr))
    rows, data, squares = rows[member], data[member], squares[member]
    empty = GramFactors(np.zeros((n, 0), np.float32), sp.csr_matrix((n, 0), dtype=np.float32), diag, normalize)
    if not len(counts):
        return empty
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    uniform = np.maximum.reduceat(data, starts) == np.minimum.reduceat(data, starts)
    # Same support ⇔ same hash of the column's rows; non-uniform columns stay alone.
    hashes = support_hashes(np.r_[starts, len(rows)], rows, n)
    group = np.empty(len(starts), dtype=np.int64)
    merge = np.flatnonzero(uniform)
    _, lead, inverse = np.unique(hashes[merge], return_index=True, return_inverse=True)
    group[merge] = inverse.ravel()
    alone = np.flatnonzero(~uniform)
    group[alone] = len(lead) + np.arange(len(alone))
    lead = np.r_[merge[lead], alone]
    weight = np.sqrt(np.bincount(group, weights=squares[starts]))  # sqrt(Σ w²) over merged columns
    picked = np.zeros(len(starts), dtype=bool)
    picked[lead] = True
    picked = np.repeat(picked, counts)
    g_rows = rows[picked]
    col_of = np.repeat(group, counts)[picked]
    values = np.where(np.repeat(uniform, counts)[picked], weight[col_of], data[picked]) * scale[g_rows]
    g_counts = counts[lead]
    dense = g_counts > max(2.0, dense_fraction * n)
    position = np.cumsum(dense) - 1
    is_dense = dense[col_of]
    popular = np.zeros((n, int(dense.sum())), dtype=np.float32)
    popular[g_rows[is_dense], position[col_of[is_dense]]] = values[is_dense]
    rare_cols = np.cumsum(~dense) - 1
    is_rare = ~is_dense
    rare = sp.csr_matrix(
        (values[is_rare].astype(np.float32), (g_rows[is_rare], rare_cols[col_of[is_rare]])),
        shape=(n, int((~dense).sum())),
    )
    return GramFactors(popular, rare, diag, normalize)


def gram_matrix(vectors: sp.spmatrix, normalize: bool = False) -> np.ndarray:
    """Dense ``vectors @ vectors.T`` (float32) for non-negative sparse rows, via :func:`gram_factors`.

    With ``normalize=True`` rows are scaled to unit norm first, so the result is their cosine (SimL), clipped
    to [0, 1].
    """
    if vectors.shape[0] <= SMALL_GRAM_ROWS:  # a training batch: one sparse product is cheapest
        csr = sp.csr_matrix(vectors, dtype=np.float64)
        if normalize:
            csr = sp.csr_matrix(sp.diags(inverse_row_norms(csr)) @ csr)
        gram = (csr @ csr.T).toarray().astype(np.float32)
        return np.clip(gram, 0.0, 1.0 if normalize else None, out=gram)
    factors = gram_factors(vectors, normalize=normalize)
    return factors.rows(0, factors.n)


def support_hashes(indptr: np.ndarray, indices: np.ndarray, size: int) -> np.ndarray:
    """A 64-bit hash per compressed row (CSR row or CSC column) of its set of ``indices`` (each < ``size``): equal
    sets give equal hashes; different sets collide with probability about 2⁻⁶⁴.

    The hash is the sum (mod 2⁶⁴) of a random key per index, seeded with :data:`SUPPORT_KEYS_SEED`, mixed with the
    set's size.
    """
    keys = np.random.default_rng(SUPPORT_KEYS_SEED).integers(0, 2**63, size, dtype=np.uint64)
    indptr = np.asarray(indptr, dtype=np.int64)
    lengths = np.diff(indptr)
    sums = np.zeros(len(lengths), dtype=np.uint64)
    filled = lengths > 0
    if filled.any():  # reduceat over the non-empty rows only: each sums up to the next one's start
        members = keys[np.asarray(indices)[indptr[0] : indptr[-1]]]
        sums[filled] = np.add.reduceat(members, indptr[:-1][filled] - indptr[0])
    return sums ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
