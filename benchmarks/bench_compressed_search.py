#!/usr/bin/env python
"""Compressed search: recall against exact search on real embeddings, resident memory, and latency at 10M rows.

``real``: an index of real abstracts (``benchmarks/real_corpus.py`` + ``biohicl index``), SciFact claims as
queries (encoded with the index's model): recall@10 of int8 / binary search (with exact rescoring) against the
exact float32 top-10, and the resident memory of each form, each measured in a fresh process (RSS growth from
opening the index and answering a batch of queries, next to the matrix bytes, and the peak: VmHWM).

``synthetic``: ``--rows`` random unit rows × ``--dim`` written as float32 shards on disk (never committed: give a
``/tmp`` folder), compressed, then per form in a fresh process: resident and peak memory (VmHWM), query latency
for 1 and 64 queries, and the time of one memory copy of the compressed matrix (the bandwidth floor; target: search
within 2×); and the exact scan's peak memory, for comparison.

    python benchmarks/bench_compressed_search.py real --index bench/idx
    python benchmarks/bench_compressed_search.py synthetic --dir bench/synth --rows 10000000
    python benchmarks/bench_compressed_search.py synthetic --dir bench/tiny --rows 20000 --dim 64   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss() -> dict[str, int]:
    """Resident memory of this process in bytes: total, anonymous (heap) and file-backed (mapped files)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak() -> bool:
    """Set this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mapped_rss(directory: str) -> int:
    """Resident bytes of this process's mappings of files under ``directory`` (the memory-mapped shards)."""
    total, inside = 0, False
    root = str(Path(directory).resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            inside = len(parts) >= 6 and parts[5].startswith(root)
        elif inside and parts and parts[0] == "Rss:":
            total += int(parts[1]) * 1024
    return total


def warm_up(dim: int) -> None:
    """Run every code path once on a tiny matrix, so library pages and allocator pools are not counted."""
    import numpy as np
    import torch

    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import Index

    q = torch.nn.functional.normalize(torch.randn(64, dim), dim=-1)
    search_embeddings(q, Index.from_embeddings(torch.randn(256, dim)), top_k=10)
    codes = torch.randint(-127, 128, (4096, dim), dtype=torch.int8)
    torch._int_mm(torch.zeros(64, dim, dtype=torch.int8), codes.T).float().topk(40, dim=1)
    torch.unique(torch.randint(0, 100, (64, 40)), return_inverse=True)
    np.unpackbits(np.zeros((4096, dim // 8), np.uint8), axis=1)


def mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


# --------------------------------------------------------------------------------------------- one process per form
def measure(directory: str, form: str, queries_file: str | None, threads: int, latency: bool) -> dict:
    """In this (fresh) process: open ``form`` (float32 | exact | int8 | binary), answer queries, report memory and
    times (float32: the whole matrix loaded; exact: the streaming exact scan over the shards)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from biohicl.search.compressed import CompressedIndex
    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import Index
    from biohicl.search.layout import IndexManifest

    warm_up(IndexManifest.load(directory).dim)
    peak_reset = reset_peak()  # the peak from here on: opening the index and the first batch of queries
    before = rss()
    start = time.perf_counter()
    if form == "float32":
        matrix = Index.load(directory).embeddings()  # the whole float32 matrix in RAM (what compression avoids)
        index = Index.from_embeddings(matrix)
        nbytes = matrix.numel() * 4
        del matrix
    elif form == "exact":
        index = Index.load(directory)  # rows stay on disk: search_embeddings streams them
        nbytes = 0
    else:
        index = CompressedIndex.load(directory, form)
        nbytes = index.nbytes
    load_s = time.perf_counter() - start
    dim = index.dim
    if queries_file:
        queries = torch.from_numpy(np.load(queries_file))
    else:
        queries = torch.nn.functional.normalize(
            torch.randn(64, dim, generator=torch.Generator().manual_seed(1)), dim=-1
        )

    def run(q):
        if form in ("float32", "exact"):
            return search_embeddings(q, index, top_k=10)
        return index.search_embeddings(q, top_k=10)

    result: dict = {"form": form, "nbytes": nbytes, "load_s": load_s, "rows": len(index)}
    _, rows = run(queries)
    result["rows_found"] = rows.tolist()
    after = rss()
    result.update({f"grow_{k}": after[k] - before[k] for k in ("VmRSS", "RssAnon", "RssFile")})
    result["peak"] = after["VmHWM"]  # the whole process's peak (libraries included)
    result["peak_growth"] = after["VmHWM"] - before["VmRSS"] if peak_reset else None
    result["index_files_rss"] = mapped_rss(directory)  # float32 pages the rescoring touched (page cache, shared)
    result["index_rss"] = result["grow_RssAnon"] + result["index_files_rss"]
    if latency and form not in ("float32", "exact"):
        for n in (1, 64):
            times = []
            for _ in range(2):
                start = time.perf_counter()
                run(queries[:n])
                times.append(time.perf_counter() - start)
            result[f"latency_{n}"] = min(times)
        copies = []
        for _ in range(5):  # best of 5: a single small copy is dominated by allocation and timer noise
            start = time.perf_counter()
            copy = index.codes.clone()
            copies.append(time.perf_counter() - start)
            del copy
        result["copy_s"] = min(copies)
    return result


def measure_in_fresh_process(script: str, arguments: list, what: str) -> dict:
    """``script``'s ``measure(*arguments)`` run in a fresh process (``script _measure JSON``, which prints its result
    as the last line): the peak RSS is that search's alone. The benchmarks of this folder share it."""
    out = subprocess.run([sys.executable, script, "_measure", json.dumps(arguments)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measuring {what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def answered_measure(measure) -> bool:
    """In the fresh process :func:`measure_in_fresh_process` starts (``script _measure JSON``): print
    ``measure(*arguments)`` as JSON and say so (the caller's ``main`` then returns); False in any other process."""
    if len(sys.argv) == 3 and sys.argv[1] == "_measure":
        print(json.dumps(measure(*json.loads(sys.argv[2]))))
        return True
    return False


def require_peak_rss() -> None:
    """Exit with one line where Linux's peak RSS cannot be read and reset (``/proc/self/clear_refs``)."""
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads Linux's peak RSS (/proc/self/status VmHWM, reset via clear_refs)")


def in_fresh_process(directory: Path, form: str, queries_file: str | None, threads: int, latency: bool) -> dict:
    return measure_in_fresh_process(__file__, [str(directory), form, queries_file, threads, latency], form)


# --------------------------------------------------------------------------------------------- real embeddings
def bench_real(args) -> None:
    import numpy as np

    from biohicl.search.compression import available_kinds, compress_index
    from biohicl.search.layout import IndexManifest

    directory = Path(args.index)
    manifest = IndexManifest.load(directory)
    for kind in ("int8", "binary"):
        if kind not in available_kinds(directory):
            start = time.perf_counter()
            compress_index(directory, kind)
            print(f"compressed to {kind} in {time.perf_counter() - start:.1f} s")
    queries_file = directory.parent / f"{directory.name}-scifact-queries.npy"
    if not queries_file.is_file():
        from biohicl.evaluation.retrieval import load_beir
        from biohicl.models.onnx_backend import load_inference_model, load_onnx_encoder
        from biohicl.settings import data_path

        model = load_inference_model(manifest.model, manifest.model_revision, device="cpu")
        encoder = load_onnx_encoder(model) if args.encoder == "onnx" else model
        queries = list(load_beir(data_path("scifact"), "train").queries.values())
        texts = [q for q in queries]
        emb = encoder.encode(texts, batch_size=64, kind="query", show_progress_bar=False)
        np.save(queries_file, np.asarray(emb, dtype=np.float32))
    n_queries = len(np.load(queries_file))
    print(
        f"# bench_compressed_search.py real, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load avg "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"index {directory}: {manifest.count:,} real abstracts × {manifest.dim} ({manifest.model}); "
        f"{n_queries:,} SciFact claims as queries; top-10"
    )
    results = {
        form: in_fresh_process(directory, form, str(queries_file), args.threads, False)
        for form in ("float32", "int8", "binary")
    }
    exact = results["float32"]["rows_found"]
    for form in ("float32", "int8", "binary"):
        r = results[form]
        recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(r["rows_found"], exact, strict=True)])
        print(
            f"  {form:<8} matrix {mib(r['nbytes']):>10}   index RSS {mib(r['index_rss']):>10} (anon growth "
            f"{mib(r['grow_RssAnon'])} + mapped shard pages {mib(r['index_files_rss'])})   peak RSS "
            f"{mib(r['peak'])} (growth {mib(r['peak_growth'])})   recall@10 vs exact "
            f"{recall:.4f}"
        )
    base = results["float32"]
    for form in ("int8", "binary"):
        r = results[form]
        print(
            f"ratio float32 / {form}: matrix {base['nbytes'] / r['nbytes']:.1f}×, index RSS "
            f"{base['index_rss'] / max(r['index_rss'], 1):.1f}×"
        )


# --------------------------------------------------------------------------------------------- synthetic, on disk
def write_synthetic(directory: Path, rows: int, dim: int, shard_size: int) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from biohicl.search.layout import (
        EMBEDDINGS_KEY,
        INDEX_FORMAT,
        IndexManifest,
        ShardInfo,
        docs_name,
        ids_digest,
        shard_name,
    )

    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    centre = torch.randn(dim, generator=generator) * 0.05  # real embeddings share an offset; keep one
    shards, start = [], 0
    for number, first in enumerate(range(0, rows, shard_size)):
        count = min(shard_size, rows - first)
        block = torch.randn(count, dim, generator=generator).mul_(0.05).add_(centre)
        block = torch.nn.functional.normalize(block, dim=-1)
        ids = [str(first + i) for i in range(count)]
        (directory / docs_name(number)).write_text("\n".join(json.dumps({"id": i}) for i in ids) + "\n")
        digest = ids_digest(ids)
        meta = {"count": str(count), "ids_sha256": digest, "shard": str(number), "format": INDEX_FORMAT}
        save_file({EMBEDDINGS_KEY: block}, str(directory / shard_name(number)), metadata=meta)
        shards.append(ShardInfo(number, shard_name(number), docs_name(number), start, count, digest))
        start += count
        del block
    IndexManifest(
        model="synthetic",
        model_revision=None,
        dtype="float32",
        dim=dim,
        count=start,
        shards=shards,
        shard_size=shard_size,
    ).save(directory)
    _ = np  # (numpy imported for symmetry with the reader side)


MIN_COPY_S = 1e-3  # below this, a copy time is noise and a ratio against it means nothing


def side_of(ratio: float) -> str:
    """float32 size / our size as words: '3.8× below' (smaller), '1.4× above' (larger: ratio < 1)."""
    return f"{ratio:.1f}× below" if ratio >= 1 else f"{1 / ratio:.1f}× above"


def bench_synthetic(args) -> None:
    from biohicl.search.compression import available_kinds, compress_index
    from biohicl.search.layout import IndexManifest

    directory = Path(args.dir)
    if (directory / "manifest.json").is_file():
        existing = IndexManifest.load(directory)
        if (existing.count, existing.dim) != (args.rows, args.dim):
            raise SystemExit(
                f"bench_compressed_search.py: {directory} already holds {existing.count:,} × {existing.dim} rows, "
                f"not --rows {args.rows:,} --dim {args.dim}: use another --dir or the same sizes"
            )
    else:
        start = time.perf_counter()
        write_synthetic(directory, args.rows, args.dim, args.shard_size)
        print(f"wrote {args.rows:,} × {args.dim} float32 rows to {directory} in {time.perf_counter() - start:.0f} s")
    manifest = IndexManifest.load(directory)
    for kind in ("int8", "binary"):
        if kind not in available_kinds(directory):
            start = time.perf_counter()
            compress_index(directory, kind)
            print(f"compressed to {kind} in {time.perf_counter() - start:.0f} s")
    print(
        f"# bench_compressed_search.py synthetic, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load avg "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {args.threads} threads"
    )
    float_bytes = manifest.count * manifest.dim * 4
    print(
        f"{manifest.count:,} rows × {manifest.dim}; float32 matrix would be {mib(float_bytes)} "
        f"(on disk, read per candidate row for rescoring only)"
    )
    exact = in_fresh_process(directory, "exact", None, args.threads, False)
    print(
        f"  exact scan (streams the float32 shards): peak RSS (VmHWM) {mib(exact['peak'])}, growth through the "
        f"first 64 queries {mib(exact['peak_growth'])}"
    )
    for kind in ("int8", "binary"):
        r = in_fresh_process(directory, kind, None, args.threads, True)
        print(
            f"  {kind:<7} matrix {mib(r['nbytes'])} ({float_bytes / r['nbytes']:.0f}× below float32), load "
            f"{r['load_s']:.1f} s, index RSS {mib(r['index_rss'])} (anon growth {mib(r['grow_RssAnon'])} + mapped "
            f"shard pages {mib(r['index_files_rss'])}) → {side_of(float_bytes / r['index_rss'])} float32"
        )
        print(
            f"          peak RSS (VmHWM) {mib(r['peak'])}, growth from opening the index through the first 64 "
            f"queries {mib(r['peak_growth'])}"
        )
        if r["copy_s"] >= MIN_COPY_S:
            versus = (
                f"→ search / copy: {r['latency_1'] / r['copy_s']:.2f}× (1 query), "
                f"{r['latency_64'] / r['copy_s']:.2f}× (64 queries)"
            )
        else:
            versus = "→ search / copy not shown: a copy under 1 ms is timer and allocation noise"
        print(
            f"          latency 1 query {r['latency_1'] * 1000:,.0f} ms, 64 queries {r['latency_64'] * 1000:,.0f} ms "
            f"({r['latency_64'] / 64 * 1000:,.1f} ms/query); memory copy of the matrix (best of 5) "
            f"{r['copy_s'] * 1000:,.2f} ms {versus}"
        )


def main() -> None:
    if answered_measure(measure):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    real = sub.add_parser("real")
    real.add_argument("--index", required=True)
    real.add_argument("--encoder", default="onnx", choices=["onnx", "torch"], help="to encode the queries")
    real.add_argument("--threads", type=int, default=2)
    synthetic = sub.add_parser("synthetic")
    synthetic.add_argument("--dir", required=True)
    synthetic.add_argument("--rows", type=int, default=10_000_000)
    synthetic.add_argument("--dim", type=int, default=384)
    synthetic.add_argument("--shard-size", type=int, default=1_000_000)
    synthetic.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.mode is None:  # `make bench`: a small synthetic run in a temporary folder
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="bench-compressed-")
        args = parser.parse_args(["synthetic", "--dir", folder, "--rows", "200000", "--shard-size", "50000"])
        try:
            bench_synthetic(args)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    bench_real(args) if args.mode == "real" else bench_synthetic(args)


if __name__ == "__main__":
    main()
