"""What a model card says about a run's training data: the dataset its arguments name (``dataset_path``), read from
the build's ``summary.json`` (sources and counts per split, label kinds, the dev split, decontamination), the Hub
dataset it was published as (a release manifest's, else the record ``biohicl publish --dataset`` left beside the
folder, :data:`PUBLISHED_SUFFIX`, while the folder holds what was pushed), and the card's license when none is given.

Nothing here writes a local path into a card: a folder or file is named by its last component only.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from biohicl.data.dataset_card import LABEL_KIND_INFO, SOURCE_LABEL_INFO, own_sources, source_info
from biohicl.data.files import resolved_path
from biohicl.data.storage import SUMMARY_NAME, read_build_summary
from biohicl.errors import BioHiCLError
from biohicl.field_types import is_int

logger = logging.getLogger(__name__)

#: the license a card states when none is given and the model is not registered: the weights' terms follow the
#: base model's and the training data's, which biohicl does not know
UNSTATED_LICENSE = "other"

#: ``training_summary.json``'s ``data`` counts as the card's table words them
COUNT_LABELS = {
    "documents": "training documents",
    "documents_in_dataset": "documents in the dataset (all splits)",
    "mined_pairs": "mined pairs between training documents",
    # training re-reads the dataset's labels, already resolved when it was built: its own count, not the build's
    "labels_dropped_unknown": "MeSH labels unknown to the MeSH table at training time (dropped)",
    "labels_without_tree_position": "MeSH labels with no tree position (not in SimL, e.g. Male)",
    "check_tags_dropped": "check tags dropped",
    "documents_without_labels": "training documents with no MeSH label left",
}

#: evaluation sets of the decontamination record as the card words them
EVALUATION_SET_NAMES = {
    "pubmedqa-test": "PubMedQA test",
    "scifact": "SciFact",
    "biosses": "BIOSSES",
    "nfcorpus": "NFCorpus",
    "trec-covid": "TREC-COVID",
    "scidocs": "SCIDOCS",
}


#: the row of the labels the dataset's build dropped (its ``summary.json``'s ``read.labels_dropped``, all reasons)
BUILD_DROPPED_LABEL = "MeSH labels dropped when the dataset was built (all splits)"


def count_rows(counts: dict[str, Any], build: dict[str, Any] | None = None) -> dict[str, int]:
    """The card's count table from ``training_summary.json``'s ``data``: whole numbers only, human-readable labels
    (a key biohicl does not know keeps its name, underscores as spaces); with the dataset's ``summary.json``
    (``build``), the labels its build dropped (:data:`BUILD_DROPPED_LABEL`) before the training-time count."""
    rows = {COUNT_LABELS.get(key, key.replace("_", " ")): int(value) for key, value in counts.items() if is_int(value)}
    read = build.get("read") if isinstance(build, dict) else None
    dropped = read.get("labels_dropped") if isinstance(read, dict) else None
    if not isinstance(dropped, dict):
        return rows
    built = {BUILD_DROPPED_LABEL: sum(_int(n) for n in dropped.values())}
    at = (
        list(rows).index(COUNT_LABELS["labels_dropped_unknown"])
        if COUNT_LABELS["labels_dropped_unknown"] in rows
        else len(rows)
    )
    items = list(rows.items())
    return dict([*items[:at], *built.items(), *items[at:]])


def dataset_summary(dataset_path: str | None) -> dict[str, Any] | None:
    """The ``summary.json`` of the ``biohicl build-dataset`` folder at ``dataset_path`` (None for a documents file,
    a folder without one, or a path not found from the working directory); a damaged one is a one-line
    :class:`~biohicl.errors.DataError` naming it (:func:`~biohicl.data.storage.read_build_summary`), not a card
    saying the folder has none."""
    return read_build_summary(Path(dataset_path).expanduser()) if dataset_path else None


def _int(value: Any) -> int:
    return value if is_int(value) else 0


def _num(value: int) -> str:
    return f"{value:,}"


def _many(value: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


#: label kinds in a word or two (the source table's column)
KIND_NAMES = {"indexing": "MeSH indexing", "mentions": "entity-mention"}
#: sources whose labels are the builder's own whatever the build, not NLM's or a public corpus's (a build's own
#: PubTator files join them: :func:`~biohicl.data.dataset_card.own_sources`)
OWN_SOURCES = frozenset(SOURCE_LABEL_INFO)


def _kinds(
    label_kinds: dict[str, Any],
    sources: set[str] | None,
    noun: str = "training documents",
    own: frozenset[str] = OWN_SOURCES,
) -> str:
    """``{"indexing": 509}`` → "MeSH indexing: the descriptors NLM indexers assign ... (509 training documents)";
    labels of the builder's own abstracts only (``own``) are said to be as supplied, not NLM's, and those of
    unknown sources (``None``) by their kind's name only."""
    parts = []
    for kind, count in label_kinds.items():
        if not sources:
            info = f"{KIND_NAMES.get(kind, kind)} labels"
        elif sources <= own:
            info = f"{KIND_NAMES.get(kind, kind)} labels as supplied with the abstracts"
        else:
            info = LABEL_KIND_INFO.get(kind, kind)
        parts.append(f"{info} ({_num(_int(count))} {noun})" if _int(count) else info)
    return "; ".join(parts)


def branch_or_none(revision: object) -> str | None:
    """The branch ``revision`` names, None for the default one: ``main``, an empty or no revision (a manifest's
    value of another type, too). A card links, and a snippet loads, a branch only when it is not the default."""
    return revision if isinstance(revision, str) and revision not in ("", "main") else None


@dataclass(frozen=True)
class HubDataset:
    """A Hub dataset repo and the branch it was published to (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    @property
    def url(self) -> str:
        """The dataset's page, at its branch when that is not the default."""
        page = f"https://huggingface.co/datasets/{self.repo_id}"
        return f"{page}/tree/{quote(self.revision, safe='')}" if self.revision else page


#: beside a dataset folder ``NAME``, the record ``NAME.published.json`` of its last push by ``biohicl publish NAME
#: --dataset`` (not beside ``summary.json``: a rebuild replaces a folder holding a build's own files only)
PUBLISHED_SUFFIX = ".published.json"
#: what a publication record ties the Hub repo to: the sha256 of the build's ``summary.json`` and of its parquet files
CONTENT_KEYS = ("summary_sha256", "data_sha256")
#: ``summary.json`` keys of how a build ran, not of what it holds: left out of its digest, so that an identical
#: rebuild (another wall time, or the same build given from another folder) keeps its link
BUILD_RUN_KEYS = ("seconds", "command")


def publication_record_path(folder: str | Path) -> Path:
    """Where the publication record of the dataset folder ``folder`` is: ``NAME.published.json`` beside it."""
    folder = resolved_path(folder)
    return folder.parent / f"{folder.name}{PUBLISHED_SUFFIX}"


def dataset_contents(folder: str | Path) -> dict[str, str | None]:
    """The sha256 of the build's ``summary.json`` (None without one) less its :data:`BUILD_RUN_KEYS` (its keys sorted;
    a file that is no JSON object: its bytes) and of its ``documents``/``pairs`` parquet files, the rows published:
    what a publication record is tied to."""
    from biohicl.provenance import files_sha256

    folder = resolved_path(folder)
    data = sorted(path for config in ("documents", "pairs") for path in (folder / config).glob("*.parquet"))
    return {"summary_sha256": _summary_sha256(folder / SUMMARY_NAME), "data_sha256": files_sha256(data)}


def _summary_sha256(path: Path, whole: bool = False) -> str | None:
    """:func:`dataset_contents`' digest of ``summary.json``; ``whole``: of its bytes, as records of older code hold."""
    import hashlib
    import json

    from biohicl.provenance import files_sha256

    if not path.is_file():
        return None
    try:
        summary = None if whole else json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        summary = None
    if not isinstance(summary, dict):
        return files_sha256([path])
    kept = {key: value for key, value in summary.items() if key not in BUILD_RUN_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def published_dataset(dataset_path: str | Path) -> HubDataset | None:
    """The Hub dataset the folder ``dataset_path`` was last pushed as (its :func:`publication_record_path`), while
    the folder holds what was pushed (:func:`dataset_contents`); else None, with one warning when a record is there
    but damaged or of other contents (a rebuilt folder: the repo holds other rows than the run trained on)."""
    from biohicl.jsonio import read_json
    from biohicl.models.registry import is_repo_id

    record_path = publication_record_path(dataset_path)
    if not record_path.is_file() or not resolved_path(dataset_path).is_dir():
        return None
    again = f"publish the dataset again (biohicl publish {shlex.quote(str(dataset_path))} --dataset"
    try:
        record = read_json(record_path)
    except BioHiCLError as err:
        logger.warning("%s; the card does not link the dataset: %s --repo_id ID) to link it", err, again)
        return None
    repo_id = record.get("repo_id") if isinstance(record, dict) else None
    revision = record.get("revision") if isinstance(record, dict) else None
    if not (isinstance(repo_id, str) and is_repo_id(repo_id)) or not isinstance(revision, str | None):
        logger.warning(
            "%s: not a publication record of biohicl publish (no owner/name repo_id, or a revision that is no "
            "text), so the card does not link the dataset; %s --repo_id ID) to link it",
            record_path,
            again,
        )
        return None
    again += f" --repo_id {repo_id}" + (f" --revision {shlex.quote(revision)}" if revision else "")
    contents = dataset_contents(dataset_path)
    older = _summary_sha256(resolved_path(dataset_path) / SUMMARY_NAME, whole=True)  # a record of older code's
    if record.get("data_sha256") != contents["data_sha256"] or record.get("summary_sha256") not in (
        contents["summary_sha256"],
        older,
    ):
        logger.warning(
            "%s: %s was published as %s with other contents than the folder holds now (rebuilt or changed since), "
            "so the card does not link it; %s) to link it",
            record_path,
            resolved_path(dataset_path).name,
            repo_id,
            again,
        )
        return None
    return HubDataset(repo_id, branch_or_none(revision))


def dataset_hub_link(dataset_path: str | Path, root: str | Path = ".") -> HubDataset | None:
    """The Hub dataset the dataset at ``dataset_path`` is published as: the ``repo_id`` (and ``revision``) of the
    release manifest under ``root/hub/datasets/`` whose ``source`` is that folder (both relative to the working
    directory), reviewed, first; else the record of its last push (:func:`published_dataset`); else None."""
    from biohicl.config_values import load_yaml, read_config_text
    from biohicl.errors import ConfigError

    wanted = resolved_path(dataset_path)
    root = Path(root)
    for path in sorted((root / "hub" / "datasets").glob("*.yaml")):
        try:  # read as publish reads a manifest: one it refuses (a key given twice, say) names no dataset
            values = load_yaml(read_config_text(path, "manifest"), path)
        except ConfigError:  # another manifest's damage (any load_yaml failure) is its own publish's to name
            continue
        if not isinstance(values, dict) or not isinstance(values.get("source"), str):
            continue
        if resolved_path(values["source"]) == wanted and isinstance(values.get("repo_id"), str):
            return HubDataset(values["repo_id"], branch_or_none(values.get("revision")))
    return published_dataset(dataset_path)


def _source_rows(summary: dict[str, Any]) -> list[str]:
    """A Markdown table of the build's documents per source, label kind and split, with each source's terms."""
    composition = [row for row in summary.get("composition") or [] if isinstance(row, dict)]
    if not composition:
        sources = summary.get("sources") or {}
        composition = [{"source": s, "total": n} for s, n in sources.items()] if isinstance(sources, dict) else []
    if not composition:
        return []
    lines = ["| source | labels | train | dev | test | terms |", "|---|---|---:|---:|---:|---|"]
    for row in composition:
        key = str(row.get("source"))
        info = source_info(key, summary)  # PubTator: BC5CDR only when its files are the corpus's
        counts = " | ".join(_num(_int(row.get(split))) if split in row else "–" for split in ("train", "dev", "test"))
        kind = str(row.get("label_kind") or "–")
        lines.append(f"| {info['name']} (`{key}`) | {KIND_NAMES.get(kind, kind)} | {counts} | {info['license']} |")
    return lines


def _dev_sentence(summary: dict[str, Any]) -> str:
    splits = summary.get("splits") if isinstance(summary.get("splits"), dict) else {}
    dev = summary.get("dev") if isinstance(summary.get("dev"), dict) else {}
    n_dev = _int(splits.get("dev"))
    if not dev and not n_dev:
        return "No dev split was held out."
    parts = []
    if dev:
        parts.append(
            f"{_many(_int(dev.get('pubmedqa_dev')), 'PubMedQA dev item')} and "
            f"{_many(_int(dev.get('held_out')), 'held-out document')}, seed {dev.get('seed')}"
        )
    detail = f" ({parts[0]})" if parts else ""
    return f"Dev split: {_many(n_dev, 'document')}{detail}, held out from training for model selection only."


def _decontamination_sentence(summary: dict[str, Any]) -> str:
    record = summary.get("decontamination")
    if not isinstance(record, dict) or not record:
        return (
            "Decontamination was off for this build (`--no_decontaminate`): no document was checked against the "
            "evaluation sets."
        )
    removed = _int(record.get("removed"))
    by_set = record.get("by_set") if isinstance(record.get("by_set"), dict) else {}
    sets = record.get("sets") if isinstance(record.get("sets"), dict) else {}
    which = ", ".join(f"{EVALUATION_SET_NAMES.get(k, k)} {_num(_int(v))}" for k, v in by_set.items())
    checked = ", ".join(f"{EVALUATION_SET_NAMES.get(k, k)} ({_many(_int(v), 'item')})" for k, v in sets.items())
    text = f"Decontamination: {_many(removed, 'document')} removed as evaluation test data" + (
        f" ({which})" if which else ""
    )
    text += f", checked against {checked}" if checked else ""
    missing = [EVALUATION_SET_NAMES.get(str(m), str(m)) for m in record.get("missing") or []]
    if missing:
        text += f"; not checked (not found when the dataset was built): {', '.join(missing)}"
    return text + "."


def training_data_paragraph(dataset_path: str | None, run_counts: dict[str, Any], hub: HubDataset | None = None) -> str:
    """The card's training-data text for a run trained on ``dataset_path`` (``biohicl_training_args.json``);
    ``run_counts`` is ``training_summary.json``'s ``data``; ``hub`` the Hub dataset it is published as
    (:func:`dataset_hub_link`), linked at its branch. Empty when the run names no dataset."""
    if not dataset_path:
        return ""
    path = Path(dataset_path).expanduser()
    name = f"`{path.name or dataset_path}`"
    splits = run_counts.get("splits") if isinstance(run_counts.get("splits"), list) else ["train"]
    split_words = ", ".join(f"`{s}`" for s in splits)
    split_words = f"the {split_words} split{'s' if len(splits) > 1 else ''}"
    published = f", published as [`{hub.repo_id}`]({hub.url})" if hub else ""
    published += f" (revision `{hub.revision}`)" if hub and hub.revision else ""
    kinds = run_counts.get("label_kinds") if isinstance(run_counts.get("label_kinds"), dict) else {}
    label_text = f"Labels: {_kinds(kinds, set(OWN_SOURCES) if path.is_file() else None)}." if kinds else ""
    if path.is_file():
        return " ".join(
            part
            for part in (
                f"Trained on the documents file {name} (its MeSH-labelled abstracts, read directly: not built with "
                "`biohicl build-dataset`, so biohicl removed no evaluation test documents from it and held out no "
                "dev split; its terms are as its provider states).",
                label_text,
            )
            if part
        )
    summary = dataset_summary(dataset_path)
    if summary is None:
        where = "has no summary.json" if path.is_dir() else "was not found when this card was written"
        if not path.exists():  # a relative dataset_path is looked up from the working directory
            logger.warning(
                "the run's dataset %s is not found from %s, so the card leaves out its sources, splits and "
                "decontamination; publish from the folder the run was trained from",
                path,
                Path.cwd(),
            )
        return " ".join(
            part
            for part in (
                f"Trained on {split_words} of the MeSH-pair dataset {name}{published}; the folder {where}, so its "
                "sources, splits and decontamination are not recorded here.",
                label_text,
            )
            if part
        )
    n_pairs = _int(summary.get("pairs"))
    head = (
        f"Trained on {split_words} of the MeSH-pair dataset {name}{published}, built with `biohicl build-dataset`"
        f" (MeSH {summary.get('mesh_version', '?')}): {_num(_int(summary.get('documents')))} documents"
        + (
            f" and {_num(n_pairs)} pairs mined by SimL (top {summary.get('top_k')} per document, all splits)"
            if n_pairs
            else ""
        )
        + "."
    )
    sources = set(summary["sources"]) if isinstance(summary.get("sources"), dict) else None
    own = own_sources(summary)
    if kinds:
        label_text = f"Labels: {_kinds(kinds, sources, own=own)}."
    elif isinstance(summary.get("label_kinds"), dict):
        label_text = f"Labels: {_kinds(summary['label_kinds'], sources, 'documents', own)}."
    splits_count = summary.get("splits") if isinstance(summary.get("splits"), dict) else {}
    test = _int(splits_count.get("test", summary.get("test_documents")))
    tail = [label_text, _dev_sentence(summary), _decontamination_sentence(summary)]
    if test:
        tail.append(f"{_num(test)} PubMedQA test abstracts are in the dataset as split `test`, never trained on.")
    rows = _source_rows(summary)
    body = " ".join(part for part in tail if part)
    return "\n\n".join(part for part in (head, "\n".join(rows), body) if part)


def card_license(explicit: str | None, repo_id: str | None, current: str) -> str:
    """The license a published card states: ``explicit`` (``--license`` or a manifest's ``license``) as given;
    else the registry's license of ``repo_id`` when it is a registered model with a known one; else ``current``
    (the card data's own; :data:`UNSTATED_LICENSE` for a card built from a run), with one warning asking for
    ``--license`` when that is :data:`UNSTATED_LICENSE`."""
    if explicit:
        return explicit
    if repo_id:
        from biohicl.models.registry import default_registry

        entry = default_registry().by_repo_id(repo_id)
        if entry is not None and entry.license and entry.license != "unknown":
            logger.info("%s: license %s, from its registry entry %s", repo_id, entry.license, entry.name)
            return entry.license
    if current == UNSTATED_LICENSE:
        logger.warning(
            "no --license given, so the card says `license: %s`: the weights' terms follow the base model's and the "
            "training data's, which biohicl does not know; pass --license ID (e.g. apache-2.0) to state them",
            UNSTATED_LICENSE,
        )
    return current
