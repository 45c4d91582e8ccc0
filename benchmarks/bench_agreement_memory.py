#!/usr/bin/env python
"""A repeat ``siml-agreement`` evaluation's peak memory and time: SimE in row blocks and one statistic at a time
(``siml_alignment`` now) vs the whole-matrix computation it replaced (copied here as the baseline), in one run.

A training run's evaluator keeps the dev split, SimL of its pairs and their ranks (``AgreementCache``), so a repeat
evaluation encodes, computes SimE over the pairs and correlates: that is what is measured, both ways, on the same
kept pairs. The encoder is a fixed random 768-d vector per document (no model), so the times are the work around
the encoding. Peak: the growth of the process's ``VmHWM`` over its ``VmRSS`` once ``/proc/self/clear_refs`` reset it
(Linux), and numpy's own peak in bytes a pair (``tracemalloc``, in a separate call). The metrics must agree: counts
exactly, the means and the two correlations to 1e-12 (the script says whether the means are the same bits, as they
were with OpenBLAS, or by how much they differ; a BLAS may round a block's cosines otherwise than the whole
product's; it fails beyond 1e-12).

    python benchmarks/bench_agreement_memory.py                  # 3,980 synthetic dev documents (7.9M pairs)
    python benchmarks/bench_agreement_memory.py --docs 1000      # ... 1,000 of them
    python benchmarks/bench_agreement_memory.py /path/to/build   # a `biohicl build-dataset` folder's dev split
"""

from __future__ import annotations

import argparse
import math
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class RandomEncoder:
    """A fixed random 768-d vector per document (float32, as a model gives them)."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.random.default_rng(len(texts)).standard_normal((len(texts), 768)).astype(np.float32)


def whole_matrix(model: Any, texts: list[str], pairs: Any, beta: float = 0.3) -> dict:
    """The computation before the row blocks (``siml_alignment`` with kept pairs, at commit fea472a): the n x n
    float64 product, scipy's ``rankdata`` and ``pearsonr``, ``np.corrcoef`` of the stacked float64 ranks."""
    from scipy.stats import pearsonr, rankdata

    from biohicl.mesh.pair_rules import ZERO_TOLERANCE

    encoded = model.encode([texts[i] for i in pairs.keep])
    emb = np.asarray(encoded, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    s_l, s_e = pairs.siml, (emb @ emb.T)[pairs.mask]
    positive, zero = s_l > beta, s_l <= ZERO_TOLERANCE
    ranks = pairs.doubled_ranks().astype(np.float64) * 0.5
    return {
        "documents": len(pairs.keep),
        "pairs": len(s_l),
        "spearman": float(np.corrcoef(np.column_stack((rankdata(s_e), ranks)), rowvar=False)[1, 0]),
        "pearson": float(pearsonr(s_e, s_l).statistic),
        "mse_all_pairs": float(np.mean((s_e - s_l) ** 2)),
        "sime_positive_mean": float(s_e[positive].mean()) if positive.any() else float("nan"),
        "sime_zero_mean": float(s_e[zero].mean()) if zero.any() else float("nan"),
        "positive_pairs": int(positive.sum()),
        "zero_pairs": int(zero.sum()),
        "cross_kind_pairs_skipped": pairs.cross,
    }


def status(key: str) -> float:
    """``/proc/self/status`` field ``key`` in MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith(key))


def measured(function: Callable[[], dict]) -> tuple[float, float, float, dict]:
    """(wall s, CPU s, peak growth MiB, result) of one call."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # VmHWM := VmRSS
    before, wall, cpu = status("VmRSS:"), time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, status("VmHWM:") - before, result


def numpy_peak(function: Callable[[], dict], pairs: int) -> float:
    """Peak bytes a pair numpy allocated during one call (``tracemalloc``)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / pairs
    finally:
        tracemalloc.stop()


def same(a: Any, b: Any) -> bool:
    """Equal, or both NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def synthetic_labels(docs: int, seed: int = 0) -> list[list[str]]:
    """``docs`` label sets of 1-6 descriptors of the packaged MeSH (as ``bench_agreement_cache.py`` draws them)."""
    from biohicl.mesh.hierarchy import MeshHierarchy

    uis = sorted(MeshHierarchy.load().trees)
    rng = np.random.default_rng(seed)
    return [list(rng.choice(uis[:2000], size=rng.integers(1, 7), replace=False)) for _ in range(docs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", help="a built dataset folder (default: synthetic labels)")
    parser.add_argument("--docs", type=int, default=3980, help="synthetic dev documents")
    parser.add_argument("--repeat", type=int, default=2, help="timed calls of each, alternated")
    args = parser.parse_args()

    from biohicl.data.documents import split_documents_with_kinds
    from biohicl.evaluation.agreement import siml_alignment, siml_pairs
    from biohicl.mesh.hierarchy import MeshHierarchy

    mesh = MeshHierarchy.load()
    if args.dataset:
        texts, labels, _, kinds = split_documents_with_kinds(args.dataset, "dev")
    else:
        labels, kinds = synthetic_labels(args.docs), None
        texts = [f"document {i}" for i in range(len(labels))]
    pairs = siml_pairs(labels, mesh, kinds)
    pairs.doubled_ranks()  # kept, as a training run's evaluator keeps them
    model, count = RandomEncoder(), len(pairs.siml)
    ways = {
        "whole matrix (before)": lambda: whole_matrix(model, texts, pairs),
        "row blocks (now)     ": lambda: siml_alignment(model, texts, labels, mesh, pairs=pairs),
    }
    results = {name: way() for name, way in ways.items()}  # warm-up: imports, BLAS threads
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, way in ways.items():
            *figure, _ = measured(way)
            figures[name].append(tuple(figure))
    print(
        f"{len(pairs.keep):,} dev documents, {count:,} pairs (SimL and its ranks kept: {pairs.nbytes / 2**20:.0f} MiB)"
    )
    print(f"load average at the start of the timed calls: {load:.1f}; best of {args.repeat}")
    best = {}
    for name, way in ways.items():
        wall, cpu, peak = (min(f[i] for f in figures[name]) for i in range(3))
        best[name] = wall, peak, numpy_peak(way, count)
        print(f"{name}: {wall:.2f} s (CPU {cpu:.2f} s), peak +{peak:.0f} MiB (numpy {best[name][2]:.1f} bytes a pair)")
    (old_wall, old_peak, old_numpy), (new_wall, new_peak, new_numpy) = best.values()
    rss = f"{old_peak / new_peak:.1f}x less" if new_peak >= 1 else "not measurable (pages freed before were reused)"
    print(f"-> peak growth {rss}; numpy's peak {old_numpy / new_numpy:.1f}x less; {old_wall / new_wall:.1f}x the speed")
    old, new = results.values()
    correlations = ("spearman", "pearson")
    means = [key for key in new if isinstance(new[key], float) and key not in correlations]
    counts = [key for key in new if key not in means and key not in correlations]
    gaps = {key: 0.0 if same(new[key], old[key]) else abs(new[key] - old[key]) for key in (*means, *correlations)}
    # a tie of SimE a BLAS rounds apart in a block (OpenBLAS's AVX-512 kernels, MKL) moves the Spearman by ~1e-9
    tolerance = {key: 1e-7 if key == "spearman" else 1e-12 for key in gaps}
    differ = [key for key in counts if new[key] != old[key]] + [key for key in gaps if not gaps[key] <= tolerance[key]]
    largest = max(gaps[key] for key in means)
    agree = "equal bit for bit" if largest == 0 else f"equal to rounding (largest |Δ| {largest:.1e})"
    print(
        f"metrics: counts and means {agree if not differ else 'DIFFER: ' + ', '.join(differ)}; "
        + ", ".join(f"|Δ {key}| {gaps[key]:.1e}" for key in correlations)
    )
    if differ:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
