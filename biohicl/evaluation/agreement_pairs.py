"""The SimE-SimL agreement's arithmetic over millions of pairs, in blocks: no n x n or pairs x 2 float64 temporary.

3,980 dev documents make 7.9M pairs; the whole-matrix computation held 66-80 bytes a pair at its peak (the n x n
product, float64 copies of the ranks, a stacked copy for ``corrcoef``, scipy's temporaries). Here an evaluation
holds SimE (8 bytes a pair), its sort order (8) and its ranks (4), plus blocks of a few MB:

- :func:`pair_cosines`: ``(emb @ emb.T)[mask]`` in row blocks of a multiple of 64 rows, equal to rounding (each
  cosine is the dot product the whole product computes, within a few ulps; bit-identical with the OpenBLAS it was
  written on, while a BLAS such as MKL rounds some of a block's otherwise; ``tests/test_agreement_blocks.py``);
- :func:`doubled_ranks`: ``2 * scipy.stats.rankdata`` (average ranks) as exact unsigned integers;
- :func:`rank_correlation_of`: the Pearson correlation of two such rankings from exact integer sums, correctly
  rounded, where ``np.corrcoef`` of the float ranks rounded its sums (1e-16 apart or less at 7.9M pairs);
- :func:`pearson_correlation`: ``scipy.stats.pearsonr(x, y).statistic`` from chunked centred sums (equal to 1e-12:
  scipy sums the whole vectors in another order).
"""

from __future__ import annotations

import math
import warnings
from decimal import Decimal, localcontext

import numpy as np

#: Rows of a block of pair cosines are a multiple of this: a BLAS kernel's unrolling divides it, so a block's edges
#: fall where the whole product's do (with OpenBLAS each cosine then keeps its bits; with MKL some differ by rounding).
ROW_MULTIPLE = 64
#: About this many row blocks (and chunks of pairs) per evaluation: blocks of ~1/16 of the pairs' bytes.
BLOCKS = 16

CONSTANT = "An input array is constant; the correlation coefficient is not defined."


def block_rows(n: int) -> int:
    """Rows of a block of :func:`pair_cosines` for ``n`` documents: about ``n / BLOCKS``, a multiple of
    :data:`ROW_MULTIPLE` (256 rows for 3,980 documents: blocks of 8 MB)."""
    return ROW_MULTIPLE * max(1, -(-n // (BLOCKS * ROW_MULTIPLE)))


def chunk_length(n: int) -> int:
    """Pairs per chunk of the rank and correlation passes: about ``n / (2 * BLOCKS)``, 4,096 to 1,048,576."""
    return min(1 << 20, max(1 << 12, -(-n // (2 * BLOCKS))))


def pair_cosines(emb: np.ndarray, mask: np.ndarray, rows: int | None = None) -> np.ndarray:
    """``(emb @ emb.T)[mask]`` for a ``mask`` of pairs ``i < j`` (upper triangle), row-major, float64, computed
    ``rows`` rows at a time (default :func:`block_rows`): ``emb[lo:hi] @ emb[lo:].T`` holds the block's pairs and
    no more (one block: the whole product, as before)."""
    n = len(emb)
    out = np.empty(int(np.count_nonzero(mask)), dtype=np.float64)
    step, at = rows or block_rows(n), 0
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        picked = (emb[lo:hi] @ emb[lo:].T)[mask[lo:hi, lo:]]
        out[at : at + len(picked)] = picked
        at += len(picked)
    return out


def doubled_ranks(values: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """``2 * scipy.stats.rankdata(values)`` (average ranks; ties compared with ``!=``, as rankdata does) as exact
    unsigned integers (``uint32`` while ``2 * len(values) < 2**32``): a tie group at sorted positions ``s..t-1``
    ranks ``s + 1 + t``. One sort order (8 bytes a value) and the ranks (4), then one pass over the sorted values
    ``chunk`` at a time (default :func:`chunk_length`); a tie group still open at a chunk's end gets its ``t`` when
    it ends (its positions kept as views of the sort order, no copy)."""
    n = len(values)
    dtype = np.uint32 if 2 * n < 2**32 else np.uint64
    out = np.empty(n, dtype=dtype)
    order = np.argsort(values)  # any sort: tied values share a rank whatever their order
    step = chunk or chunk_length(n)
    opened, last, pending = 0, None, []  # the tie group open at the previous chunk's end: start, value, positions
    for lo in range(0, n, step):
        idx = order[lo : lo + step]
        v = values[idx]
        m = len(v)
        new = np.empty(m + 1, dtype=bool)  # new[k]: a tie group starts at sorted position lo + k
        np.not_equal(v[1:], v[:-1], out=new[1:m])
        new[0] = lo == 0 or bool(v[0] != last)
        new[m] = lo + m == n or bool(v[-1] != values[order[lo + m]])
        positions = np.arange(lo, lo + m + 1)
        start = np.maximum.accumulate(np.where(new[:m], positions[:m], opened))
        stop = np.minimum.accumulate(np.where(new[1:], positions[1:], n + 1)[::-1])[::-1]
        if pending and stop[0] <= n:  # the open group ends in this chunk
            for view in pending:
                out[view] += int(stop[0])
            pending = []
        if not new[m]:  # the last group goes on into the next chunk: its end added then
            tail = max(int(start[-1]) - lo, 0)
            stop[tail:] = 0
            pending.append(idx[tail:])
        out[idx] = start + 1 + stop
        opened, last = int(start[-1]), v[-1]
    return out


def rank_correlation_of(a: np.ndarray, b: np.ndarray) -> float:
    """The Pearson correlation of two integer rankings (:func:`doubled_ranks`; doubling does not change it) from
    exact sums (int64 chunks, :func:`chunk_length` or shorter so as never to overflow, added as Python ints),
    correctly rounded; NaN when either is constant."""
    n = len(a)
    top = max(int(a.max()), int(b.max()), 1) if n else 1
    step = (2**63 - 1) // (top * top)  # a chunk this long sums its products within int64
    in_int64, step = step > 0, min(chunk_length(n), step) or chunk_length(n)
    sums = [0, 0, 0, 0, 0]  # a, b, a*a, b*b, a*b
    for lo in range(0, n, step):
        x, y = a[lo : lo + step].astype(np.int64), b[lo : lo + step].astype(np.int64)
        if in_int64:
            parts = (x.sum(), y.sum(), np.dot(x, x), np.dot(y, y), np.dot(x, y))
        else:  # values of 2**31.5 and more (over ~1.5e9 pairs): Python ints
            xs, ys = x.tolist(), y.tolist()
            parts = (sum(xs), sum(ys), sum(v * v for v in xs), sum(v * v for v in ys), sum(map(int.__mul__, xs, ys)))
        sums = [total + int(part) for total, part in zip(sums, parts, strict=True)]
    sa, sb, saa, sbb, sab = sums
    va, vb = n * saa - sa * sa, n * sbb - sb * sb
    if va <= 0 or vb <= 0:
        return float("nan")
    with localcontext() as context:
        context.prec = 50
        r = float(Decimal(n * sab - sa * sb) / (Decimal(va) * Decimal(vb)).sqrt())
    return max(-1.0, min(1.0, r))


def pearson_correlation(x: np.ndarray, y: np.ndarray, chunk: int | None = None) -> float:
    """``scipy.stats.pearsonr(x, y).statistic`` (float64 ``x``, any float ``y``; NaN and scipy's warning for a
    constant input, NaN for a NaN, exactly ±1 for two values) from the means and then the centred sums of squares
    and products ``chunk`` pairs at a time (default :func:`chunk_length`), each summed by numpy (pairwise), their
    chunk sums added exactly (``math.fsum``)."""
    from scipy.stats import ConstantInputWarning

    n = len(x)
    if n < 2:
        return float("nan")
    if bool((x[0] == x).all()) or bool((y[0] == y).all()):
        warnings.warn(ConstantInputWarning(CONSTANT), stacklevel=2)
        return float("nan")
    mx, my = float(np.mean(x)), float(np.mean(y, dtype=np.float64))
    step = chunk or chunk_length(n)
    sxx, syy, sxy = [], [], []
    product = np.empty(min(step, n))
    for lo in range(0, n, step):  # products summed by numpy (pairwise), not BLAS dot (threads woken per call)
        dx = x[lo : lo + step] - mx
        dy = np.subtract(y[lo : lo + step], my, dtype=np.float64)
        out = product[: len(dx)]
        sxx.append(float(np.multiply(dx, dx, out=out).sum()))
        syy.append(float(np.multiply(dy, dy, out=out).sum()))
        sxy.append(float(np.multiply(dx, dy, out=out).sum()))
    r = math.fsum(sxy) / (math.sqrt(math.fsum(sxx)) * math.sqrt(math.fsum(syy)))
    if math.isnan(r):
        return r
    r = max(-1.0, min(1.0, r))
    return float(round(r)) if n == 2 else r
