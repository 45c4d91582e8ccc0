#!/usr/bin/env python
"""A training run's repeat ``siml-agreement`` evaluation vs one from scratch: ``TaskEvaluator`` keeps the dev split,
SimL of its pairs and their ranks (``AgreementCache``); a one-off ``evaluate_model`` reads and builds them each time.

The encoder is a fixed random vector per document (no model), so the times are the work around the encoding. The
documents: ``--docs`` dev documents (and as many train ones) labelled with 1-6 descriptors drawn from the packaged
MeSH, written as one parquet file. A warm-up evaluation of a small file first pays the imports and the MeSH load, so
no timed call does. The metrics must be equal (the script says whether they are, and fails when not).

    python benchmarks/bench_agreement_cache.py --docs 3980
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np


class RandomEncoder:
    """A fixed random vector per text."""

    def __init__(self, dim: int = 64):
        self.dim = dim

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts])


def write_documents(folder: Path, docs: int, seed: int = 0) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.mesh.hierarchy import MeshHierarchy

    uis = sorted(MeshHierarchy.load().trees)
    rng = np.random.default_rng(seed)
    rows = 2 * docs
    table = pa.table(
        {
            "pmid": [str(i) for i in range(rows)],
            "title": [f"title {i}" for i in range(rows)],
            "abstract": [f"abstract {i} " + "words " * 100 for i in range(rows)],
            "mesh": [list(rng.choice(uis[:2000], size=rng.integers(1, 7), replace=False)) for _ in range(rows)],
            "label_kind": ["indexing"] * rows,
            "split": ["dev" if i % 2 else "train" for i in range(rows)],
        }
    )
    (folder / "documents").mkdir(parents=True)
    pq.write_table(table, folder / "documents" / "documents-00000.parquet")
    return folder


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=3980, help="dev documents")
    args = parser.parse_args()

    from biohicl.evaluation.evaluator import TaskEvaluator
    from biohicl.evaluation.runner import evaluate_model

    encoder = RandomEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        evaluate_model(encoder, [f"siml-agreement@{write_documents(Path(tmp) / 'warm-up', 50)}"])
        task = f"siml-agreement@{write_documents(Path(tmp) / 'dataset', args.docs)}"
        alone, record = timed(lambda: evaluate_model(encoder, [task]))
        evaluator = TaskEvaluator([task])
        first, _ = timed(lambda: evaluator(encoder))
        repeat, metrics = timed(lambda: evaluator(encoder))
        pairs = record["tasks"]["siml-agreement"]["num_queries"]
        kept = evaluator._agreement.nbytes
    spearman = metrics["siml-agreement_spearman"]
    equal = spearman == record["summary"]["siml-agreement/spearman"]
    print(f"{args.docs:,} dev documents, {pairs:,} pairs; SimL and ranks kept: {kept / 1e6:.1f} MB")
    print(f"one-off evaluate_model (no cache: the split read twice, SimL and its ranks built): {alone:.2f} s")
    print(f"TaskEvaluator, first evaluation: {first:.2f} s ({alone / first:.1f}x faster: the split read once)")
    print(f"TaskEvaluator, repeat evaluation: {repeat:.2f} s ({alone / repeat:.1f}x faster than one-off)")
    print(f"spearman equal: {'yes' if equal else 'NO'} ({spearman!r})")
    if not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
