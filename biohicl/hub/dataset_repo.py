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
Everything is checked first (``summary.json``'s card fields included), then staged in a sibling folder of ``out``
that is renamed into place (a symlinked ``out`` is resolved first: its target is written): a failure, the final
rename included, leaves neither a half-built ``out`` nor the staging folder.

Once the upload succeeded, :func:`record_dataset_publication` writes ``NAME.published.json`` beside the local folder
``NAME``: the repo id, the branch and the sha256 of the contents pushed, which the model card of a run trained on
that folder links while the folder still holds them (:func:`~biohicl.hub.card_data_source.published_dataset`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from biohicl import __version__
from biohicl.atomic import atomic_write_text, recover_swapped_folder
from biohicl.data.columns import column_array, in_memory_dataset
from biohicl.data.dataset_card import LICENSE_FILE, card_metadata, render_dataset_card, render_license_file, split_file
from biohicl.data.storage import SUMMARY_NAME, load_pair_dataset, read_build_summary
from biohicl.errors import DataError, PublishError
from biohicl.hub.card_data_source import PUBLISHED_SUFFIX, branch_or_none, dataset_contents, publication_record_path
from biohicl.hub.folder_checks import check_folder
from biohicl.hub.publish import building_into, check_out_folder
from biohicl.hub.run_sources import without_machine_paths

logger = logging.getLogger(__name__)

SPLIT_NAME = re.compile(r"\w+")
#: the build summary's fields the dataset card reads (``PairDatasetSummary``), with their JSON types
CARD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "documents": int,
    "pairs": int,
    "top_k": int,
    "seed": int,
    "mean_labels_per_document": (int, float),
    "mean_siml": (int, float),
    "test_documents": int,
    "excluded_documents": int,
    "sources": dict,
    "mesh_version": str,
    "mesh_source": str,
    "read": dict,
    "label_kinds": dict,
    "splits": dict,
    "pairs_by_split": dict,
    "composition": list,
    "folders": dict,
    "duplicates": int,
    "dev": dict,
    "decontamination": dict,
}


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
    from datasets import DatasetDict

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
    tables = {"documents": documents.data.table.take(order), "pairs": table}
    return DatasetDict({name: in_memory_dataset(value) for name, value in tables.items()}), splits


def build_dataset_repo_folder(
    source: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    license: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    temporary: bool = False,
) -> Path:
    """Stage the Hub layout of the MeSH-pair dataset ``source`` (a ``biohicl build-dataset`` folder) in ``out``.

    ``license`` overrides the license id derived from the sources (``other`` adds ``license_name`` and
    ``license_link``); ``repo_id`` goes into the card's snippet, which loads branch ``revision`` when that is not the
    default (``main``). An ``out`` that is, holds or lies in ``source``, or is or holds the working folder
    (:func:`~biohicl.hub.publish.check_out_folder`), is a :class:`PublishError` before anything is deleted; a
    non-empty ``out`` needs ``overwrite=True`` and is replaced only once the staging (in a hidden sibling folder) has
    succeeded (:func:`~biohicl.hub.publish.building_into`, as a model repo folder is). ``temporary``: ``out`` is a
    folder the caller deletes (``biohicl publish`` without ``--out``), which the log line says.
    """
    source, out = Path(source), Path(out)
    if out.is_symlink():  # a linked --out is written into the link's target, as before staging beside it
        out = out.resolve()
    check_out_folder(out)
    target, kept = out.resolve(), source.resolve()
    if target == kept or target in kept.parents or kept in target.parents:
        raise PublishError(
            f"{out}: is, holds or lies in {source}; staging there would delete it (choose another --out)"
        )
    staged, splits = split_layout(load_pair_dataset(source), source)
    summary = card_summary(source)
    branch = branch_or_none(revision)
    card = _render_card(staged, summary, source / SUMMARY_NAME, license=license, repo_id=repo_id, revision=branch)
    recover_swapped_folder(out)  # a previous --out a kill left aside counts as there
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PublishError(f"{out}: exists and is not empty (pass overwrite=True / --overwrite)")
    with building_into(out) as staging:
        _stage(staged, splits, summary, card, staging, license=license)
        check_folder(staging, allow_large_files=True)  # token and symlink checks now; size is checked at upload
    gone = ", a temporary folder deleted when the command ends (--out DIR keeps it)" if temporary else ""
    logger.info("staged %s for the Hub in %s (splits %s)%s", source, out, ", ".join(splits), gone)
    return out


def record_dataset_publication(source: str | Path, repo_id: str, revision: str | None = None) -> Path | None:
    """Record that the dataset folder ``source`` was pushed as ``repo_id`` (branch ``revision``; None or ``main``: the
    default), for the model cards of runs trained on it: ``NAME.published.json`` beside the folder
    (:func:`~biohicl.hub.card_data_source.publication_record_path`; not inside it, which a rebuild would refuse to
    replace), written atomically, holding the sha256 of its ``summary.json`` and parquet files
    (:func:`~biohicl.hub.card_data_source.dataset_contents`), so a folder rebuilt or changed since is not linked.

    Call it once the upload succeeded, never for a dry run or a staging alone. A record that cannot be written (a
    read-only folder) is one warning, not a failed publish: the dataset is on the Hub. Returns the record's path."""
    path = publication_record_path(source)
    name = path.name.removesuffix(PUBLISHED_SUFFIX)
    record = {
        "repo_id": repo_id,
        "revision": branch_or_none(revision),
        **dataset_contents(source),
        "biohicl_version": __version__,
    }
    try:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as err:
        logger.warning(
            "published %s as %s, but could not record it in %s (%s), so the model cards of runs trained on %s will "
            "not link it",
            name,
            repo_id,
            path,
            err.strerror or err,
            name,
        )
        return None
    logger.info("recorded in %s that %s is published as %s, for the cards of runs trained on it", path, name, repo_id)
    return path


def card_summary(folder: Path) -> dict[str, Any] | None:
    """The ``summary.json`` of the build in ``folder`` (:func:`~biohicl.data.storage.read_build_summary`) without
    local paths (None when there is none); a damaged one, or a field the card reads missing or of another type, is
    refused in one line naming the file (and the field)."""
    try:
        summary = read_build_summary(folder)
    except DataError as err:  # not UTF-8, not JSON, or JSON that is no object
        raise PublishError(f"{err}; rebuild it with `biohicl build-dataset`") from None
    if summary is None:
        return None
    summary, path = without_machine_paths(summary), folder / SUMMARY_NAME
    for name, kind in CARD_FIELDS.items():
        value = summary.get(name)
        if name not in summary or not isinstance(value, kind) or isinstance(value, bool):
            what = f"`{name}` is {type(value).__name__}, not {_kind(kind)}" if name in summary else f"no `{name}`"
            raise PublishError(f"{path}: {what} (the dataset card needs it); rebuild it with `biohicl build-dataset`")
    return summary


def _kind(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def _render_card(staged, summary: dict[str, Any] | None, where: Path, **options: str | None) -> str:
    """The dataset card, a summary field of another shape than the card reads being a one-line error naming it."""
    import jinja2

    try:
        return render_dataset_card(staged, summary, split_files=True, **options)
    except (jinja2.TemplateError, TypeError, ValueError) as err:  # a nested field of another shape
        if summary is None:
            raise
        raise PublishError(f"{where}: a field the dataset card reads is malformed ({err})") from None


def _stage(
    staged, splits: list[str], summary: dict[str, Any] | None, card: str, out: Path, license: str | None
) -> None:
    """Write the Hub layout of ``staged`` into the (empty) folder ``out``: parquet files, summary, card, license."""
    import datasets

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

    if summary is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(card, encoding="utf-8")
    if card_metadata(staged, split_files=True, license=license).get("license_link") == LICENSE_FILE:
        (out / LICENSE_FILE).write_text(render_license_file(staged, summary), encoding="utf-8")
