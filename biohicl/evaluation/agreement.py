"""SimE–SimL agreement on a built dataset's held-out documents: the training objective measured on unseen abstracts.

Task spec ``siml-agreement@<dataset>[:split]`` (split ``dev`` by default): ``<dataset>`` is a ``biohicl
build-dataset`` folder or a documents file with ``title``/``abstract`` (or ``text``), MeSH UIs (``mesh``) and
``split`` columns; ``siml-agreement@<dataset>#mesh=<file>[:split]`` measures SimL with the hierarchy of a MeSH
release file (:func:`~biohicl.evaluation.tasks.with_mesh`; default the packaged MeSH). Over every pair ``i < j`` of
the split's documents with a label the hierarchy can place, the Spearman correlation of the embedding cosine (SimE,
documents embedded with the document prompt) with the MeSH label similarity (SimL, the paper's: ancestors and depth
weights, check tags kept, so the yardstick is the same whatever SimL variant a run trains on). Documents with a
``label_kind`` column are paired within their kind only: SimL never compares an indexing-labelled with a
mention-labelled document. ``biohicl train --eval_tasks siml-agreement`` fills in the run's own ``dataset_path`` and
``--mesh_path``. :func:`siml_alignment` is the measure on any list of documents (``scripts/siml_alignment.py`` runs it
on PubMedQA's test abstracts).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biohicl.data.documents import other_hierarchy
from biohicl.errors import DataError
from biohicl.evaluation.encoder import Encoder
from biohicl.evaluation.results import TaskResult, file_checksums

if TYPE_CHECKING:
    from biohicl.mesh.hierarchy import MeshHierarchy

TASK = "siml-agreement"


def load_hierarchy(mesh_path: str | Path | None = None) -> MeshHierarchy:
    """The hierarchy SimL is measured with: the packaged MeSH, or the MeSH release file ``mesh_path`` (read once per
    version of the file, not at every evaluation of a run)."""
    from biohicl.mesh.hierarchy import MeshHierarchy

    if mesh_path is None:
        return MeshHierarchy.load()
    path = Path(mesh_path).expanduser().resolve()
    stat = path.stat() if path.is_file() else None
    return _load_file(str(path), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@functools.lru_cache(maxsize=2)
def _load_file(path: str, mtime_ns: int, size: int) -> MeshHierarchy:
    from biohicl.mesh.hierarchy import MeshHierarchy

    return MeshHierarchy.load(path)


def _describe(mesh: MeshHierarchy, mesh_path: str | Path | None) -> str:
    """``MeSH 2024`` (the packaged table), or ``MeSH 2019 (icd10_2019MeshTree.txt)`` for a hierarchy file."""
    return f"MeSH {mesh.version}" + (f" ({Path(mesh.source).name})" if mesh_path is not None else "")


def check_labelled(
    labels: Sequence[Sequence[str]], mesh: MeshHierarchy, split: str, path: Path, mesh_path: str | Path | None = None
) -> None:
    """A one-line :class:`DataError` unless at least 3 documents have a label ``mesh`` places; it names the
    hierarchy the dataset was built with when its ``summary.json`` records another one."""
    labelled = sum(1 for labs in labels if mesh.known_labels(labs))
    if labelled >= 3:
        return
    hint = ""
    if built := other_hierarchy(path, mesh.version, mesh.source):
        hint = (
            f"; the dataset was built with MeSH {built[0]} ({built[1]}): give that file as the hierarchy (--mesh_path)"
        )
    raise DataError(
        f"split {split!r}: {labelled} document(s) with a known MeSH label, need 3 "
        f"(SimL with {_describe(mesh, mesh_path)}){hint}",
        path,
    )


def evaluate_agreement(
    encoder: Encoder,
    dataset_path: str | Path,
    *,
    split: str = "dev",
    batch_size: int = 32,
    limit_queries: int | None = None,
    show_progress_bar: bool | None = None,
    beta: float = 0.3,
    mesh_path: str | Path | None = None,
) -> TaskResult:
    """Spearman/Pearson of SimE vs SimL over the pairs of ``split``'s documents (``limit_queries``: the first N),
    SimL with the hierarchy of ``mesh_path`` (a MeSH release file; default the packaged MeSH)."""
    from biohicl.data.documents import split_documents_with_kinds

    start = time.perf_counter()
    path = Path(dataset_path).expanduser()
    texts, labels, _, kinds = split_documents_with_kinds(path, split, limit=limit_queries)
    mesh = load_hierarchy(mesh_path)
    check_labelled(labels, mesh, split, path, mesh_path)
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
        data_files=agreement_data_files(path, mesh_path),
        wall_time_s=time.perf_counter() - start,
        protocol=f"{path.name} split {split}: Spearman of SimE (document embeddings) vs SimL "
        f"({_describe(mesh, mesh_path)}, ancestors, depth weights) over {pairs} of {stats['documents']} labelled "
        "documents",
    )


def siml_alignment(
    model: Any,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy | None = None,
    beta: float = 0.3,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[str, float]:
    """Agreement of SimE (``model.encode``) with SimL over all pairs ``i < j`` of the given documents; with
    ``kinds`` (each document's ``label_kind``), over the pairs of one kind only: SimL never compares an
    indexing-labelled with a mention-labelled document (one kind: every pair, the same numbers)."""
    from scipy.stats import pearsonr, spearmanr

    from biohicl.mesh.gram import gram_matrix
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.mesh.pair_rules import ZERO_TOLERANCE

    mesh = mesh or MeshHierarchy.load()
    clean = [mesh.known_labels(labs) for labs in labels]
    keep = [i for i, labs in enumerate(clean) if labs]
    siml = gram_matrix(mesh.normalized_label_vectors([clean[i] for i in keep]))
    kept_texts = [texts[i] for i in keep]
    encoded = model.encode(kept_texts, batch_size=batch_size, kind="document", show_progress_bar=show_progress_bar)
    emb = np.asarray(encoded, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sime = emb @ emb.T
    upper = np.triu_indices(len(keep), k=1)
    cross = 0
    if kinds is not None:
        kept_kinds = np.asarray([str(kinds[i]) for i in keep])
        same = kept_kinds[upper[0]] == kept_kinds[upper[1]]
        cross = int((~same).sum())
        upper = (upper[0][same], upper[1][same])
    s_l, s_e = siml[upper], sime[upper]
    positive, zero = s_l > beta, s_l <= ZERO_TOLERANCE
    if len(s_l) < 2:  # no correlation over fewer than 2 pairs (e.g. kinds of one labelled document each)
        return {"documents": len(keep), "pairs": len(s_l), "spearman": float("nan"), "pearson": float("nan"),
                "cross_kind_pairs_skipped": cross}  # fmt: skip
    return {
        "documents": len(keep),
        "pairs": len(s_l),
        "spearman": float(spearmanr(s_e, s_l).statistic),
        "pearson": float(pearsonr(s_e, s_l).statistic),
        "mse_all_pairs": float(np.mean((s_e - s_l) ** 2)),
        "sime_positive_mean": float(s_e[positive].mean()) if positive.any() else float("nan"),
        "sime_zero_mean": float(s_e[zero].mean()) if zero.any() else float("nan"),
        "positive_pairs": int(positive.sum()),
        "zero_pairs": int(zero.sum()),
        "cross_kind_pairs_skipped": cross,
    }


def agreement_data_files(dataset_path: str | Path, mesh_path: str | Path | None = None) -> dict[str, str]:
    """The checksums of the documents files the agreement of ``dataset_path`` reads (and of the hierarchy file
    ``mesh_path``), as its result records them (``data_files``): a study compares them to tell a record of another
    dataset (or hierarchy) from one of this."""
    from biohicl.data.documents import parquet_files

    path = Path(dataset_path).expanduser()
    files = [path] if path.is_file() else sorted(parquet_files(path, "documents"))
    return file_checksums(files + ([Path(mesh_path).expanduser()] if mesh_path is not None else []))


def check_agreement(dataset_path: str | Path, split: str | None, mesh_path: str | Path | None = None) -> None:
    """Pre-flight (no encoding): the dataset holds documents of ``split``, at least 3 of them with a label the
    hierarchy (``mesh_path``, default the packaged MeSH) places, so a dataset of another hierarchy fails here, not
    at a training run's first evaluation."""
    from biohicl.data.documents import split_documents

    path = Path(dataset_path).expanduser()
    _, labels, _ = split_documents(path, split or "dev")
    check_labelled(labels, load_hierarchy(mesh_path), split or "dev", path, mesh_path)
