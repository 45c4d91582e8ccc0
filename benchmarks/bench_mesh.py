"""MeSH benchmarks: SimL matrix for 1,024 real documents, label vectors and top-k pair mining for 80,000.

Run: ``python benchmarks/bench_mesh.py`` (needs ``BIOHICL_DATA_DIR``: the MeSH-indexed inputs of
``biohicl.data.build.default_inputs()``, whose per-source counts it prints; records are not deduplicated). Every ratio
is against a baseline measured in the same run. Targets (issue #2): similarity_matrix(1,024) <= 5 ms and >= 100x
a per-pair Python set implementation; label vectors for 80,000 documents <= 10 s; top-k mining for 80,000
documents <= 5 min, peak memory reported.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import statistics
import time

import numpy as np


def _real_label_sets() -> tuple[list[list[str]], dict[str, int]]:
    """Label sets of every record ``default_inputs()`` reads today, and how many came from each source."""
    from biohicl.data.build import default_inputs
    from biohicl.data.sources import read_records
    from biohicl.mesh.hierarchy import MeshHierarchy

    logging.disable(logging.WARNING)
    mesh = MeshHierarchy.load()
    sets, counts = [], {}
    for source, files in default_inputs():
        name = f"PubMed exports ({len(files)} files)" if source == "auto" else source
        before = len(sets)
        sets.extend(list(r.mesh) for r in read_records(source, files, mesh))
        counts[name] = counts.get(name, 0) + len(sets) - before
    return sets, counts


def _status_mib(key: str) -> float:
    """``VmRSS``/``VmHWM`` of this process from /proc/self/status, in MiB. VmHWM is reset at exec; ``ru_maxrss``
    is not (a child inherits its parent's peak), so it would floor a spawned child's peak at the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def _ratio_words(ratio: float) -> str:
    """'2.0x slower' for a ratio > 1 of (other / ours) time, '2.0x faster' (1/ratio) below 1."""
    return f"{ratio:.1f}x slower" if ratio >= 1 else f"{1 / ratio:.1f}x faster"


def _timeit(fn, repeat: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) time in seconds; CPU time shows the work when cores are shared."""
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), min(times), statistics.median(cpu)


def python_set_siml_matrix(mesh, docs: list[list[str]]) -> np.ndarray:
    """Baseline: per-pair SimL with Python sets (node sets and norms precomputed once per document)."""
    nodes = [mesh.label_nodes(d) for d in docs]
    w2 = {node: math.log(node.count(".") + 2) ** 2 for s in nodes for node in s}
    norms = [math.sqrt(sum(w2[x] for x in s)) for s in nodes]
    n = len(docs)
    out = np.zeros((n, n))
    for i in range(n):
        out[i, i] = 1.0 if nodes[i] else 0.0
        for j in range(i + 1, n):
            if norms[i] and norms[j]:
                out[i, j] = out[j, i] = sum(w2[x] for x in nodes[i] & nodes[j]) / (norms[i] * norms[j])
    return out


def bench_similarity_matrix(mesh, docs: list[list[str]], repeat: int) -> None:
    import torch

    print(f"## similarity_matrix: {len(docs):,} real documents (mean {np.mean([len(d) for d in docs]):.2f} labels)")
    fast = mesh.similarity_matrix(docs)  # warm-up: builds the descriptor → node table
    median, best, cpu = _timeit(lambda: mesh.similarity_matrix(docs), repeat)
    print(
        f"biohicl similarity_matrix: median {median * 1e3:.2f} ms, best {best * 1e3:.2f} ms, "
        f"CPU {cpu * 1e3:.2f} ms ({repeat} runs)"
    )

    def plain_sparse():  # the first implementation: one scipy sparse product of unit rows
        vectors = mesh.normalized_label_vectors(docs)
        return torch.from_numpy(np.clip((vectors @ vectors.T).toarray(), 0, 1)).float()

    sparse_median, _, sparse_cpu = _timeit(plain_sparse, max(3, repeat // 5))
    print(
        f"plain scipy sparse product: median {sparse_median * 1e3:.2f} ms, CPU {sparse_cpu * 1e3:.2f} ms "
        f"-> {_ratio_words(sparse_median / median)} (wall), {_ratio_words(sparse_cpu / cpu)} (CPU)"
    )
    start, start_cpu = time.perf_counter(), time.process_time()
    reference = python_set_siml_matrix(mesh, docs)
    python_seconds, python_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(
        f"per-pair Python sets ({len(docs) * (len(docs) - 1) // 2:,} pairs): {python_seconds:.2f} s, "
        f"CPU {python_cpu:.2f} s -> biohicl is {python_seconds / median:,.0f}x faster (wall), "
        f"{python_cpu / cpu:,.0f}x (CPU)"
    )
    print(f"max |difference| to the Python reference: {np.abs(fast.numpy() - reference).max():.2e}")
    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")


def _mine_child(docs, top_k, queue) -> None:
    import torch  # noqa: F401  (imported before timing: mine_top_k imports it lazily)

    from biohicl.data.mining import mine_top_k
    from biohicl.mesh.hierarchy import MeshHierarchy

    mesh = MeshHierarchy.load()
    mesh.label_vectors(docs[:10])  # warm the descriptor table before measuring memory
    before = _status_mib("VmRSS")  # this spawned process's own figures (see _status_mib)
    start = time.perf_counter()
    mined = mine_top_k(docs, mesh, top_k=top_k, seed=0)
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM")
    distinct = len({tuple(sorted(d)) for d in docs})
    queue.put((seconds, len(mined), float(mined.siml.mean()), before, peak, distinct))


def bench_mining(docs: list[list[str]], top_k: int, label: str) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_mine_child, args=(docs, top_k, queue))
    child.start()
    seconds, pairs, mean_siml, before, peak, distinct = queue.get()
    child.join()
    print(
        f"top-{top_k} mining, {label}: {len(docs):,} documents ({distinct:,} distinct label sets) "
        f"in {seconds:.1f} s; {pairs:,} pairs, mean SimL {mean_siml:.4f}; "
        f"peak RSS {peak:,.0f} MiB (VmHWM of the mining process; its RSS before mining {before:,.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-matrix", type=int, default=1024)
    parser.add_argument("--n-large", type=int, default=80_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--n-distinct", type=int, default=20_000, help="documents of the distinct-sets stress run")
    args = parser.parse_args()

    from biohicl.mesh.hierarchy import MeshHierarchy

    mesh = MeshHierarchy.load()
    real, counts = _real_label_sets()
    rng = np.random.default_rng(0)
    print(f"real documents: {len(real):,} ({', '.join(f'{name} {n:,}' for name, n in counts.items())})")
    bench_similarity_matrix(mesh, [real[i] for i in rng.choice(len(real), args.n_matrix, replace=False)], args.repeat)

    large = [real[i] for i in rng.integers(0, len(real), args.n_large)]
    print(f"\n## {args.n_large:,} documents sampled with replacement from the real ones")
    median, best, cpu = _timeit(lambda: mesh.label_vectors(large), 3)
    print(f"label_vectors: median {median:.2f} s, best {best:.2f} s, CPU {cpu:.2f} s (target <= 10 s)")
    bench_mining(large, args.top_k, "sampled with replacement")
    bench_mining(real, args.top_k, "all real documents")
    if args.n_distinct:
        # Stress: every document is a real label set plus one descriptor of another real document, so almost
        # all label sets are distinct and the work cannot be shared between copies.
        distinct = [
            [*real[i], real[j][0]] for i, j in zip(rng.integers(0, len(real), args.n_distinct),
                                                   rng.integers(0, len(real), args.n_distinct), strict=True)
        ]  # fmt: skip
        bench_mining(distinct, args.top_k, "real label sets + 1 random descriptor (nearly all distinct)")


if __name__ == "__main__":
    main()
