"""Training on one documents file (``biohicl train --dataset_path docs.jsonl``): what ``biohicl build-dataset`` does
to a corpus before anyone trains on it, done to the file's rows.

A built dataset is deduplicated, decontaminated and split when it is built; a file is not. :func:`clean_document_file`
drops, of the rows of the training splits (every row when the file has no ``split`` column):

* later copies of a document id (the first of :data:`~biohicl.data.jsonl.JSONL_ID_FIELDS`; the first copy wins, as
  the build keeps it; rows without an id are never copies);
* evaluation test data, by the build's own :class:`~biohicl.data.decontamination.Decontaminator` (PubMedQA test
  PMIDs and abstracts, SciFact, BIOSSES, the BEIR corpora under ``BIOHICL_DATA_DIR``); a row marked ``test`` is left
  to ``train_splits``, as a built dataset's PubMedQA test records are;
* the PubMedQA dev items (by PMID, as the build marks them ``dev``) when ``pubmedqa:dev`` or ``pubmedqa-context:dev``
  is an evaluation task of the run, which scores on them; without it they are PQA-L abstracts like any other.

Each kind dropped is one warning line (count and an example id) and a count in the run's data stats
(``document_file``). A document's text is composed as the ``jsonl`` source composes it: ``title`` and the first
non-blank of ``abstract`` and ``text`` (a Hugging Face ``to_json`` export writes ``"text": null`` on every line),
kept as ``title`` and ``abstract`` columns for the title term (a ``text`` column alone when no row has a title).
The dev evaluations of the file (:func:`~biohicl.data.documents.split_documents_with_kinds`) read its texts and labels
by the same functions.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.data.columns import column_list, in_memory_dataset
from biohicl.data.documents import TEXT_COLUMNS, file_texts, label_column
from biohicl.data.jsonl import JSONL_ID_FIELDS
from biohicl.data.labels import file_labels
from biohicl.data.records import INDEXING, MENTIONS
from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)

#: The evaluation tasks that score on the PubMedQA dev items.
PUBMEDQA_DEV_TASKS = ("pubmedqa:dev", "pubmedqa-context:dev")


def pubmedqa_dev_task(eval_tasks: Any) -> str | None:
    """The first of ``eval_tasks`` that scores on the PubMedQA dev items (spaces removed), else None."""
    return next((s for s in (t.replace(" ", "") for t in eval_tasks or ()) if s in PUBMEDQA_DEV_TASKS), None)


def clean_document_file(documents: Any, path: Path, args: Any, mesh: MeshHierarchy) -> tuple[Any, dict[str, Any]]:
    """``documents`` (a file's ``datasets.Dataset``) without the rows the build would not train on (module doc),
    their text composed (:func:`~biohicl.data.documents.file_texts`) and their labels read
    (:func:`~biohicl.data.labels.file_labels`) as the jsonl source does, as the dev evaluations read the file; and
    ``{"document_file": counts}`` for the run's data stats."""
    import pyarrow as pa

    from biohicl.data.decontamination import Decontaminator
    from biohicl.data.records import MeshRecord

    n = len(documents)
    titles, abstracts = file_texts(documents)
    ids = _row_ids(documents)
    kinds = label_kinds(documents, ids, path)
    column = label_column(documents, path)
    labels = [file_labels(row, mesh) for row in column_list(documents, column)]
    has_split = "split" in documents.column_names
    splits = column_list(documents, "split") if has_split else [None] * n
    wanted = set(args.train_splits)
    training = [not has_split or split in wanted for split in splits]  # a row of the training splits
    decontaminator = Decontaminator.from_data_dir()
    dev_task = pubmedqa_dev_task(args.eval_tasks)
    dev = _pubmedqa_dev_pmids() if dev_task is not None else frozenset()
    seen: set[str] = set()
    keep: list[int] = []
    dropped = _Dropped()
    labelled_rows = 0  # of the training splits
    for i, (pmid, split) in enumerate(zip(ids, splits, strict=True)):
        labelled = any(ui in mesh.names for ui in labels[i])  # the build skips a record without before deduplicating
        labelled_rows += labelled and training[i]
        blank = not abstracts[i].strip()  # so does it one with an empty abstract (a title alone)
        copy = labelled and not blank and bool(pmid) and pmid in seen
        if labelled and not blank:
            seen.add(pmid)
        if not training[i]:  # the split filter's to drop, as for a built dataset
            keep.append(i)
        elif blank:
            dropped.empty.append(pmid or f"row {i + 1}")
        elif not labelled:
            dropped.unlabelled.append(pmid or f"row {i + 1}")
        elif copy:
            dropped.copies.append(pmid)
        elif split == "test" or not decontaminator.check(MeshRecord(pmid, titles[i], abstracts[i], (), "jsonl")):
            if pmid in dev:
                dropped.devs.append(pmid)
            else:
                keep.append(i)
    if dropped.unlabelled and not labelled_rows:  # the hierarchy places none: not documents dropped for another reason
        raise DataError(
            f"no training document has a MeSH label MeSH {mesh.version} knows "
            f"({_count(len(dropped.unlabelled), 'document')} without one, e.g. id {dropped.unlabelled[0]}); give the "
            "hierarchy the labels are from as --mesh_path",
            path,
        )
    removed = decontaminator.removed
    by_set = dict(Counter(r.evaluation_set for r in removed))
    # all dropped, each for its reason (no row of the training splits: none dropped, the split filter says so)
    if any(training) and not any(training[i] for i in keep):
        counts = {"evaluation test data": len(removed), "later copies of an id": len(dropped.copies),
                  "PubMedQA dev items": len(dropped.devs), "without a known MeSH label": len(dropped.unlabelled),
                  "with an empty abstract": len(dropped.empty)}  # fmt: skip
        reasons = ", ".join(f"{count} {why}" for why, count in counts.items() if count)
        raise DataError(f"no training document left ({reasons}, as biohicl build-dataset drops them)", path)
    _warn_dropped(path, dropped, removed, by_set, mesh.version, dev_task)
    if kinds is not None:
        warn_mixed_kinds([kinds[i] for i in keep if training[i]], path)
    replaced = [c for c in (*TEXT_COLUMNS, "label_kind", column) if c in documents.column_names]
    table = documents.data.table.take(pa.array(keep, pa.int64())).drop_columns(replaced)  # typed: keep may be empty
    table = table.append_column(column, pa.array([labels[i] for i in keep], pa.list_(pa.string())))
    composed = {"title": titles, "abstract": abstracts} if any(titles[i].strip() for i in keep) else {"text": abstracts}
    if kinds is not None:
        composed["label_kind"] = kinds
    for name, values in composed.items():
        table = table.append_column(name, pa.array([values[i] for i in keep], pa.string()))
    stats = {
        "rows": n,
        "evaluation_data_removed": len(removed),
        "evaluation_data_by_set": by_set,
        "duplicate_ids_removed": len(dropped.copies),
        "pubmedqa_dev_removed": len(dropped.devs),
        "no_label_removed": len(dropped.unlabelled),
        "empty_abstract_removed": len(dropped.empty),
    }
    return in_memory_dataset(table), {"document_file": stats}


@dataclass
class _Dropped:
    """The ids of the training rows dropped, by reason (``row N`` for a row without an id); those dropped as
    evaluation test data are the decontaminator's ``removed``."""

    copies: list[str] = field(default_factory=list)  # later copies of an id
    devs: list[str] = field(default_factory=list)  # PubMedQA dev items
    unlabelled: list[str] = field(default_factory=list)  # without a MeSH label the hierarchy knows
    empty: list[str] = field(default_factory=list)  # with an empty abstract


def _warn_dropped(
    path: Path, dropped: _Dropped, removed: list[Any], by_set: dict[str, int], mesh_version: str, dev_task: str | None
) -> None:
    """One warning per kind of row dropped (count and an example id); ``removed``: the decontaminator's, ``by_set``
    their count per evaluation set."""
    copies, empty, unlabelled, devs = dropped.copies, dropped.empty, dropped.unlabelled, dropped.devs
    if removed:
        first = removed[0]
        logger.warning(
            "%s: %s of evaluation test data dropped, as biohicl build-dataset drops them (%s), e.g. id %s: %s",
            path, _count(len(removed), "document"), ", ".join(f"{k} {v}" for k, v in by_set.items()), first.pmid,
            first.reason,
        )  # fmt: skip
    if copies:
        noun = "later copy" if len(copies) == 1 else "later copies"
        logger.warning("%s: %d %s of a document id dropped (the first is kept), e.g. id %s", path, len(copies), noun,
                       copies[0])  # fmt: skip
    if empty:
        logger.warning("%s: %s with an empty abstract dropped, as biohicl build-dataset skips %s, e.g. id %s", path,
                       _count(len(empty), "document"), "it" if len(empty) == 1 else "them", empty[0])  # fmt: skip
    if unlabelled:
        logger.warning(
            "%s: %s with no MeSH label MeSH %s knows dropped, as biohicl build-dataset skips %s, e.g. id %s",
            path, _count(len(unlabelled), "document"), mesh_version, "it" if len(unlabelled) == 1 else "them",
            unlabelled[0],
        )  # fmt: skip
    if devs:
        logger.warning(
            "%s: %s dropped: %s, an evaluation task of this run, scores on them, e.g. id %s",
            path, _count(len(devs), "PubMedQA dev item"), dev_task, devs[0],
        )  # fmt: skip


def mesh_path_hint(path: Path) -> str:
    """The ``--mesh_path`` hint of a warning about labels the run's MeSH cannot place (the warning names the table in
    use): the hierarchy a built dataset was built with or, for a documents file (built with none), the table its
    labels come from."""
    if path.is_dir():
        return "give the hierarchy the dataset was built with as --mesh_path"
    return "give the MeSH table the file's labels come from as --mesh_path"


def label_kinds(documents: Any, ids: list[str], path: Path) -> list[str] | None:
    """Each row's ``label_kind`` as the build reads it (missing or empty: ``indexing``), None without the column;
    a value other than ``indexing``/``mentions`` is a one-line :class:`DataError` naming the row's id."""
    if "label_kind" not in documents.column_names:
        return None
    kinds = []
    for i, kind in enumerate(column_list(documents, "label_kind")):
        if kind not in (None, "", INDEXING, MENTIONS):
            where = f"id {ids[i]!r:.40}" if ids[i] else f"row {i + 1}"
            raise DataError(f"{where}: label_kind must be {INDEXING} or {MENTIONS}, got {kind!r:.40}", path)
        kinds.append(kind or INDEXING)
    return kinds


def warn_mixed_kinds(kinds: list[str], path: Path) -> None:
    """One warning naming the count of each label kind when the training documents hold both: the build refuses
    such a corpus unless ``--mix_label_kinds`` (training has no such option; its batches never mix kinds)."""
    counts = Counter(kinds)
    if len(counts) > 1:
        logger.warning(
            "%s: the training documents mix MeSH label kinds: %s (a document without label_kind is indexing); "
            "biohicl build-dataset refuses that unless --mix_label_kinds; no batch holds both kinds",
            path, ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())),
        )  # fmt: skip


def _row_ids(documents: Any) -> list[str]:
    """Each row's id: the first of :data:`JSONL_ID_FIELDS` it holds (not null), as a string; ``""`` when none."""
    present = [column_list(documents, name) for name in JSONL_ID_FIELDS if name in documents.column_names]
    ids = []
    for i in range(len(documents)):
        value = next((column[i] for column in present if column[i] is not None), None)
        ids.append("" if value is None else str(value).strip())
    return ids


def _pubmedqa_dev_pmids() -> frozenset[str]:
    """The PMIDs ``pubmedqa:dev`` scores on (``BIOHICL_DATA_DIR``'s PQA-L, as the evaluation reads it); none when
    the data directory has no PubMedQA (the evaluation then refuses the task itself)."""
    from biohicl.data.splits import pubmedqa_dev_pmids, pubmedqa_non_test_pmids
    from biohicl.settings import data_dir

    root = data_dir(required=False)
    folder = root / "pubmedqa" if root is not None else None
    if folder is None or not (folder / "ori_pqal.json").is_file() or not (folder / "test_ground_truth.json").is_file():
        return frozenset()
    return frozenset(pubmedqa_dev_pmids(pubmedqa_non_test_pmids(folder / "ori_pqal.json")))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
