#!/usr/bin/env python
"""Peak memory of exact search on a one-shard index: positioned reads (``Index.iter_blocks``) against the memory-mapped
reader it replaced (safetensors ``safe_open`` slices, one map per shard), both measured in this run.

A synthetic float32 index of ``--rows`` unit rows × ``--dim`` in one shard is written to ``--dir`` (a scratch folder,
never committed), then each reader answers ``--queries`` queries with top-10 at each ``--chunk-size`` in a fresh
process. Reported: the peak growth (VmHWM after the search − RSS before it, the peak reset after a warm-up), that
growth / shard bytes and / chunk bytes, and the ratio old / new; the two readers' hits must be identical.

    python benchmarks/bench_exact_memory.py --dir bench/exact_mem --rows 300000
"""

from __future__ import annotations

import argparse
import os
import sys
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

MIB = 2**20


def mapped_search(queries, index, top_k: int, chunk_size: int):
    """Exact search as it was before positioned reads: each shard's blocks read through safetensors' memory map."""
    import torch
    from safetensors import safe_open

    from biohicl.search.layout import EMBEDDINGS_KEY
    from biohicl.topk import merge_top_k

    queries = torch.nn.functional.normalize(queries.float(), dim=-1)  # as search_embeddings does
    best_scores = torch.empty(queries.shape[0], 0)
    best_rows = torch.empty(queries.shape[0], 0, dtype=torch.long)
    with torch.inference_mode():
        for shard in index.manifest.shards:
            with safe_open(str(index.directory / shard.file), framework="pt") as handle:
                rows = handle.get_slice(EMBEDDINGS_KEY)
                for offset in range(0, shard.count, chunk_size):
                    block = rows[offset : min(offset + chunk_size, shard.count)].float()
                    scores = queries @ block.T
                    best_scores, best_rows = merge_top_k(
                        best_scores, best_rows, scores, shard.start + offset, top_k, stable=True
                    )
    return best_scores, best_rows


def measure(directory: str, reader: str, queries: int, chunk_size: int) -> dict:
    """In this (fresh) process: one search with ``reader``; its peak growth and its hits."""
    import torch

    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import load_index

    index = load_index(directory)
    q = torch.nn.functional.normalize(
        torch.randn(queries, index.dim, generator=torch.Generator().manual_seed(1)), dim=1
    )
    small = torch.nn.functional.normalize(torch.randn(2, index.dim), dim=1)
    _ = small @ small.T  # warm-up: torch's kernels and allocator before the peak is reset
    before = rss()
    peak_reset = reset_peak()
    if reader == "mmap":
        scores, rows = mapped_search(q, index, 10, chunk_size)
    else:
        scores, rows = search_embeddings(q, index, top_k=10, chunk_size=chunk_size)
    after = rss()
    growth = after["VmHWM"] - before["VmRSS"] if peak_reset else None
    return {"growth": growth, "rows": rows.tolist(), "scores": scores.tolist()}


def in_fresh_process(directory: Path, reader: str, queries: int, chunk_size: int) -> dict:
    return measure_in_fresh_process(__file__, [str(directory), reader, queries, chunk_size], reader)


def main() -> None:
    if answered_measure(measure):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, nargs="+", default=[8192, 65536])
    args = parser.parse_args()
    require_peak_rss()
    directory = Path(args.dir)
    if not (directory / "manifest.json").is_file():
        write_synthetic(directory, args.rows, args.dim, shard_size=args.rows)
    shard_bytes = os.path.getsize(directory / "shard-00000.safetensors")
    load = os.getloadavg()[0]
    print(
        f"# one {args.rows:,} × {args.dim} float32 shard ({shard_bytes / MIB:.1f} MiB), {args.queries} queries, top-10"
    )
    print(f"# load avg {load:.1f} on {os.cpu_count()} CPUs; peak growth = VmHWM after the search − RSS before it")
    for chunk_size in args.chunk_size:
        chunk_bytes = min(chunk_size, args.rows) * args.dim * 4
        old = in_fresh_process(directory, "mmap", args.queries, chunk_size)
        new = in_fresh_process(directory, "pread", args.queries, chunk_size)
        same = old["rows"] == new["rows"] and old["scores"] == new["scores"]
        for name, result in (("mmap (before)", old), ("pread (after)", new)):
            growth = result["growth"]
            print(
                f"chunk {chunk_size:>6} ({chunk_bytes / MIB:5.1f} MiB)  {name}: peak growth {growth / MIB:7.1f} MiB = "
                f"{growth / shard_bytes:.2f}× the shard, {growth / chunk_bytes:.2f}× a chunk"
            )
        ratio = old["growth"] / new["growth"] if new["growth"] else float("inf")
        print(f"chunk {chunk_size:>6}  ratio mmap / pread peak growth: {ratio:.1f}×; hits identical: {same}")


if __name__ == "__main__":
    main()
