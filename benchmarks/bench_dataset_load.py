#!/usr/bin/env python
"""``load_training_data``'s column reads: row by row through a ``datasets`` 5 ``Column`` (the baseline) vs arrow.

``dataset["col"]`` is a lazy ``Column`` in ``datasets`` 5.x; ``np.asarray`` over it, or a comprehension over the
rows, formats every row. ``biohicl.data.columns`` reads the whole column through arrow instead. Both ways are timed
in this run on the same dataset (the documents of the training splits selected as ``load_training_data`` selects
them, so the indices mapping is read too), the values are checked equal, and ``load_training_data`` is timed whole.

    python benchmarks/bench_dataset_load.py                      # a synthetic dataset of 20,000 documents
    python benchmarks/bench_dataset_load.py --documents 80000    # ... of 80,000 (10 pairs each)
    python benchmarks/bench_dataset_load.py /path/to/build       # a `biohicl build-dataset` folder
    python benchmarks/bench_dataset_load.py --negatives          # also mine_negatives vs its row-by-row version

``--negatives`` times ``mine_negatives`` (masks per block of rows and per group) against the pre-fix row-by-row
loop, copied here as the baseline, on the training documents' labels, for each kind of negative; the two must give
the same negatives.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def synthetic_dataset(folder: Path, n: int, seed: int = 0) -> Path:
    """A dataset folder (``documents``/``pairs`` parquet) of ``n`` documents with real MeSH UIs, 10 pairs each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.mesh.hierarchy import MeshHierarchy

    rng = np.random.default_rng(seed)
    mesh = MeshHierarchy.load()
    placed = np.array(sorted(ui for ui, trees in mesh.trees.items() if trees))
    words = np.array(
        [
            "the",
            "of",
            "cancer",
            "cell",
            "patients",
            "protein",
            "gene",
            "study",
            "risk",
            "treatment",
            "levels",
            "expression",
        ]
    )
    splits = rng.choice(["train", "dev", "test"], n, p=[0.9, 0.05, 0.05])
    documents = pa.table(
        {
            "pmid": [str(40_000_000 + i) for i in range(n)],
            "title": [" ".join(rng.choice(words, 8)) for _ in range(n)],
            "abstract": [" ".join(rng.choice(words, 150)) for _ in range(n)],
            "mesh": [rng.choice(placed, int(rng.integers(3, 15)), replace=False).tolist() for _ in range(n)],
            "split": splits.tolist(),
            "source": ["bioasq"] * n,
        }
    )
    anchors = np.repeat(np.arange(n), 10)
    partners = (anchors + rng.integers(1, n, len(anchors))) % n
    pairs = pa.table(
        {
            "anchor": anchors,
            "partner": partners,
            "siml": rng.random(len(anchors)),
            "split": splits[anchors].tolist(),
        }
    )
    for name, table in (("documents", documents), ("pairs", pairs)):
        (folder / name).mkdir(parents=True)
        pq.write_table(table, folder / name / f"{name}-00000.parquet")
    return folder


def row_by_row_negatives(
    labels: list,
    mesh: Any,
    negative: str,
    limit: int = 64,
    seed: int = 0,
    *,
    beta: float = 0.3,
    groups: list | None = None,
    block: int = 1024,
) -> list:
    """The pre-fix ``mine_negatives`` (default SimL): full-length masks built for every row. Kept once, here, as the
    baseline this benchmark times and the reference ``tests/test_batches.py`` checks the blockwise code against."""
    from biohicl.data.samplers import _group_index
    from biohicl.mesh.gram import gram_factors
    from biohicl.mesh.pair_rules import ZERO_TOLERANCE, parse_negative

    kind, value = parse_negative(negative, beta)
    docs = [mesh.known_labels(labs) for labs in labels]
    vectors = mesh.normalized_label_vectors(docs, True, True, np.float64, None)
    labelled = np.diff(vectors.indptr) > 0
    group_of, _ = _group_index(groups, len(docs))
    factors = gram_factors(vectors)
    rng = np.random.default_rng([seed, 1])
    out = []
    for start in range(0, len(docs), block):
        rows = factors.rows(start, min(start + block, len(docs)))
        for offset, row in enumerate(rows):
            i = start + offset
            allowed = labelled & (group_of == group_of[i])
            allowed[i] = False
            if not labelled[i]:
                out.append(np.zeros(0, dtype=np.int64))
                continue
            if kind == "lowest":
                candidates = np.flatnonzero(allowed & (row <= beta))
                keep = candidates[np.argsort(row[candidates], kind="stable")[:limit]]
            else:
                threshold = row <= ZERO_TOLERANCE if kind == "zero" else row < value
                candidates = np.flatnonzero(allowed & threshold)
                keep = rng.choice(candidates, limit, replace=False) if len(candidates) > limit else candidates
            out.append(np.sort(keep).astype(np.int64))
    return out


def bench_negatives(labels: list, mesh: Any) -> None:
    """``mine_negatives`` against :func:`row_by_row_negatives`, per kind of negative; their outputs must be equal."""
    from biohicl.data.samplers import mine_negatives

    print(f"## mine_negatives, {len(labels):,} documents (wall s, user s, system s)")
    for negative in ("zero", "below:0.2", "lowest:4"):
        figures = []
        for function in (row_by_row_negatives, mine_negatives):
            wall, before = time.perf_counter(), os.times()
            result = function(labels, mesh, negative)
            after = os.times()
            figures.append((time.perf_counter() - wall, after.user - before.user, after.system - before.system, result))
        old, new = figures
        if any(a.dtype != b.dtype or not np.array_equal(a, b) for a, b in zip(old[3], new[3], strict=True)):
            raise SystemExit(f"mine_negatives {negative}: the blockwise negatives differ from the row-by-row ones")
        print(
            f"{negative:>10}: row by row {old[0]:6.1f} s ({old[1]:.1f} user, {old[2]:.1f} sys), blockwise "
            f"{new[0]:6.1f} s ({new[1]:.1f} user, {new[2]:.1f} sys): {old[0] / new[0]:.1f}x, the same negatives"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", help="a `biohicl build-dataset` folder (default: a synthetic one)")
    parser.add_argument("--documents", type=int, default=20_000, help="documents of the synthetic dataset")
    parser.add_argument("--negatives", action="store_true", help="also time mine_negatives (see above)")
    options = parser.parse_args()

    from biohicl.data.columns import column_array, column_list
    from biohicl.data.documents import document_text, label_column, parquet_files, read_documents, read_parquet
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import load_training_data

    with tempfile.TemporaryDirectory() as scratch:
        if options.dataset:
            path = Path(options.dataset)
        else:
            wall, _, path = timed(lambda: synthetic_dataset(Path(scratch) / "dataset", options.documents))
            print(f"synthetic dataset: {options.documents:,} documents, 10 pairs each, written in {wall:.1f} s")
        documents = read_documents(path)
        pairs = read_parquet(parquet_files(path, "pairs"), path / "pairs")
        column = label_column(documents, path)
        keep = [i for i, s in enumerate(column_list(documents, "split")) if s == "train"]
        rows = documents.select(keep)  # an indices mapping, as load_training_data reads it
        print(f"{path}: {len(documents):,} documents ({len(rows):,} train), {len(pairs):,} pairs")

        def arrow_texts() -> list[str]:  # as load_training_data reads them now
            parts = {c: column_list(rows, c) for c in ("text", "title", "abstract") if c in rows.column_names}
            return [document_text({c: v[i] for c, v in parts.items()}) for i in range(len(rows))]

        reads = [  # (what, the pre-fix read: each row formatted through a Column or the dataset, the arrow read)
            (
                "split -> kept rows",
                lambda: [i for i, s in enumerate(documents["split"]) if s == "train"],
                lambda: [i for i, s in enumerate(column_list(documents, "split")) if s == "train"],
            ),
            (
                "texts",
                lambda: [document_text(r) for r in rows],
                arrow_texts,
            ),
            ("labels", lambda: list(rows[column]), lambda: column_list(rows, column)),
            *(
                (
                    f"pairs.{name}",
                    lambda name=name: np.asarray(pairs[name]),
                    lambda name=name: column_array(pairs, name),
                )
                for name in ("anchor", "partner", "siml")
            ),
        ]
        totals = np.zeros(4)
        for name, old_read, new_read in reads:
            old_wall, old_cpu, old = timed(old_read)
            new_wall, new_cpu, new = timed(new_read)
            same = old.dtype == new.dtype and np.array_equal(old, new) if isinstance(old, np.ndarray) else old == new
            if not same:
                raise SystemExit(f"{name}: the arrow read differs from the row-by-row one")
            totals += (old_wall, old_cpu, new_wall, new_cpu)
            print(f"{name:>18}: row by row {old_wall:6.2f} s ({old_cpu:.2f} s CPU), arrow {new_wall:6.3f} s "
                  f"({new_cpu:.3f} s CPU): {old_wall / new_wall:,.0f}x")  # fmt: skip
        print(f"{'all reads':>18}: row by row {totals[0]:6.2f} s ({totals[1]:.2f} s CPU), arrow {totals[2]:6.3f} s "
              f"({totals[3]:.3f} s CPU): {totals[0] / totals[2]:,.0f}x faster, the same values and dtypes")  # fmt: skip
        mesh = MeshHierarchy.load()
        args = BioHiCLTrainingArguments(output_dir=str(Path(scratch) / "run"), dataset_path=str(path), use_cpu=True)
        wall, cpu, data = timed(lambda: load_training_data(args, mesh))
        print(f"load_training_data: {len(data.documents):,} documents, {data.stats['mined_pairs']:,} pairs in "
              f"{wall:.1f} s wall, {cpu:.1f} s CPU")  # fmt: skip
        if options.negatives:
            bench_negatives(data.documents.data.table.column("labels").to_pylist(), mesh)
        print(f"load average: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
