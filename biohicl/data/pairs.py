"""The processed MeSH-pair dataset: documents with their MeSH labels, and each document's top-k partners by SimL.

:func:`build_pair_dataset` turns records into a ``DatasetDict`` with configurations ``documents`` and ``pairs``
(saved and reloaded by :mod:`biohicl.data.storage`). Pairs are mined blockwise (:mod:`biohicl.data.mining`),
keeping for each anchor its ``top_k`` partners with SimL > 0, self excluded. SimL is rounded to 6 decimals; ties
are broken by a permutation of the documents drawn from ``seed``, so a build is deterministic for a seed.

Pairs never cross a label kind (``indexing`` / ``mentions``) or a split: they are mined within each
(``label_kind``, ``split``) group, so a training anchor's partners are all training documents of its kind, and
dev (or test) documents are paired among themselves. A build holds one label kind unless mixing is asked for.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biohicl.data.columns import in_memory_dataset
from biohicl.data.mining import mine_within_groups
from biohicl.data.read_report import ReadReport, dropped_names_lines, per_file_lines
from biohicl.data.records import DUPLICATE, MeshRecord
from biohicl.data.sources import DELETED_SPLIT
from biohicl.data.splits import DevSplit
from biohicl.errors import DataError
from biohicl.field_types import check_count
from biohicl.mesh.hierarchy import MeshHierarchy

if TYPE_CHECKING:
    from datasets import DatasetDict

SPLITS = ("train", "dev", "test")
DEFAULT_DEV_SPLIT = DevSplit()


@dataclass
class PairDatasetSummary:
    """Counts and averages of a built MeSH-pair dataset (printed by ``biohicl build-dataset``)."""

    documents: int
    pairs: int
    top_k: int
    seed: int
    mean_labels_per_document: float
    mean_siml: float
    test_documents: int
    excluded_documents: int
    sources: dict[str, int]
    mesh_version: str
    mesh_source: str
    read: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    label_kinds: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    pairs_by_split: dict[str, int] = field(default_factory=dict)
    composition: list[dict[str, Any]] = field(default_factory=list)  # per source × label kind: split counts
    folders: dict[str, int] = field(default_factory=dict)  # documents per input folder
    duplicates: int = 0
    mix_label_kinds: bool = False
    dev: dict[str, Any] = field(default_factory=dict)  # seed, fraction, pubmedqa_size, pubmedqa_dev, held_out
    decontamination: dict[str, Any] = field(default_factory=dict)  # Decontaminator.to_dict(); {} when off
    #: how to rebuild it: the ``biohicl build-dataset ...`` command (None from the Python API unless given), the
    #: sha256 of the MeSH file (None for a hierarchy built in memory) and a ``{"path", "sha256"}`` per input file in
    #: input order (``read.files``' names). Optional keys of ``summary.json``: a build of older code has none of them.
    command: str | None = None
    mesh_sha256: str | None = None
    input_sha256: list[dict[str, str]] = field(default_factory=list)
    #: dropped MeSH labels by name (ReadReport.dropped_names): printed only, not in ``summary.json``
    dropped_names: dict[str, int] = field(default_factory=dict, repr=False, metadata={"saved": False})

    def to_dict(self) -> dict[str, Any]:
        """What ``summary.json`` records: every field but the printed-only ones."""
        data = asdict(self)
        for name in (f.name for f in fields(self) if f.metadata.get("saved") is False):
            data.pop(name)
        return data

    def __str__(self) -> str:
        lines = []
        if self.read:
            lines.append(
                f"documents read: {self.read.get('read', 0):,}; kept: {self.read.get('kept', 0):,}; "
                f"skipped: {sum(self.read.get('skipped', {}).values()):,}"
            )
            examples = self.read.get("examples", {})
            for title, key in (("skipped", "skipped"), ("labels dropped", "labels_dropped"),
                               ("labels ignored", "labels_ignored"), ("labels kept, noted", "labels_noted"),
                               ("kept, noted", "noted")):  # fmt: skip
                for reason, count in sorted(self.read.get(key, {}).items(), key=lambda x: -x[1]):
                    lines.append(f"  {title} ({reason}): {count:,}")
                    lines.extend(f"      e.g. {where}" for where in examples.get(reason, ()))
            lines += dropped_names_lines(self.dropped_names)
            if self.read.get("unrecognised_files"):
                lines.append(f"  files not read (format not recognised): {', '.join(self.read['unrecognised_files'])}")
            lines += per_file_lines(self.read)
        sources = ", ".join(f"{name} {count:,}" for name, count in self.sources.items())
        kinds = ", ".join(f"{name} {count:,}" for name, count in self.label_kinds.items())
        splits = ", ".join(f"{name} {self.splits.get(name, 0):,}" for name in SPLITS)
        lines += [
            f"documents in dataset: {self.documents:,} ({sources}); PubMedQA test documents: "
            f"{self.test_documents:,}; excluded by pmid: {self.excluded_documents:,}",
        ]
        if self.label_kinds:
            lines.append(
                f"label kinds: {kinds}; splits: {splits}; repeated PMIDs (in one input or several): {self.duplicates:,}"
            )
        if self.dev:
            lines.append(
                f"dev split (seed {self.dev['seed']}, fraction {self.dev['fraction']}): "
                f"{self.dev.get('pubmedqa_dev', 0):,} PubMedQA dev items + {self.dev.get('held_out', 0):,} held-out "
                "documents"
            )
        if self.decontamination:
            removed = self.decontamination.get("documents", [])
            checked = ", ".join(f"{k} {v:,}" for k, v in self.decontamination.get("sets", {}).items())
            lines.append(f"decontamination: {len(removed):,} documents removed (checked: {checked or 'nothing'})")
            lines.extend(
                f"  removed pmid {r['pmid']!r} ({r['source']}): {r['evaluation_set']}: {r['reason']}: {r['match']}"
                for r in removed[:20]
            )
            if len(removed) > 20:
                lines.append(f"  ... and {len(removed) - 20:,} more (summary.json lists them all)")
            if self.decontamination.get("missing"):
                lines.append(f"  not checked (no corpus here): {', '.join(self.decontamination['missing'])}")
        lines += [
            f"mean MeSH descriptors per document: {self.mean_labels_per_document:.2f}",
            f"mined pairs: {self.pairs:,} (top-{self.top_k}, seed {self.seed}); mean SimL of mined pairs: "
            f"{self.mean_siml:.4f}",
            f"MeSH {self.mesh_version} ({self.mesh_source})",
        ]
        return "\n".join(lines)


def nothing_to_build_message(report: ReadReport | None, excluded: int = 0, decontaminated: int = 0) -> str:
    """The one-line error of a build left with no document: why, from ``report``'s counts (records read and
    skipped by reason, labels dropped by reason with the most frequent one, files not recognised) and the
    documents excluded (by pmid or as test) or removed by decontamination."""
    parts = []
    if report is not None:
        skipped = ", ".join(f"{reason}: {count:,}" for reason, count in report.skipped.most_common())
        parts.append(
            f"{report.read:,} read, {sum(report.skipped.values()):,} skipped" + (f" ({skipped})" if skipped else "")
        )
        if report.labels_dropped:
            reasons = ", ".join(f"{reason}: {count:,}" for reason, count in report.labels_dropped.most_common())
            example = f", e.g. {report.dropped_names.most_common(1)[0][0]!r}" if report.dropped_names else ""
            parts.append(f"{sum(report.labels_dropped.values()):,} labels dropped ({reasons}){example}")
        if report.unrecognised_files:
            parts.append(f"files not read (format not recognised): {', '.join(report.unrecognised_files)}")
    if excluded:
        parts.append(f"{excluded:,} excluded (by pmid or as test)")
    if decontaminated:
        parts.append(f"{decontaminated:,} removed by decontamination")
    why = "; ".join(parts) or "no record was given"
    return f"no documents to build a dataset from (every record was skipped or excluded): {why}"


def build_pair_dataset(
    records: Iterable[MeshRecord],
    mesh: MeshHierarchy | None = None,
    *,
    top_k: int = 10,
    seed: int = 0,
    limit: int | None = None,
    exclude_pmids: Iterable[str] | None = None,
    exclude_test: bool = False,
    report: ReadReport | None = None,
    progress: bool = False,
    mix_label_kinds: bool = False,
    dev_split: DevSplit | None = DEFAULT_DEV_SPLIT,
    decontaminator: Any = None,
) -> tuple[DatasetDict, PairDatasetSummary]:
    """Build the ``datasets.DatasetDict`` with configurations ``documents`` and ``pairs``.

    ``limit`` keeps the first ``limit`` records (after exclusion; reading stops there); ``exclude_pmids`` and
    ``exclude_test`` (records whose ``split`` is ``test``) remove documents so that no pair touches them;
    ``decontaminator`` (a :class:`~biohicl.data.decontamination.Decontaminator`) removes documents of known
    evaluation sets. ``dev_split`` marks PubMedQA dev items and held-out documents ``split="dev"`` (``None``: no
    dev split). Records of both label kinds are refused unless ``mix_label_kinds``. Pairs are mined within each
    (label kind, split) group, so their ``split`` is their documents'. Returns ``(dataset_dict, summary)``.
    A ``limit`` below 1 is a :class:`~biohicl.errors.ConfigError` before any record is read (``--limit``'s rule).
    """
    check_count("limit", limit, "the most documents to use", optional=True)  # 0 or -5 kept one document
    from datasets import DatasetDict

    started = time.perf_counter()
    mesh = mesh or MeshHierarchy.load()
    docs, n_excluded = _kept_records(records, exclude_pmids, exclude_test, limit, decontaminator)
    if not docs:
        removed = len(decontaminator.removed) if decontaminator is not None else 0
        raise DataError(nothing_to_build_message(report, n_excluded, removed))
    kinds = Counter(d.label_kind for d in docs)
    if len(kinds) > 1 and not mix_label_kinds:
        raise DataError(mixed_kinds_message(Counter((d.label_kind, d.source) for d in docs)))
    dev_info: dict[str, Any] = {}
    if dev_split is not None:
        non_test = (d.pmid for d in docs if d.source == "pubmedqa" and d.split != "test")
        pubmedqa_dev = dev_split.pubmedqa_dev(non_test)
        docs = [_with_split(d, dev_split.split_of(d.pmid, d.split, pubmedqa_dev)) for d in docs]
        dev_info = {
            **dev_split.to_dict(),
            "pubmedqa_dev": sum(1 for d in docs if d.split == "dev" and d.pmid in pubmedqa_dev),
            "held_out": sum(1 for d in docs if d.split == "dev" and d.pmid not in pubmedqa_dev),
        }
    labels = [list(d.mesh) for d in docs]
    groups = [(d.label_kind, d.split) for d in docs]
    mined = mine_within_groups(labels, groups, mesh, top_k=top_k, seed=seed, progress=progress)
    pmids = np.array([d.pmid for d in docs], dtype=object)
    split_of = np.array([d.split for d in docs], dtype=object)
    documents = _dataset(
        {
            "pmid": [d.pmid for d in docs],
            "title": [d.title for d in docs],
            "abstract": [d.abstract for d in docs],
            "mesh": labels,
            "major_mesh": [list(d.major) for d in docs],
            "tree_numbers": [sorted({t for ui in d.mesh for t in mesh.trees.get(ui, ())}) for d in docs],
            "source": [d.source for d in docs],
            "label_kind": [d.label_kind for d in docs],
            "split": [d.split for d in docs],
            "question": [d.question for d in docs],
            "long_answer": [d.long_answer for d in docs],
            "year": [d.year for d in docs],
            "journal": [d.journal for d in docs],
        },
        lists=("mesh", "major_mesh", "tree_numbers"),
    )
    pair_split = split_of[mined.anchor].tolist()
    pairs = _dataset(
        {
            "anchor": mined.anchor,
            "anchor_pmid": pmids[mined.anchor].tolist(),
            "partner": mined.partner,
            "partner_pmid": pmids[mined.partner].tolist(),
            "siml": mined.siml,
            "rank": mined.rank.astype(np.int32),
            "split": pair_split,
        },
        types={"anchor": "int64", "partner": "int64", "siml": "float32", "rank": "int32"},
    )
    composition: dict[tuple[str, str], Counter] = {}
    for d in docs:
        composition.setdefault((d.source, d.label_kind), Counter())[d.split] += 1
    summary = PairDatasetSummary(
        documents=len(docs),
        pairs=len(mined),
        top_k=top_k,
        seed=seed,
        mean_labels_per_document=float(np.mean([len(x) for x in labels])),
        mean_siml=float(mined.siml.astype(np.float64).mean()) if len(mined) else 0.0,
        test_documents=int(np.sum(split_of == "test")),
        excluded_documents=n_excluded,
        sources=dict(Counter(d.source for d in docs)),
        mesh_version=mesh.version,
        mesh_source=Path(mesh.source).name if mesh.source else "",
        mesh_sha256=mesh_sha256(mesh),
        read=report.to_dict() if report is not None else {},
        seconds=round(time.perf_counter() - started, 2),
        label_kinds=dict(kinds),
        splits={name: int(np.sum(split_of == name)) for name in SPLITS},
        pairs_by_split={name: pair_split.count(name) for name in SPLITS},
        composition=[
            {"source": src, "label_kind": kind, **{n: c.get(n, 0) for n in SPLITS}, "total": sum(c.values())}
            for (src, kind), c in composition.items()
        ],
        folders=input_folders(d.origin for d in docs),
        duplicates=int(report.skipped.get(DUPLICATE, 0)) if report is not None else 0,
        mix_label_kinds=mix_label_kinds,
        dev=dev_info,
        decontamination=decontaminator.to_dict() if decontaminator is not None else {},
        dropped_names=dict(report.dropped_names.most_common()) if report is not None else {},
    )
    return DatasetDict({"documents": documents, "pairs": pairs}), summary


def mesh_sha256(mesh: MeshHierarchy) -> str | None:
    """sha256 of the file ``mesh`` was loaded from (the packaged table's for the packaged hierarchy); None when it
    names no file there is (a hierarchy built in memory, or a file since moved)."""
    from importlib import resources

    from biohicl.mesh.hierarchy import PACKAGED_TABLE
    from biohicl.provenance import files_sha256

    if mesh.source == f"biohicl/resources/{PACKAGED_TABLE}":
        with resources.as_file(resources.files("biohicl.resources").joinpath(PACKAGED_TABLE)) as path:
            return files_sha256([path])
    return files_sha256([mesh.source]) if mesh.source and Path(mesh.source).is_file() else None


def _kept_records(
    records: Iterable[MeshRecord],
    exclude_pmids: Iterable[str] | None,
    exclude_test: bool,
    limit: int | None,
    decontaminator: Any,
) -> tuple[list[MeshRecord], int]:
    """The records a build keeps, in order, and how many it excluded (by pmid or as test); a removal the
    ``decontaminator`` recorded for a record later found deleted or a test record is taken back out of its
    ``removed``."""
    excluded = {str(p) for p in exclude_pmids} if exclude_pmids is not None else set()
    read: list[tuple[MeshRecord, Any]] = []  # (record, its decontamination removal or None)
    n_excluded = n_kept = 0
    for record in records:
        if record.pmid in excluded or (exclude_test and record.split == "test"):
            n_excluded += 1
            continue
        removal = None
        if decontaminator is not None and record.split != "test":
            removal = decontaminator.check(record)
        read.append((record, removal))
        n_kept += removal is None
        if limit is not None and n_kept >= limit:
            break
    # a record is decided again once the stream is read: a later PubMedQA test copy of its PMID may have marked it
    # `test` (unique_records updates the copy it yielded first), and a test record is never decontaminated
    docs: list[MeshRecord] = []
    for record, removal in read:
        if record.split == DELETED_SPLIT:  # deleted by a later NLM update file (unique_records), read after it
            if removal is not None:
                decontaminator.removed = [r for r in decontaminator.removed if r is not removal]
            continue
        if record.split == "test" and removal is not None:
            decontaminator.removed = [r for r in decontaminator.removed if r is not removal]
            removal = None
        if exclude_test and record.split == "test":
            n_excluded += 1
        elif removal is None:
            docs.append(record)
    return docs, n_excluded


def input_folders(origins: Iterable[str]) -> dict[str, int]:
    """Documents per input folder, by the folder's name only (no machine path): a relative ``origin``
    (``--input mine.jsonl``) is made absolute first, symlinks kept; ``(records)`` for records read from no file."""
    by_origin = Counter(origins)
    folders: Counter = Counter()
    for origin, count in by_origin.items():
        folders[(Path(os.path.abspath(origin)).parent.name if origin else "") or "(records)"] += count
    return dict(folders)


def _with_split(record: MeshRecord, split: str) -> MeshRecord:
    """``record`` with ``split`` (a copy when it changes: the caller's records are not modified)."""
    return record if record.split == split else replace(record, split=split)


def mixed_kinds_message(counts: Counter) -> str:
    """``counts``: documents per (label kind, source); a count of ``None`` (before reading) is not shown."""
    parts = ", ".join(
        f"{source} ({kind})" + (f" {n:,}" if n is not None else "") for (kind, source), n in sorted(counts.items())
    )
    return (
        f"the inputs mix MeSH label kinds: {parts}. Indexing labels (assigned to the article by NLM indexers) and "
        "entity mentions (PubTator) are different distributions; build one kind, or pass --mix_label_kinds "
        "(mix_label_kinds=True) to keep both in one dataset (pairs never cross kinds)"
    )


def _dataset(
    columns: dict[str, Any], features: Any = None, *, lists: tuple[str, ...] = (), types: dict[str, str] | None = None
):
    """A ``datasets.Dataset`` straight from columns via pyarrow (no per-row Python encoding). ``features``: the
    columns' types; by default each column is a string, a list of strings (named in ``lists``) or the ``Value``
    type ``types`` names for it."""
    import pyarrow as pa
    from datasets import Features, List, Value
    from datasets.table import InMemoryTable

    if features is None:
        kinds = types or {}
        features = Features(
            {name: List(Value("string")) if name in lists else Value(kinds.get(name, "string")) for name in columns}
        )
    schema = features.arrow_schema
    table = pa.table([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
    return in_memory_dataset(InMemoryTable(table))  # not a hash of every row
