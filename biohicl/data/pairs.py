"""The processed MeSH-pair dataset: documents with their MeSH labels, and each document's top-k partners by SimL.

Two configurations, saved as parquet with a dataset card (``README.md``) the Hub and
``datasets.load_dataset("parquet", ...)`` both read, plus a ``save_to_disk`` copy for ``load_from_disk``::

    out/
      README.md                      dataset card (YAML: license, configs → data_files, counts, SimL, MeSH version)
      dataset_dict.json              load_from_disk entry point
      documents/documents-00000.parquet   pmid, title, abstract, mesh, tree_numbers, source, label_kind, split, ...
      documents/data-00000-of-00001.arrow (+ state.json, dataset_info.json)
      pairs/pairs-00000.parquet      anchor, anchor_pmid, partner, partner_pmid, siml, rank, split

Pairs are mined blockwise (rows of the SimL matrix a block at a time, never the dense n×n), keeping for each
anchor its ``top_k`` partners with SimL > 0, self excluded. SimL is rounded to 6 decimals; ties are broken by a
permutation of the documents drawn from ``seed``, so a build is deterministic for a seed.

Pairs never cross a label kind (``indexing`` / ``mentions``) or a split: they are mined within each
(``label_kind``, ``split``) group, so a training anchor's partners are all training documents of its kind, and
dev (or test) documents are paired among themselves. A build holds one label kind unless mixing is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from biohicl.atomic import _explain, pid_alive
from biohicl.data.readers import DUPLICATE, MeshRecord, ReadReport, label_kind_of
from biohicl.data.splits import DevSplit
from biohicl.errors import ConfigError, DataError
from biohicl.mesh.gram import gram_factors
from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)

SIML_DECIMALS = 6
DOCUMENT_COLUMNS = (
    "pmid", "title", "abstract", "mesh", "major_mesh", "tree_numbers", "source", "label_kind", "split", "question",
    "long_answer", "year", "journal",
)  # fmt: skip
SPLITS = ("train", "dev", "test")
DEFAULT_DEV_SPLIT = DevSplit()
PAIR_COLUMNS = ("anchor", "anchor_pmid", "partner", "partner_pmid", "siml", "rank", "split")
BLOCK_BYTES = 1 << 28


@dataclass
class MinedPairs:
    """Top-k partners per anchor, as parallel arrays (anchor-major, rank ascending)."""

    anchor: np.ndarray
    partner: np.ndarray
    siml: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)


def mine_top_k(
    label_lists: Sequence[Sequence[str]],
    mesh: MeshHierarchy,
    top_k: int = 10,
    seed: int = 0,
    *,
    block_size: int | None = None,
    ancestors: bool = True,
    depth_weight: bool = True,
    progress: bool = False,
) -> MinedPairs:
    """Each document's ``top_k`` partners by SimL (> 0, self excluded), mined a block of rows at a time.

    Documents with the same tree-node set share one row of the SimL matrix (their copies are each other's
    partners at SimL 1.0), so the work grows with the number of *distinct* label sets. Ranking uses SimL
    rounded to :data:`SIML_DECIMALS` decimals, ties broken by a seeded permutation of the documents. Memory is
    O(block_size × distinct sets) on top of the sparse label vectors; ``block_size`` defaults to ~256 MB.
    """
    import torch

    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    n = len(label_lists)
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return MinedPairs(empty, empty, np.empty(0, dtype=np.float32), empty)
    k = min(top_k, n - 1)
    width = k + 1  # one spare: a document's own copy is dropped afterwards
    vectors = mesh._raw_label_vectors(label_lists, ancestors, depth_weight, np.float32)
    set_of, representative = _unique_rows(vectors)
    m = len(representative)
    factors = gram_factors(vectors[representative], normalize=True)
    # Higher priority wins a tie; a seeded permutation makes ties deterministic but not biased by position.
    priority = np.random.default_rng(seed).permutation(n).astype(np.int64)
    members = np.lexsort((-priority, set_of))  # documents grouped by set, best priority first
    starts = np.r_[0, np.cumsum(np.bincount(set_of, minlength=m))[:-1]]
    rank_in_set = np.empty(n, dtype=np.int64)
    rank_in_set[members] = np.arange(n) - np.repeat(starts, np.bincount(set_of, minlength=m))
    best = np.full((m, width), -1, dtype=np.int64)  # each set's best documents by priority
    keep = rank_in_set[members] < width
    best[set_of[members][keep], rank_in_set[members][keep]] = members[keep]
    best_t = torch.from_numpy(best)
    prio_t = torch.from_numpy(np.r_[priority, -1])  # index -1 → priority -1 (padding)
    set_best_priority = prio_t[best_t[:, 0]]
    scale = 10**SIML_DECIMALS
    if block_size is None:
        block_size = max(1, min(m, BLOCK_BYTES // (16 * m)))
    buffer = np.empty((min(block_size, m), m), dtype=np.float32)
    lists = np.full((m, width), -1, dtype=np.int64)
    levels = np.zeros((m, width), dtype=np.int64)
    blocks = range(0, m, block_size)
    if progress:
        from tqdm.auto import tqdm

        blocks = tqdm(blocks, desc="mining MeSH pairs", unit="block", total=len(blocks))
    for start in blocks:
        stop = min(start + block_size, m)
        level = torch.from_numpy(factors.rows(start, stop, out=buffer[: stop - start]))
        level.mul_(scale).round_()  # exact integers in float32 (< 2**24)
        # 1) the best sets by (SimL, best document priority): the top documents come from these only.
        #    Candidates: every set at or above the row's width-th largest SimL (ties included), then exact keys.
        kth = torch.topk(level, min(width, m), dim=1, sorted=False).values.min(dim=1).values.clamp(min=1.0)
        rows_idx, cols_idx = (level >= kth.unsqueeze(1)).nonzero(as_tuple=True)
        cand_level = level[rows_idx, cols_idx].to(torch.int64)
        cand_key = (cand_level * n + set_best_priority[cols_idx]).numpy()
        order = np.lexsort((-cand_key, rows_idx.numpy()))
        r_sorted = rows_idx.numpy()[order]
        run_start = np.searchsorted(r_sorted, np.arange(stop - start))
        place = np.arange(len(order)) - run_start[r_sorted]
        take = place < width
        top_sets = torch.full((stop - start, width), -1, dtype=torch.int64)
        set_level = torch.zeros((stop - start, width), dtype=torch.int64)
        top_sets[r_sorted[take], place[take]] = cols_idx[order[take]]
        set_level[r_sorted[take], place[take]] = cand_level[order[take]]
        # 2) their best documents, ranked by (SimL, priority)
        docs = best_t[top_sets.clamp(min=0)]  # [b, sets, width]
        docs[top_sets < 0] = -1
        doc_keys = set_level.unsqueeze(2) * n + prio_t[docs]
        doc_keys[(docs < 0) | (set_level.unsqueeze(2) <= 0)] = -1
        doc_keys = doc_keys.flatten(1)
        top = torch.topk(doc_keys, min(width, doc_keys.shape[1]), dim=1)
        chosen = docs.flatten(1).gather(1, top.indices)
        chosen[top.values < 0] = -1
        lists[start:stop, : chosen.shape[1]] = chosen.numpy()
        levels[start:stop, : chosen.shape[1]] = torch.div(top.values.clamp(min=0), n, rounding_mode="floor").numpy()
    # 3) each document takes its set's list without itself
    doc_lists, doc_levels = lists[set_of], levels[set_of]
    own = doc_lists == np.arange(n)[:, None]
    position = np.where(own.any(axis=1), own.argmax(axis=1), width - 1)
    columns = np.arange(k)[None, :] + (np.arange(k)[None, :] >= position[:, None])
    partner = np.take_along_axis(doc_lists, columns, axis=1)
    level = np.take_along_axis(doc_levels, columns, axis=1)
    valid = (partner >= 0) & (level > 0)
    anchor = np.broadcast_to(np.arange(n)[:, None], partner.shape)[valid]
    siml = (level[valid] / scale).astype(np.float32)
    return MinedPairs(anchor.astype(np.int64), partner[valid], siml, _ranks(anchor))


def _unique_rows(vectors) -> tuple[np.ndarray, np.ndarray]:
    """Group identical sparse rows (same columns): ``(group of each row, first row of each group)``."""
    keys = np.random.default_rng(0x5EED).integers(0, 2**63, vectors.shape[1], dtype=np.uint64)
    lengths = np.diff(vectors.indptr)
    row = np.repeat(np.arange(vectors.shape[0]), lengths)
    sums = np.zeros(vectors.shape[0], dtype=np.uint64)
    np.add.at(sums, row, keys[vectors.indices])
    sums ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    _, representative, group = np.unique(sums, return_index=True, return_inverse=True)
    return group.ravel().astype(np.int64), representative


def _ranks(anchor: np.ndarray) -> np.ndarray:
    """1-based position of each pair within its anchor's run (pairs are anchor-major, best first)."""
    if not len(anchor):
        return np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(anchor[1:] != anchor[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(anchor)]))
    return np.arange(len(anchor)) - run_start + 1


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = []
        if self.read:
            lines.append(
                f"documents read: {self.read.get('read', 0):,}; kept: {self.read.get('kept', 0):,}; "
                f"skipped: {sum(self.read.get('skipped', {}).values()):,}"
            )
            examples = self.read.get("examples", {})
            for title, key in (("skipped", "skipped"), ("labels dropped", "labels_dropped"),
                               ("labels ignored", "labels_ignored")):  # fmt: skip
                for reason, count in sorted(self.read.get(key, {}).items(), key=lambda x: -x[1]):
                    lines.append(f"  {title} ({reason}): {count:,}")
                    lines.extend(f"      e.g. {where}" for where in examples.get(reason, ()))
            if self.read.get("unrecognised_files"):
                lines.append(f"  files not read (format not recognised): {', '.join(self.read['unrecognised_files'])}")
        sources = ", ".join(f"{name} {count:,}" for name, count in self.sources.items())
        kinds = ", ".join(f"{name} {count:,}" for name, count in self.label_kinds.items())
        splits = ", ".join(f"{name} {self.splits.get(name, 0):,}" for name in SPLITS)
        lines += [
            f"documents in dataset: {self.documents:,} ({sources}); PubMedQA test documents: "
            f"{self.test_documents:,}; excluded by pmid: {self.excluded_documents:,}",
        ]
        if self.label_kinds:
            lines.append(f"label kinds: {kinds}; splits: {splits}; same PMID in several inputs: {self.duplicates:,}")
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
                f"  removed pmid {r['pmid']} ({r['source']}): {r['evaluation_set']}: {r['reason']}: {r['match']}"
                for r in removed[:20]
            )
            if len(removed) > 20:
                lines.append(f"  ... and {len(removed) - 20:,} more (summary.json lists them all)")
            if self.decontamination.get("missing"):
                lines.append(f"  not found, not checked: {', '.join(self.decontamination['missing'])}")
        lines += [
            f"mean MeSH descriptors per document: {self.mean_labels_per_document:.2f}",
            f"mined pairs: {self.pairs:,} (top-{self.top_k}, seed {self.seed}); mean SimL of mined pairs: "
            f"{self.mean_siml:.4f}",
            f"MeSH {self.mesh_version} ({self.mesh_source})",
        ]
        return "\n".join(lines)


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
):
    """Build the ``datasets.DatasetDict`` with configurations ``documents`` and ``pairs``.

    ``limit`` keeps the first ``limit`` records (after exclusion; reading stops there); ``exclude_pmids`` and
    ``exclude_test`` (records whose ``split`` is ``test``) remove documents so that no pair touches them;
    ``decontaminator`` (a :class:`~biohicl.data.decontamination.Decontaminator`) removes documents of known
    evaluation sets. ``dev_split`` marks PubMedQA dev items and held-out documents ``split="dev"`` (``None``: no
    dev split). Records of both label kinds are refused unless ``mix_label_kinds``. Pairs are mined within each
    (label kind, split) group, so their ``split`` is their documents'. Returns ``(dataset_dict, summary)``.
    """
    from datasets import DatasetDict, Features, List, Value

    started = time.perf_counter()
    mesh = mesh or MeshHierarchy.load()
    excluded = {str(p) for p in exclude_pmids} if exclude_pmids is not None else set()
    docs: list[MeshRecord] = []
    n_excluded = 0
    for record in records:
        if record.pmid in excluded or (exclude_test and record.split == "test"):
            n_excluded += 1
            continue
        if decontaminator is not None and record.split != "test" and decontaminator.check(record) is not None:
            continue
        docs.append(record)
        if limit is not None and len(docs) >= limit:
            break
    if not docs:
        raise DataError("no documents to build a dataset from (every record was skipped or excluded)")
    kinds = Counter(d.label_kind for d in docs)
    if len(kinds) > 1 and not mix_label_kinds:
        raise DataError(_mixed_kinds_message(Counter((d.label_kind, d.source) for d in docs)))
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
    mined = _mine_by_group(docs, labels, mesh, top_k=top_k, seed=seed, progress=progress)
    pmids = np.array([d.pmid for d in docs], dtype=object)
    split_of = np.array([d.split for d in docs], dtype=object)
    doc_features = Features(
        {
            "pmid": Value("string"),
            "title": Value("string"),
            "abstract": Value("string"),
            "mesh": List(Value("string")),
            "major_mesh": List(Value("string")),
            "tree_numbers": List(Value("string")),
            "source": Value("string"),
            "label_kind": Value("string"),
            "split": Value("string"),
            "question": Value("string"),
            "long_answer": Value("string"),
            "year": Value("string"),
            "journal": Value("string"),
        }
    )
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
        features=doc_features,
    )
    pair_features = Features(
        {
            "anchor": Value("int64"),
            "anchor_pmid": Value("string"),
            "partner": Value("int64"),
            "partner_pmid": Value("string"),
            "siml": Value("float32"),
            "rank": Value("int32"),
            "split": Value("string"),
        }
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
        features=pair_features,
    )
    sources: dict[str, int] = {}
    for d in docs:
        sources[d.source] = sources.get(d.source, 0) + 1
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
        sources=sources,
        mesh_version=mesh.version,
        mesh_source=Path(mesh.source).name if mesh.source else "",
        read=report.to_dict() if report is not None else {},
        seconds=round(time.perf_counter() - started, 2),
        label_kinds=dict(kinds),
        splits={name: int(np.sum(split_of == name)) for name in SPLITS},
        pairs_by_split={name: pair_split.count(name) for name in SPLITS},
        composition=[
            {"source": src, "label_kind": kind, **{n: c.get(n, 0) for n in SPLITS}, "total": sum(c.values())}
            for (src, kind), c in composition.items()
        ],
        folders=dict(Counter(Path(d.origin).parent.name or "(records)" for d in docs)),
        duplicates=int(report.skipped.get(DUPLICATE, 0)) if report is not None else 0,
        mix_label_kinds=mix_label_kinds,
        dev=dev_info,
        decontamination=decontaminator.to_dict() if decontaminator is not None else {},
    )
    return DatasetDict({"documents": documents, "pairs": pairs}), summary


def _with_split(record: MeshRecord, split: str) -> MeshRecord:
    """``record`` with ``split`` (a copy when it changes: the caller's records are not modified)."""
    return record if record.split == split else replace(record, split=split)


def _mixed_kinds_message(counts: Counter) -> str:
    """``counts``: documents per (label kind, source); a count of ``None`` (before reading) is not shown."""
    parts = ", ".join(
        f"{source} ({kind})" + (f" {n:,}" if n is not None else "") for (kind, source), n in sorted(counts.items())
    )
    return (
        f"the inputs mix MeSH label kinds: {parts}. Indexing labels (assigned to the article by NLM indexers) and "
        "entity mentions (PubTator) are different distributions; build one kind, or pass --mix-label-kinds "
        "(mix_label_kinds=True) to keep both in one dataset (pairs never cross kinds)"
    )


def _mine_by_group(
    docs: Sequence[MeshRecord], labels: Sequence[Sequence[str]], mesh: MeshHierarchy, **kwargs: Any
) -> MinedPairs:
    """:func:`mine_top_k` within each (label kind, split) group; indices are the documents', anchor-major."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, d in enumerate(docs):
        groups.setdefault((d.label_kind, d.split), []).append(i)
    parts = []
    for members in groups.values():
        index = np.asarray(members, dtype=np.int64)
        mined = mine_top_k([labels[i] for i in members], mesh, **kwargs)
        parts.append((index[mined.anchor], index[mined.partner], mined.siml, mined.rank))
    anchor, partner, siml, rank = (np.concatenate([p[j] for p in parts]) for j in range(4))
    order = np.argsort(anchor, kind="stable")
    return MinedPairs(anchor[order], partner[order], siml[order].astype(np.float32), rank[order])


def _dataset(columns: dict[str, Any], features):
    """A ``datasets.Dataset`` straight from columns via pyarrow (no per-row Python encoding)."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    schema = features.arrow_schema
    table = pa.table([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
    return Dataset(InMemoryTable(table))


def recover_interrupted_save(out_dir: str | Path) -> None:
    """Clean up after a build killed while saving: drop its ``.<name>.tmp-<pid>`` folder and, if the kill came
    between the two renames of the swap, put the previous build (``.<name>.old-<pid>``) back in place."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    for kind in ("old", "tmp"):
        for leftover in sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*")):
            pid = leftover.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or pid_alive(int(pid)) or not leftover.is_dir():
                continue  # another build is running
            if kind == "old" and not out_dir.exists():
                leftover.rename(out_dir)
            else:
                shutil.rmtree(leftover, ignore_errors=True)


def save_pair_dataset(
    dataset, out_dir: str | Path, summary: PairDatasetSummary | None = None, *, arrow: bool = True
) -> Path:
    """Write parquet per configuration, the dataset card and (``arrow=True``) a ``save_to_disk`` copy.

    Written to a temporary folder beside ``out_dir`` and renamed into place; an existing ``out_dir`` is
    replaced only when it is empty or a previous build (it holds ``README.md`` and ``documents/``).
    """
    import datasets

    from biohicl.data.dataset_card import render_dataset_card

    out_dir = Path(out_dir)
    recover_interrupted_save(out_dir)
    previous_build = (out_dir / "README.md").is_file() and (out_dir / "documents").is_dir()
    if out_dir.exists() and any(out_dir.iterdir()) and not previous_build:
        raise ConfigError(f"--output {out_dir} exists, is not empty and is not a MeSH-pair dataset")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one line per file is enough; our own bars cover the long loops
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if arrow:
            dataset.save_to_disk(str(tmp))
        for config in ("documents", "pairs"):
            (tmp / config).mkdir(parents=True, exist_ok=True)
            dataset[config].to_parquet(str(tmp / config / f"{config}-00000.parquet"))
        (tmp / "README.md").write_text(render_dataset_card(dataset, summary), encoding="utf-8")
        if summary is not None:
            (tmp / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
        try:
            tmp.rename(out_dir)
        except OSError:
            if old is not None:
                old.rename(out_dir)  # put the previous build back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:  # a full disk, a read-only folder: one line; the previous build is left as it was
        raise _explain(err, out_dir) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if bars:
            datasets.enable_progress_bars()
    return out_dir


def load_pair_dataset(path: str | Path):
    """Reload a saved MeSH-pair dataset from its parquet files as a ``DatasetDict`` (documents, pairs); a
    configuration with no rows (e.g. no pair above SimL 0) reloads as an empty table with its columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict
    from datasets.table import InMemoryTable

    path = Path(path)
    if not (path / "documents").is_dir():
        raise DataError("not a MeSH-pair dataset (no documents/ folder)", path)
    configs = {}
    for config in ("documents", "pairs"):
        files = sorted((path / config).glob("*.parquet"))
        if not files:
            raise DataError(f"no {config} parquet files", path / config)
        configs[config] = Dataset(InMemoryTable(pa.concat_tables([pq.read_table(f) for f in files])))
    return DatasetDict(configs)


def build_dataset_from_files(
    inputs: Sequence[tuple[str, Sequence[str | Path]]],
    output_dir: str | Path | None,
    mesh: MeshHierarchy | None = None,
    *,
    top_k: int = 10,
    seed: int = 0,
    limit: int | None = None,
    strict: bool = False,
    exclude_test: bool = False,
    test_ids: str | Path | None = None,
    progress: bool = True,
    arrow: bool = True,
    mix_label_kinds: bool = False,
    decontaminate: bool = True,
    beir: Sequence[str | Path] = (),
    dev_split: DevSplit | None = DEFAULT_DEV_SPLIT,
):
    """Read ``(source, files)`` groups (source ``"auto"``: detected per file), build the MeSH-pair dataset and
    (unless ``output_dir`` is None) save it.

    ``exclude_test`` removes the official PubMedQA test abstracts (``test_ids``, by default
    ``$BIOHICL_DATA_DIR/pubmedqa/test_ground_truth.json`` when present, plus every record marked ``test``).
    ``decontaminate`` (default) removes every document of a known evaluation set (PubMedQA test PMIDs, SciFact,
    BIOSSES, and the BEIR folders in ``beir``; :mod:`biohicl.data.decontamination`). ``dev_split`` draws the
    PubMedQA dev items from the non-test PMIDs of the PubMedQA inputs (else of ``BIOHICL_DATA_DIR``'s PQA-L).
    Inputs of both label kinds are refused before reading unless ``mix_label_kinds``.
    Returns ``(dataset_dict, summary)``.
    """
    from biohicl.data.readers import read_records, resolve_inputs, unique_records

    mesh = mesh or MeshHierarchy.load()
    report = ReadReport()
    groups = resolve_inputs(inputs, report)
    kinds: dict[str, set[str]] = {}
    for source, _ in groups:
        kinds.setdefault(label_kind_of(source), set()).add(source)
    if len(kinds) > 1 and not mix_label_kinds:
        raise DataError(_mixed_kinds_message(Counter({(k, s): None for k, ss in kinds.items() for s in ss})))
    excluded: set[str] = set()
    if exclude_test:
        excluded = _test_pmids(test_ids)
    decontaminator = None
    if decontaminate:
        from biohicl.data.decontamination import Decontaminator

        decontaminator = Decontaminator.from_data_dir(beir=beir, test_ids=test_ids)
    elif beir:
        raise ConfigError("--beir names evaluation sets to decontaminate against: it needs decontamination on")
    if dev_split is not None and dev_split.pubmedqa_non_test is None:
        dev_split = _with_pubmedqa_reference(dev_split, groups, test_ids)

    def stream():
        for source, files in groups:
            yield from read_records(source, files, mesh, strict=strict, report=report)

    records: Iterable[MeshRecord] = unique_records(stream(), report, strict=strict)
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, desc="reading abstracts", unit="doc", total=limit)
    dataset, summary = build_pair_dataset(
        records, mesh, top_k=top_k, seed=seed, limit=limit, exclude_pmids=excluded, exclude_test=exclude_test,
        report=report, progress=progress, mix_label_kinds=mix_label_kinds, dev_split=dev_split,
        decontaminator=decontaminator,
    )  # fmt: skip
    if output_dir is not None:
        save_pair_dataset(dataset, output_dir, summary, arrow=arrow)
    return dataset, summary


def _with_pubmedqa_reference(
    dev_split: DevSplit, groups: Sequence[tuple[str, Sequence[Path]]], test_ids: str | Path | None
) -> DevSplit:
    """``dev_split`` with ``pubmedqa_non_test`` from the PubMedQA inputs, else from ``BIOHICL_DATA_DIR``'s PQA-L
    (so a copy of a PubMedQA dev abstract in another corpus is held out too); unchanged when there is none."""
    from biohicl.data.splits import pubmedqa_non_test_pmids
    from biohicl.settings import data_dir

    files = [Path(f) for source, paths in groups if source == "pubmedqa" for f in paths]
    if not files:
        root = data_dir(required=False)
        candidate = root / "pubmedqa" / "ori_pqal.json" if root is not None else None
        files = [candidate] if candidate is not None and candidate.is_file() else []
    if not files:
        return dev_split
    non_test: set[str] = set()
    for path in files:
        non_test |= pubmedqa_non_test_pmids(path, test_ids)
    return replace(dev_split, pubmedqa_non_test=frozenset(non_test))


def _test_pmids(test_ids: str | Path | None) -> set[str]:
    from biohicl.data.readers import load_pubmedqa_test_ids
    from biohicl.settings import data_dir

    if test_ids is not None:
        return load_pubmedqa_test_ids(test_ids)
    root = data_dir(required=False)
    candidate = root / "pubmedqa" / "test_ground_truth.json" if root is not None else None
    return load_pubmedqa_test_ids(candidate) if candidate is not None and candidate.is_file() else set()


EXPORT_SUFFIXES = (".xml", ".xml.gz", ".txt", ".nbib", ".medline", ".txt.gz")


def default_inputs(mentions: bool = False) -> list[tuple[str, list[Path]]]:
    """The real corpora of the default dataset, all MeSH *indexing*, in this order (the first copy of a PMID
    wins): PubMedQA PQA-L (1,000; its 500 test items marked ``test``), the MEDLINE sample, ``bioasq_sample/``
    and every PubMed export in ``pubmed_exports/`` (format detected per file). ``mentions=True`` adds BC5CDR
    (PubTator entity mentions; a dataset with both needs ``mix_label_kinds``)."""
    from biohicl.settings import data_path

    exports = data_path("pubmed_exports")
    inputs: list[tuple[str, list[Path]]] = [
        ("pubmedqa", [data_path("pubmedqa", "ori_pqal.json")]),
        ("medline", [data_path("medline_sample", "medline16n0902.xml.gz")]),
        ("bioasq", [data_path("bioasq_sample", "bioasq_sample.json")]),
        ("auto", sorted(p for p in exports.iterdir() if p.name.lower().endswith(EXPORT_SUFFIXES))),
    ]
    if mentions:
        inputs.append(
            (
                "pubtator",
                [data_path("bc5cdr", f"CDR_{part}Set.PubTator.txt") for part in ("Training", "Development", "Test")],
            )
        )
    return inputs


def build_default_dataset(
    output_dir: str | Path | None,
    *,
    top_k: int = 10,
    seed: int = 0,
    progress: bool = True,
    mix_label_kinds: bool = False,
    **kwargs: Any,
):
    """Build the default MeSH-pair dataset (:func:`default_inputs`: indexing only; with ``mix_label_kinds`` BC5CDR's
    mentions too) from ``BIOHICL_DATA_DIR``, decontaminated, with the dev split; returns ``(DatasetDict,
    PairDatasetSummary)``."""
    return build_dataset_from_files(
        default_inputs(mentions=mix_label_kinds), output_dir, top_k=top_k, seed=seed, progress=progress,
        mix_label_kinds=mix_label_kinds, **kwargs,
    )  # fmt: skip
