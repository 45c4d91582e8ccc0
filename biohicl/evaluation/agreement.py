"""SimE–SimL agreement on a built dataset's held-out documents: the training objective measured on unseen abstracts.

Task spec ``siml-agreement@<dataset>[:split]`` (split ``dev`` by default): ``<dataset>`` is a ``biohicl
build-dataset`` folder or a documents file with ``title``/``abstract`` (or ``text``), MeSH UIs (``mesh``) and
``split`` columns. Over every pair ``i < j`` of the split's documents with a MeSH label the packaged hierarchy can
place, the Spearman correlation of the embedding cosine (SimE, documents embedded with the document prompt) with
the MeSH label similarity (SimL, the paper's: ancestors and depth weights, check tags kept, so the yardstick is the
same whatever SimL variant a run trains on). Documents with a ``label_kind`` column are paired within their kind
only: SimL never compares an indexing-labelled with a mention-labelled document. ``biohicl train --eval_tasks
siml-agreement`` fills in the run's own ``dataset_path``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from biohicl.errors import DataError
from biohicl.evaluation.encoder import Encoder
from biohicl.evaluation.results import TaskResult, file_checksums

TASK = "siml-agreement"


def evaluate_agreement(
    encoder: Encoder,
    dataset_path: str | Path,
    *,
    split: str = "dev",
    batch_size: int = 32,
    limit_queries: int | None = None,
    show_progress_bar: bool | None = None,
    beta: float = 0.3,
) -> TaskResult:
    """Spearman/Pearson of SimE vs SimL over the pairs of ``split``'s documents (``limit_queries``: the first N)."""
    from biohicl.data.documents import split_documents_with_kinds
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.training.diagnostics import siml_alignment

    start = time.perf_counter()
    path = Path(dataset_path).expanduser()
    texts, labels, _, kinds = split_documents_with_kinds(path, split, limit=limit_queries)
    mesh = MeshHierarchy.load()
    labelled = sum(1 for labs in labels if mesh.known_labels(labs))
    if labelled < 3:
        raise DataError(f"split {split!r}: {labelled} document(s) with a known MeSH label, need 3", path)
    stats = siml_alignment(encoder, texts, labels, mesh, beta, batch_size, show_progress_bar, kinds=kinds)
    if stats["pairs"] < 2:  # a mixed split whose kinds hold a document each
        raise DataError(f"split {split!r}: {stats['pairs']} pair(s) of documents of one label kind, need 2", path)
    if not math.isfinite(stats["spearman"]):  # constant SimL (or SimE) over the pairs: no ranking to agree with
        raise DataError(f"split {split!r}: the SimE-SimL Spearman is undefined (every pair has the same SimL)", path)
    skipped = stats["cross_kind_pairs_skipped"]
    pairs = f"all {stats['pairs']} pairs"
    if skipped:  # a mixed dataset: SimL never compares an indexing-labelled with a mention-labelled document
        pairs = f"the {stats['pairs']} same-label-kind pairs ({skipped} pairs across label kinds left out)"
    metrics = {
        key: float(stats[key])
        for key in ("spearman", "pearson", "mse_all_pairs", "sime_positive_mean", "sime_zero_mean")
        if math.isfinite(stats[key])  # JSON results refuse NaN (e.g. no SimL = 0 pair)
    }
    return TaskResult(
        task=TASK,
        split=split,
        main_metric="spearman",
        metrics=metrics,
        num_queries=int(stats["pairs"]),
        num_documents=int(stats["documents"]),
        data_files=agreement_data_files(path),
        wall_time_s=time.perf_counter() - start,
        protocol=f"{path.name} split {split}: Spearman of SimE (document embeddings) vs SimL (MeSH 2024, ancestors, "
        f"depth weights) over {pairs} of {stats['documents']} labelled documents",
    )


def agreement_data_files(dataset_path: str | Path) -> dict[str, str]:
    """The checksums of the documents files the agreement of ``dataset_path`` reads, as its result records them
    (``data_files``): a study compares them to tell a record of another dataset from one of this."""
    from biohicl.data.documents import parquet_files

    path = Path(dataset_path).expanduser()
    return file_checksums([path] if path.is_file() else sorted(parquet_files(path, "documents")))


def check_agreement(dataset_path: str | Path, split: str | None) -> None:
    """Pre-flight: the dataset exists and holds documents of ``split`` (no encoding)."""
    from biohicl.data.documents import split_documents

    split_documents(dataset_path, split or "dev", limit=1)
