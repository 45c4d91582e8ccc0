"""The Hub layout of a MeSH-pair dataset: what ``biohicl publish --dataset`` uploads, staged from a local build.

    out/
      README.md                                  the card: ``configs`` declare one file per config and split
      LICENSE.md                                 the per-source terms (the card's ``license_link``, license other)
      summary.json                               the build's summary, local paths reduced to file names
      documents/{dev,test,train}-00000-of-00001.parquet
      pairs/{dev,test,train}-00000-of-00001.parquet

The local build (:mod:`biohicl.data.storage`) declares one ``train`` split holding every row, the PubMedQA test
abstracts included; here each split is its own file and Hub split. Documents are ordered by split in file-name
order (dev, test, train; build order within a split), the order in which every biohicl reader concatenates
``documents/*.parquet``, and ``pairs.anchor`` / ``pairs.partner`` are remapped to it. Pairs never cross splits.
No ``save_to_disk`` Arrow copy is staged: the Hub loader reads the parquet files only.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from biohicl.data.columns import column_array
from biohicl.data.dataset_card import LICENSE_FILE, card_metadata, render_dataset_card, render_license_file, split_file
from biohicl.data.storage import load_pair_dataset
from biohicl.errors import PublishError
from biohicl.hub.publish import check_folder
from biohicl.hub.run_sources import without_machine_paths
from biohicl.jsonio import read_json

logger = logging.getLogger(__name__)

SPLIT_NAME = re.compile(r"\w+")


def _indices(pairs, column: str, n_documents: int, where: Path) -> np.ndarray:
    values = column_array(pairs, column, np.int64)
    bad = np.flatnonzero((values < 0) | (values >= n_documents))
    if len(bad):
        row = int(bad[0])
        raise PublishError(f"{where}: row {row}: {column} {values[row]} is not a row of the {n_documents} documents")
    return values


def split_layout(dataset, where: str | Path):
    """``dataset`` (documents, pairs) reordered for the Hub layout: documents by split in sorted split-name order
    (stable within a split), pairs likewise with ``anchor``/``partner`` remapped to the new document rows.

    A pair whose ends (or whose ``split`` column) disagree on the split is a :class:`PublishError`: the Hub splits
    would not be separable. Returns the reordered ``DatasetDict`` and the split names.
    """
    import pyarrow as pa
    from datasets import Dataset, DatasetDict

    where = Path(where)
    documents, pairs = dataset["documents"], dataset["pairs"]
    for config in ("documents", "pairs"):
        if "split" not in dataset[config].column_names:
            raise PublishError(f"{where / config}: no 'split' column; rebuild it with `biohicl build-dataset`")
    doc_split = column_array(documents, "split", object)
    for name in dict.fromkeys(doc_split):
        if not isinstance(name, str) or not SPLIT_NAME.fullmatch(name):
            raise PublishError(f"{where / 'documents'}: split {name!r} is not a split name (letters, digits, _)")
    if not len(pairs):
        raise PublishError(f"{where / 'pairs'}: no pairs; nothing to train on, nothing published")
    splits = sorted(set(doc_split))
    order = np.concatenate([np.flatnonzero(doc_split == name) for name in splits])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))

    anchor = _indices(pairs, "anchor", len(documents), where / "pairs")
    partner = _indices(pairs, "partner", len(documents), where / "pairs")
    pair_split = doc_split[anchor]
    stated = column_array(pairs, "split", object)
    crossing = np.flatnonzero((pair_split != doc_split[partner]) | (pair_split != stated))
    if len(crossing):
        row = int(crossing[0])
        raise PublishError(
            f"{where / 'pairs'}: row {row} (split {stated[row]!r}) pairs a {pair_split[row]!r} document with a "
            f"{doc_split[partner[row]]!r} one; pairs must stay within one split"
        )
    pair_order = np.concatenate([np.flatnonzero(pair_split == name) for name in splits])
    table = pairs.data.table.take(pair_order)
    for column, values in (("anchor", anchor), ("partner", partner)):
        index = table.schema.get_field_index(column)
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array(position[values[pair_order]], type=field.type))
    return DatasetDict({"documents": Dataset(documents.data.table.take(order)), "pairs": Dataset(table)}), splits


def build_dataset_repo_folder(
    source: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    license: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Stage the Hub layout of the MeSH-pair dataset ``source`` (a ``biohicl build-dataset`` folder) in ``out``.

    ``license`` overrides the license id derived from the sources (``other`` adds ``license_name`` and
    ``license_link``); ``repo_id`` goes into the card's snippet. An ``out`` that is, holds or lies in ``source`` is a
    :class:`PublishError` before anything is deleted; a non-empty ``out`` needs ``overwrite=True``.
    """
    import datasets

    source, out = Path(source), Path(out)
    target, kept = out.resolve(), source.resolve()
    if target == kept or target in kept.parents or kept in target.parents:
        raise PublishError(
            f"{out}: is, holds or lies in {source}; staging there would delete it (choose another --out)"
        )
    staged, splits = split_layout(load_pair_dataset(source), source)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise PublishError(f"{out}: exists and is not empty (pass overwrite=True / --overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        for config in ("documents", "pairs"):
            rows = column_array(staged[config], "split", object)
            (out / config).mkdir()
            for name in splits:
                picked = np.flatnonzero(rows == name)
                if len(picked):  # an empty parquet file breaks the Hub loader: a split without rows has none
                    start, stop = int(picked[0]), int(picked[-1]) + 1
                    staged[config].select(range(start, stop)).to_parquet(str(out / split_file(config, name)))
    finally:
        if bars:
            datasets.enable_progress_bars()

    summary = None
    if (source / "summary.json").is_file():
        summary = without_machine_paths(read_json(source / "summary.json", error=PublishError))
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    card = render_dataset_card(staged, summary, split_files=True, license=license, repo_id=repo_id)
    (out / "README.md").write_text(card, encoding="utf-8")
    if card_metadata(staged, split_files=True, license=license).get("license_link") == LICENSE_FILE:
        (out / LICENSE_FILE).write_text(render_license_file(staged), encoding="utf-8")
    logger.info("staged %s for the Hub in %s (splits %s)", source, out, ", ".join(splits))
    check_folder(out, allow_large_files=True)  # token and symlink checks now; size is checked at upload
    return out
