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

import contextlib
import functools
import json
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biohicl.data.documents import other_hierarchy
from biohicl.errors import DataError
from biohicl.evaluation.agreement_pairs import (
    CONSTANT,
    doubled_ranks,
    pair_cosines,
    pearson_correlation,
    rank_correlation_of,
)
from biohicl.evaluation.encoder import Encoder, embedding_rows
from biohicl.evaluation.results import AGREEMENT_TASK, TaskResult, file_checksums

if TYPE_CHECKING:
    from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)


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
    mesh = load_hierarchy(mesh_path)
    entry = cache.split(path, split, mesh_path) if (cache := _REUSED.get()) is not None else None
    if entry is None:
        texts, labels, _, kinds = split_documents_with_kinds(path, split, limit=limit_queries, mesh=mesh)
    else:  # the split as read once (the first N: as split_documents_with_kinds(limit=N) keeps them)
        texts, labels = entry.texts[:limit_queries], entry.labels[:limit_queries]
        kinds = entry.kinds[:limit_queries] if entry.kinds is not None else None
    kept = entry.pairs.get(limit_queries) if entry is not None else None
    if kept is None:
        check_labelled(labels, mesh, split, path, mesh_path)
    siml = kept if kept is not None else siml_pairs(labels, mesh, kinds)
    stats = siml_alignment(encoder, texts, labels, mesh, beta, batch_size, show_progress_bar, pairs=siml)
    if entry is not None and kept is None:
        entry.pairs[limit_queries] = siml
        logger.debug("%s split %s: SimL of %d pairs kept (%.1f MB)", path, split, stats["pairs"], siml.nbytes / 1e6)
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
        task=AGREEMENT_TASK,
        split=split,
        main_metric="spearman",
        metrics=metrics,
        num_queries=int(stats["pairs"]),
        num_documents=int(stats["documents"]),
        data_files=entry.data_files(path, mesh_path) if entry is not None else agreement_data_files(path, mesh_path),
        wall_time_s=time.perf_counter() - start,
        protocol=f"{path.name} split {split}: Spearman of SimE (document embeddings) vs SimL "
        f"({_describe(mesh, mesh_path)}, ancestors, depth weights) over {pairs} of {stats['documents']} labelled "
        "documents",
    )


@dataclass
class SimLPairs:
    """What an agreement measures SimE against, model-independent: the documents with a label the hierarchy places
    (``keep``), the pairs ``i < j`` of them measured (``mask``, of one label kind), their SimL (row-major, as
    ``siml[np.triu_indices(n, 1)]`` gives them) and its average ranks, computed once (:meth:`doubled_ranks`)."""

    keep: list[int]
    mask: np.ndarray  # [n, n] bool: the pairs measured
    siml: np.ndarray  # [pairs] float32
    cross: int  # pairs across label kinds, left out
    constant: bool  # every pair has the same SimL: no Spearman
    _doubled_ranks: np.ndarray | None = field(default=None, repr=False)

    def doubled_ranks(self) -> np.ndarray:
        """Twice SimL's average ranks (:func:`~biohicl.evaluation.agreement_pairs.doubled_ranks`), kept: exact in
        unsigned ints (ranks are whole or half numbers), 4 bytes a pair where float64 takes 8."""
        if self._doubled_ranks is None:
            self._doubled_ranks = doubled_ranks(self.siml)
        return self._doubled_ranks

    @property
    def nbytes(self) -> int:
        """Bytes this holds: about 10 a pair (SimL float32, ranks, the mask)."""
        ranks = self._doubled_ranks.nbytes if self._doubled_ranks is not None else 0
        return self.mask.nbytes + self.siml.nbytes + ranks


def siml_pairs(labels: Sequence[Sequence[str]], mesh: MeshHierarchy, kinds: Sequence[str] | None = None) -> SimLPairs:
    """The :class:`SimLPairs` of documents labelled ``labels``: SimL over the pairs of the ones ``mesh`` places,
    with ``kinds`` (each document's ``label_kind``) of one kind only."""
    from biohicl.mesh.gram import gram_matrix

    clean = [mesh.known_labels(labs) for labs in labels]
    keep = [i for i, labs in enumerate(clean) if labs]
    siml = gram_matrix(mesh.normalized_label_vectors([clean[i] for i in keep]))
    mask = np.triu(np.ones((len(keep), len(keep)), dtype=bool), k=1)
    cross = 0
    if kinds is not None:
        codes = np.unique(np.asarray([str(kinds[i]) for i in keep]), return_inverse=True)[1].ravel()
        same = codes[:, None] == codes[None, :]
        cross = int(np.count_nonzero(mask & ~same))
        mask &= same
    values = siml[mask]
    return SimLPairs(keep, mask, values, cross, bool(len(values)) and bool((values[0] == values).all()))


def rank_correlation(sime: np.ndarray, pairs: SimLPairs) -> float:
    """``scipy.stats.spearmanr(sime, pairs.siml).statistic`` (the Pearson correlation of average ranks, NaN and
    scipy's warning for a constant input) with SimL's kept ranks of ``pairs``: only SimE is ranked. From exact
    integer sums (:func:`~biohicl.evaluation.agreement_pairs.rank_correlation_of`), where scipy's float sums
    round (1e-16 apart or less at 7.9M pairs)."""
    from scipy.stats import ConstantInputWarning

    if len(sime) <= 1:
        return float("nan")
    if (sime[0] == sime).all() or pairs.constant:
        warnings.warn(ConstantInputWarning(CONSTANT), stacklevel=2)
        return float("nan")
    if np.isnan(sime).any():
        return float("nan")
    return rank_correlation_of(doubled_ranks(sime), pairs.doubled_ranks())


def siml_alignment(
    model: Any,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy | None = None,
    beta: float = 0.3,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    kinds: Sequence[str] | None = None,
    pairs: SimLPairs | None = None,
) -> dict[str, float]:
    """Agreement of SimE (``model.encode``) with SimL over all pairs ``i < j`` of the given documents; with
    ``kinds`` (each document's ``label_kind``), over the pairs of one kind only: SimL never compares an
    indexing-labelled with a mention-labelled document (one kind: every pair, the same numbers). ``pairs``: the
    documents' :func:`siml_pairs`, computed before (then ``labels`` and ``kinds`` are not read). SimE is computed
    in row blocks and one statistic at a time (:mod:`~biohicl.evaluation.agreement_pairs`): ~20 bytes a pair at
    the peak, SimE, its sort order and its ranks."""
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.mesh.pair_rules import ZERO_TOLERANCE

    if pairs is None:
        pairs = siml_pairs(labels, mesh or MeshHierarchy.load(), kinds)
    kept_texts = [texts[i] for i in pairs.keep]
    encoded = model.encode(kept_texts, batch_size=batch_size, kind="document", show_progress_bar=show_progress_bar)
    emb = embedding_rows(encoded, np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    s_l, s_e = pairs.siml, pair_cosines(emb, pairs.mask)
    del encoded, emb
    documents, cross = len(pairs.keep), pairs.cross
    if len(s_l) < 2:  # no correlation over fewer than 2 pairs (e.g. kinds of one labelled document each)
        return {"documents": documents, "pairs": len(s_l), "spearman": float("nan"), "pearson": float("nan"),
                "cross_kind_pairs_skipped": cross}  # fmt: skip
    squared = np.subtract(s_e, s_l)  # np.mean((s_e - s_l) ** 2), one temporary
    mse = float(np.mean(np.square(squared, out=squared)))
    del squared
    means, counts = {}, {}
    for name, selected in (("positive", s_l > beta), ("zero", s_l <= ZERO_TOLERANCE)):
        counts[name] = int(np.count_nonzero(selected))
        means[name] = float(s_e[selected].mean()) if counts[name] else float("nan")
    del selected
    spearman = rank_correlation(s_e, pairs)
    return {
        "documents": documents,
        "pairs": len(s_l),
        "spearman": spearman,
        "pearson": pearson_correlation(s_e, s_l),
        "mse_all_pairs": mse,
        "sime_positive_mean": means["positive"],
        "sime_zero_mean": means["zero"],
        "positive_pairs": counts["positive"],
        "zero_pairs": counts["zero"],
        "cross_kind_pairs_skipped": cross,
    }


def agreement_data_files(dataset_path: str | Path, mesh_path: str | Path | None = None) -> dict[str, str]:
    """The checksums of the documents files the agreement of ``dataset_path`` reads (and of the hierarchy file
    ``mesh_path``), as its result records them (``data_files``): a study compares them to tell a record of another
    dataset (or hierarchy) from one of this."""
    return file_checksums(_read_files(Path(dataset_path).expanduser(), mesh_path))


def check_agreement(dataset_path: str | Path, split: str | None, mesh_path: str | Path | None = None) -> None:
    """Pre-flight (no encoding): the dataset holds documents of ``split``, at least 3 of them with a label the
    hierarchy (``mesh_path``, default the packaged MeSH) places, so a dataset of another hierarchy fails here, not
    at a training run's first evaluation. Under :func:`reusing`, once per version of the files."""
    from biohicl.data.documents import split_documents

    path, split = Path(dataset_path).expanduser(), split or "dev"
    if (cache := _REUSED.get()) is None:
        mesh = load_hierarchy(mesh_path) if path.is_file() else None  # a missing dataset is named first
        _, labels, _ = split_documents(path, split, mesh=mesh)
        check_labelled(labels, mesh or load_hierarchy(mesh_path), split, path, mesh_path)
        return
    entry = cache.split(path, split, mesh_path)
    if not entry.checked:
        check_labelled(entry.labels, load_hierarchy(mesh_path), split, path, mesh_path)
        entry.checked = True


@dataclass
class _Split:
    """A split as :class:`AgreementCache` keeps it, for one version of its files (``signature``)."""

    signature: tuple[tuple[str, int, int], ...]
    texts: list[str]
    labels: list[list[str]]
    kinds: list[str] | None
    checked: bool = False  # the pre-flight passed
    pairs: dict[int | None, SimLPairs] = field(default_factory=dict)  # per limit_queries
    _data_files: dict[str, str] | None = None

    def data_files(self, path: Path, mesh_path: str | Path | None) -> dict[str, str]:
        """:func:`agreement_data_files`, hashed once."""
        if self._data_files is None:
            self._data_files = agreement_data_files(path, mesh_path)
        return dict(self._data_files)


class AgreementCache:
    """What agreement evaluations of a dataset share whatever the model: the split's documents (read once, the
    pre-flight passed once), its :class:`SimLPairs` with their ranks and its files' checksums, per dataset, split
    and hierarchy, kept while the files are unchanged (path, size and mtime). Used under :func:`reusing`; a
    training run's :class:`~biohicl.evaluation.evaluator.TaskEvaluator` holds one, so a repeat evaluation only
    encodes, ranks SimE and correlates. About 10 bytes a pair: 3,980 dev documents (7.9M pairs) ~80 MB."""

    def __init__(self) -> None:
        self._splits: dict[tuple[str, str, str | None], _Split] = {}

    def split(self, path: Path, split: str, mesh_path: str | Path | None) -> _Split:
        """The kept ``split`` of the dataset ``path``, read (again) when new or when its files changed."""
        from biohicl.data.documents import split_documents_with_kinds

        hierarchy = str(Path(mesh_path).expanduser().resolve()) if mesh_path is not None else None
        key = (str(path.resolve()), split, hierarchy)
        signature = _signature(path, mesh_path)
        entry = self._splits.get(key)
        if entry is None or entry.signature != signature:
            mesh = load_hierarchy(mesh_path) if path.is_file() else None  # a documents file's labels are resolved
            texts, labels, _, kinds = split_documents_with_kinds(path, split, mesh=mesh)
            entry = self._splits[key] = _Split(signature, texts, labels, kinds)
        return entry

    @property
    def nbytes(self) -> int:
        """Bytes of the kept SimL pairs and ranks (the documents' texts not counted)."""
        return sum(pairs.nbytes for entry in self._splits.values() for pairs in entry.pairs.values())


def _signature(path: Path, mesh_path: str | Path | None) -> tuple[tuple[str, int, int], ...]:
    """(file, size, mtime) of the documents files of ``path`` and of the hierarchy file: changed, read again."""
    stats = [(str(f), f.stat()) for f in _read_files(path, mesh_path) if f.exists()]
    return tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats)


def _read_files(path: Path, mesh_path: str | Path | None) -> list[Path]:
    """The files an agreement of ``path`` reads: its :func:`documents_files` and the hierarchy file, if any; what
    its result records (``data_files``) and what its cache watches."""
    return documents_files(path) + ([Path(mesh_path).expanduser()] if mesh_path is not None else [])


def documents_files(path: Path) -> list[Path]:
    """The files the documents of the dataset ``path`` are read from: the file itself, its ``documents`` parquet
    files, else (a ``DatasetDict.save_to_disk`` folder) the data files its ``state.json`` lists."""
    from biohicl.data.documents import parquet_files

    return [path] if path.is_file() else sorted(parquet_files(path, "documents")) or _saved_files(path)


def _saved_files(folder: Path) -> list[Path]:
    """The data files of a ``save_to_disk`` folder (its ``documents`` config's when it has one), as its
    ``state.json`` lists them: not the ``cache-*.arrow`` files a ``.map`` writes beside them."""
    root = folder / "documents" if (folder / "documents").is_dir() else folder
    try:
        names = [
            entry["filename"] for entry in json.loads((root / "state.json").read_text(encoding="utf-8"))["_data_files"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [root / name for name in names if isinstance(name, str)]


_REUSED: ContextVar[AgreementCache | None] = ContextVar("biohicl_agreement_cache", default=None)


@contextlib.contextmanager
def reusing(cache: AgreementCache) -> Iterator[AgreementCache]:
    """Agreement tasks and their pre-flight (:func:`evaluate_agreement`, :func:`check_agreement`) run inside keep
    what does not depend on the model in ``cache`` and take it from there."""
    token = _REUSED.set(cache)
    try:
        yield cache
    finally:
        _REUSED.reset(token)
