"""The processed MeSH-pair dataset: documents with their MeSH labels, and each document's top-k partners by SimL.

Two configurations, saved as parquet with a dataset card (``README.md``) the Hub and
``datasets.load_dataset("parquet", ...)`` both read, plus a ``save_to_disk`` copy for ``load_from_disk``::

    out/
      README.md                      dataset card (YAML: license, configs → data_files, counts, SimL, MeSH version)
      dataset_dict.json              load_from_disk entry point
      documents/documents-00000.parquet   pmid, title, abstract, mesh, tree_numbers, source, split, question, ...
      documents/data-00000-of-00001.arrow (+ state.json, dataset_info.json)
      pairs/pairs-00000.parquet      anchor, anchor_pmid, partner, partner_pmid, siml, rank, split

Pairs are mined blockwise (rows of the SimL matrix a block at a time, never the dense n×n), keeping for each
anchor its ``top_k`` partners with SimL > 0, self excluded. SimL is rounded to 6 decimals; ties are broken by a
permutation of the documents drawn from ``seed``, so a build is deterministic for a seed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import _explain, pid_alive
from ..errors import ConfigError, DataError
from ..mesh import MeshHierarchy, gram_factors
from .readers import MeshRecord, ReadReport

SIML_DECIMALS = 6
DOCUMENT_COLUMNS = (
    "pmid", "title", "abstract", "mesh", "tree_numbers", "source", "split", "question", "long_answer", "year",
    "journal",
)  # fmt: skip
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
        sources = ", ".join(f"{name} {count:,}" for name, count in self.sources.items())
        lines += [
            f"documents in dataset: {self.documents:,} ({sources}); PubMedQA test documents: "
            f"{self.test_documents:,}; excluded by pmid: {self.excluded_documents:,}",
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
):
    """Build the ``datasets.DatasetDict`` with configurations ``documents`` and ``pairs``.

    ``limit`` keeps the first ``limit`` records (after exclusion; reading stops there); ``exclude_pmids`` and
    ``exclude_test`` (records whose ``split`` is ``test``) remove documents so that no pair touches them.
    A pair's ``split`` is ``test`` when either end is a ``test`` document. Returns ``(dataset_dict, summary)``.
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
        docs.append(record)
        if limit is not None and len(docs) >= limit:
            break
    if not docs:
        raise DataError("no documents to build a dataset from (every record was skipped or excluded)")
    labels = [list(d.mesh) for d in docs]
    mined = mine_top_k(labels, mesh, top_k=top_k, seed=seed, progress=progress)
    pmids = np.array([d.pmid for d in docs], dtype=object)
    is_test = np.array([d.split == "test" for d in docs])
    doc_features = Features(
        {
            "pmid": Value("string"),
            "title": Value("string"),
            "abstract": Value("string"),
            "mesh": List(Value("string")),
            "tree_numbers": List(Value("string")),
            "source": Value("string"),
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
            "tree_numbers": [sorted({t for ui in d.mesh for t in mesh.trees.get(ui, ())}) for d in docs],
            "source": [d.source for d in docs],
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
    pairs = _dataset(
        {
            "anchor": mined.anchor,
            "anchor_pmid": pmids[mined.anchor].tolist(),
            "partner": mined.partner,
            "partner_pmid": pmids[mined.partner].tolist(),
            "siml": mined.siml,
            "rank": mined.rank.astype(np.int32),
            "split": np.where(is_test[mined.anchor] | is_test[mined.partner], "test", "train").tolist(),
        },
        features=pair_features,
    )
    sources: dict[str, int] = {}
    for d in docs:
        sources[d.source] = sources.get(d.source, 0) + 1
    summary = PairDatasetSummary(
        documents=len(docs),
        pairs=len(mined),
        top_k=top_k,
        seed=seed,
        mean_labels_per_document=float(np.mean([len(x) for x in labels])),
        mean_siml=float(mined.siml.astype(np.float64).mean()) if len(mined) else 0.0,
        test_documents=int(is_test.sum()),
        excluded_documents=n_excluded,
        sources=sources,
        mesh_version=mesh.version,
        mesh_source=Path(mesh.source).name if mesh.source else "",
        read=report.to_dict() if report is not None else {},
        seconds=round(time.perf_counter() - started, 2),
    )
    return DatasetDict({"documents": documents, "pairs": pairs}), summary


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

    from .dataset_card import render_dataset_card

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
    """Reload a saved MeSH-pair dataset from its parquet files as a ``DatasetDict`` (documents, pairs)."""
    from datasets import DatasetDict, load_dataset

    path = Path(path)
    if not (path / "documents").is_dir():
        raise DataError("not a MeSH-pair dataset (no documents/ folder)", path)
    return DatasetDict(
        {
            config: load_dataset(
                "parquet", data_files=str(path / config / "*.parquet"), split="train", keep_in_memory=True
            )
            for config in ("documents", "pairs")
        }
    )


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
):
    """Read ``(source, files)`` groups, build the MeSH-pair dataset and (unless ``output_dir`` is None) save it.

    ``exclude_test`` removes the official PubMedQA test abstracts (``test_ids``, by default
    ``$BIOHICL_DATA_DIR/pubmedqa/test_ground_truth.json`` when present, plus every record marked ``test``).
    Returns ``(dataset_dict, summary)``.
    """
    from .readers import read_records, unique_records

    mesh = mesh or MeshHierarchy.load()
    report = ReadReport()
    excluded: set[str] = set()
    if exclude_test:
        excluded = _test_pmids(test_ids)

    def stream():
        for source, files in inputs:
            yield from read_records(source, files, mesh, strict=strict, report=report)

    records: Iterable[MeshRecord] = unique_records(stream(), report, strict=strict)
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, desc="reading abstracts", unit="doc", total=limit)
    dataset, summary = build_pair_dataset(
        records, mesh, top_k=top_k, seed=seed, limit=limit, exclude_pmids=excluded, exclude_test=exclude_test,
        report=report, progress=progress,
    )  # fmt: skip
    if output_dir is not None:
        save_pair_dataset(dataset, output_dir, summary, arrow=arrow)
    return dataset, summary


def _test_pmids(test_ids: str | Path | None) -> set[str]:
    from ..settings import data_dir
    from .readers import load_pubmedqa_test_ids

    if test_ids is not None:
        return load_pubmedqa_test_ids(test_ids)
    root = data_dir(required=False)
    candidate = root / "pubmedqa" / "test_ground_truth.json" if root is not None else None
    return load_pubmedqa_test_ids(candidate) if candidate is not None and candidate.is_file() else set()


def default_inputs() -> list[tuple[str, list[Path]]]:
    """The real corpora the demo uses: PubMedQA (all 1,000 PQA-L abstracts) and BC5CDR (3 PubTator files)."""
    from ..settings import data_path

    return [
        ("pubmedqa", [data_path("pubmedqa", "ori_pqal.json")]),
        (
            "pubtator",
            [data_path("bc5cdr", f"CDR_{part}Set.PubTator.txt") for part in ("Training", "Development", "Test")],
        ),
    ]


def build_default_dataset(
    output_dir: str | Path | None, *, top_k: int = 10, seed: int = 0, progress: bool = True, **kwargs: Any
):
    """Build the MeSH-pair dataset from the real PubMedQA (``split`` marks its 500 test abstracts) and BC5CDR
    abstracts in ``BIOHICL_DATA_DIR``; returns ``(DatasetDict, PairDatasetSummary)``."""
    return build_dataset_from_files(default_inputs(), output_dir, top_k=top_k, seed=seed, progress=progress, **kwargs)
