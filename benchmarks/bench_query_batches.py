#!/usr/bin/env python
"""Peak memory and time of a large batch of queries: searched in query batches (now: the exact scan's
``EXACT_QUERY_BATCH``, the compressed search's ``QUERY_BATCH``) against all at once (before:
exact search scored every query against each block; the int8 rescoring scored every query against every query's
candidates), both measured in this run, each in a fresh process.

Two synthetic unit-row indexes are written to ``--dir`` (a scratch folder, never committed): ``--exact-rows`` × 384
in one shard for the exact scan, ``--int8-rows`` × 32 with an int8 form for the compressed search. Reported per
form: peak RSS growth (VmHWM after the search − RSS before it, the peak reset after a warm-up), seconds, and the
ratio before / now; the two ways' hits must be identical.

    python benchmarks/bench_query_batches.py --dir bench/query_batches
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compressed_search import (
    answered_measure,
    measure_in_fresh_process,
    require_peak_rss,
    reset_peak,
    rss,
    write_synthetic,
)

from biohicl.search.compressed import QUERY_BATCH
from biohicl.search.exact import EXACT_QUERY_BATCH

MIB = 2**20
BATCHES = {"exact": EXACT_QUERY_BATCH, "int8": QUERY_BATCH}


def old_int8_search(searcher, queries, top_k: int):
    """The int8 search as it was: stage 1 over all queries at once, then every query scored against the union of
    every query's candidates (``q @ vectors.T``, quadratic in the number of queries)."""
    import torch

    from biohicl.topk import sort_top_k

    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    pool = searcher.default_candidates(top_k)
    _, rows = searcher.approximate_top(q, pool)
    unique, inverse = torch.unique(rows, return_inverse=True)
    vectors = torch.from_numpy(searcher.float_rows.take(unique.numpy()))
    scores, rows = sort_top_k((q @ vectors.T).gather(1, inverse), rows)
    return scores[:, :top_k], rows[:, :top_k]


def measure(directory: str, form: str, way: str, queries: int) -> dict:
    """In this (fresh) process: one search of ``queries`` queries, ``way`` = old | new; its peak growth, time, hits."""
    import torch

    from biohicl.search.compressed import CompressedIndex
    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import load_index

    index = load_index(directory) if form == "exact" else CompressedIndex.load(directory, "int8")
    q = torch.randn(queries, index.dim, generator=torch.Generator().manual_seed(1))
    small = torch.nn.functional.normalize(torch.randn(2, index.dim), dim=1)
    _ = small @ small.T  # warm-up: torch's kernels and allocator before the peak is reset
    before = rss()
    peak_reset = reset_peak()
    start = time.perf_counter()
    if form == "exact":  # before: one query batch of every query
        _, rows = search_embeddings(q, index, top_k=10, **({"query_batch": queries} if way == "old" else {}))
    elif way == "old":
        _, rows = old_int8_search(index, q, 10)
    else:
        _, rows = index.search_embeddings(q, top_k=10)
    seconds = time.perf_counter() - start
    growth = rss()["VmHWM"] - before["VmRSS"] if peak_reset else None
    return {"growth": growth, "seconds": seconds, "rows": rows.tolist()}


def in_fresh_process(directory: Path, form: str, way: str, queries: int) -> dict:
    return measure_in_fresh_process(__file__, [str(directory), form, way, queries], f"{form} {way}")


def main() -> None:
    if answered_measure(measure):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--exact-rows", type=int, default=50_000)
    parser.add_argument("--exact-queries", type=int, default=3_000)
    parser.add_argument("--int8-rows", type=int, default=100_000)
    parser.add_argument("--int8-queries", type=int, nargs="+", default=[500, 1_500])
    args = parser.parse_args()
    require_peak_rss()
    from biohicl.search.compression import available_kinds, compress_index

    exact_dir, int8_dir = Path(args.dir) / f"exact-{args.exact_rows}", Path(args.dir) / f"int8-{args.int8_rows}"
    if not (exact_dir / "manifest.json").is_file():
        write_synthetic(exact_dir, args.exact_rows, 384, shard_size=args.exact_rows)
    if not (int8_dir / "manifest.json").is_file():
        write_synthetic(int8_dir, args.int8_rows, 32, shard_size=50_000)
    if "int8" not in available_kinds(int8_dir):
        compress_index(int8_dir, "int8")
    print(f"# load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; peak growth = VmHWM after − RSS before")
    runs = [("exact", exact_dir, f"{args.exact_rows:,} × 384", args.exact_queries)]
    runs += [("int8", int8_dir, f"{args.int8_rows:,} × 32", n) for n in args.int8_queries]
    for form, directory, size, queries in runs:
        old = in_fresh_process(directory, form, "old", queries)
        new = in_fresh_process(directory, form, "new", queries)
        same = "identical hits" if old["rows"] == new["rows"] else "HITS DIFFER"
        print(
            f"{form:<5} {size}, {queries:,} queries, top-10: all at once {old['growth'] / MIB:7.1f} MiB "
            f"{old['seconds']:5.1f} s | {BATCHES[form]} at a time {new['growth'] / MIB:7.1f} MiB "
            f"{new['seconds']:5.1f} s | "
            f"before / now: memory {old['growth'] / max(new['growth'], 1):.1f}×, time "
            f"{old['seconds'] / new['seconds']:.2f}×; {same}"
        )


if __name__ == "__main__":
    main()
