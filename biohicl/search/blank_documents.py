"""Whether an index folder's shards hold the corpus's blank documents (no title, no text), so a rerun that grows it
streams the corpus the way its shards were built.

biohicl leaves blank documents out of an index (``skip``); an index built before that kept them (``keep``), and its
rows stay consistent only if a rerun keeps them too. ``settings.json`` records the mode (``blank_documents``); a
folder written before that key was a ``keep`` folder when its ``manifest.json`` has no ``skipped_blank`` either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_write_text
from biohicl.data.corpus import BlankDocuments, Document, skip_blank
from biohicl.errors import DataError
from biohicl.jsonio import read_json
from biohicl.search.layout import MANIFEST_NAME, SETTINGS_NAME

logger = logging.getLogger(__name__)

SETTING = "blank_documents"
KEEP, SKIP = "keep", "skip"
#: blank ids a run remembers to explain a refused shard (a hint; past this many it says nothing more)
NOTED_LIMIT = 10_000


def recorded_mode(directory: Path) -> str:
    """The folder's mode: its ``settings.json``'s ``blank_documents``; for a folder that does not record it,
    ``keep`` when its ``manifest.json`` lacks ``skipped_blank`` (built before blank documents were left out); else
    (a new folder, or one without a manifest) ``skip``."""
    settings = directory / SETTINGS_NAME
    recorded = read_json(settings) if settings.is_file() else None
    if not isinstance(recorded, dict):
        return SKIP  # a new folder (or a settings.json that is not an object: refused by the settings check)
    if SETTING in recorded:
        if recorded[SETTING] not in (KEEP, SKIP):
            raise DataError(f"{SETTING}: expected {KEEP!r} or {SKIP!r}, got {recorded[SETTING]!r}", settings)
        return recorded[SETTING]
    manifest = directory / MANIFEST_NAME
    values = read_json(manifest) if manifest.is_file() else None
    return KEEP if isinstance(values, dict) and "skipped_blank" not in values else SKIP


def record_mode(directory: Path, mode: str) -> None:
    """Add ``blank_documents`` to a ``settings.json`` written before that key, so later reruns read it there."""
    path = directory / SETTINGS_NAME
    recorded = read_json(path)
    if SETTING not in recorded:
        atomic_write_text(path, json.dumps({**recorded, SETTING: mode}, indent=2) + "\n", fsync=True)


def indexed(
    documents: Iterable[Document], blank: BlankDocuments, keep: bool, noted: set[str] | None = None
) -> Iterator[Document]:
    """The documents an index holds: all (``keep``, counting the blank ones in ``blank``) or the non-blank ones
    (:func:`skip_blank`, which counts those it leaves out); ``noted`` collects the first :data:`NOTED_LIMIT` blank
    ids."""

    def counted() -> Iterator[Document]:
        for doc in documents:
            if doc.blank:
                if keep:
                    blank.count += 1
                    blank.example = doc.id if blank.example is None else blank.example
                if noted is not None and len(noted) < NOTED_LIMIT:
                    noted.add(doc.id)
            yield doc

    return counted() if keep else skip_blank(counted(), blank)


def refusal_hint(docs_path: Path, noted: set[str]) -> str | None:
    """Why a shard holds other ids when its sidecar lists blank documents (``noted``) this run left out: it was
    built keeping them, which its folder does not record; None when that is not what the shard shows."""
    try:
        ids = [json.loads(line)["id"] for line in docs_path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    held = [doc_id for doc_id in ids if doc_id in noted]
    if not held:
        return None
    return (
        f"it was built keeping documents with no text ({len(held)}, e.g. {held[0]!r}), which this run leaves out, and "
        f"the folder does not record that (biohicl before blank documents were left out; its {MANIFEST_NAME} "
        "without skipped_blank would have said so)"
    )


def report(blank: BlankDocuments, keep: bool, directory: Path, source: Any) -> None:
    """One warning line about the corpus's blank documents: left out (counted), or kept by an older index."""
    if blank.count and keep:
        logger.warning(
            "%s: built before blank documents were left out, it still holds them (documents with no text: "
            "%d, e.g. %s); an index built in a new folder leaves them out",
            directory,
            blank.count,
            blank.example,
        )
    elif blank.count:
        where = f"{source}: " if source else ""
        logger.warning("%sskipped %d documents with no text, e.g. %s", where, blank.count, blank.example)
