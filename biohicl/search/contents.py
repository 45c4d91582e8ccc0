"""What an index's rows were encoded from: per document a digest of its text, per shard one of its texts.

Each line of a shard's docs sidecar holds ``text_sha`` (:func:`text_digest` of the text given to the encoder, the
title composed as :meth:`biohicl.data.corpus.Document.full_text` does, before the document prompt and truncation),
the document's MeSH labels and, when its corpus gives one, their ``label_kind`` (no key: ``indexing``); the shard's
safetensors metadata and its manifest entry hold ``text_sha256`` (:func:`texts_digest` over every document's id and
``text_sha``). A rerun of ``biohicl index`` compares it for each shard it keeps and refuses other texts, while other
MeSH labels or label kinds (which the encoder never sees; no kind is ``indexing``) only rewrite the docs sidecar, once
every shard was accepted (:class:`PendingLabels`); ``biohicl evaluate --document_index`` compares the ``text_sha`` of
each row with the BEIR corpus's text. Rows written before these fields have none: their texts are unknown, which a
warning says once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_write_text
from biohicl.data.corpus import Document, iter_lines
from biohicl.data.records import INDEXING
from biohicl.errors import DataError

logger = logging.getLogger(__name__)

TEXT_KEY = "text_sha"
TEXTS_KEY = "text_sha256"
#: why kept rows of an older biohicl are not checked (``{}``: "it was" or "N of M rows were")
UNKNOWN = "{} written before biohicl recorded the texts of its documents: a changed text cannot be detected"


def text_digest(text: str) -> str:
    """16 hex digits of the sha256 of an encoded text, surrounding whitespace aside (the tokenizer drops it, and
    evaluation composes ``title + " " + text`` stripped where the index leaves out the space of an empty title)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def document_digest(doc: Document) -> str:
    """:func:`text_digest` of what the index encodes of ``doc``."""
    return text_digest(doc.full_text())


def texts_digest(docs: Sequence[Document], texts: Sequence[str] | None = None) -> str:
    """sha256 over each document's id and text digest (``texts``, when already computed), in order: not its labels."""
    digest = hashlib.sha256()
    for i, doc in enumerate(docs):
        sha = texts[i] if texts is not None else document_digest(doc)
        digest.update(json.dumps([doc.id, sha], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _records(sidecar: Path) -> Iterable[dict[str, Any] | None]:
    """The lines of a docs sidecar as records (None for a line that is not a JSON object)."""
    for _, line in iter_lines(sidecar):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        yield record if isinstance(record, dict) else None


def first_changed(sidecar: Path, docs: Sequence[Document]) -> str | None:
    """The id of the first of ``docs`` whose text is not the one its line of the docs sidecar recorded (None when the
    sidecar cannot tell: no ``text_sha``, or it matches throughout)."""
    for record, doc in zip(_records(sidecar), docs, strict=False):
        if record is None:
            return doc.id
        if TEXT_KEY not in record:
            return None
        if record.get("id") != doc.id or record[TEXT_KEY] != document_digest(doc):
            return doc.id
    return None


def check_texts(shard: Path, sidecar: Path, number: int, texts: str | None, docs: Sequence[Document]) -> None:
    """A :class:`DataError` naming ``shard`` when kept shard ``number``, whose metadata recorded ``texts`` (None
    before biohicl recorded them), was built from other texts than ``docs``', with the first differing id its docs
    ``sidecar`` tells."""
    if texts is not None and texts != texts_digest(docs):
        changed = first_changed(sidecar, docs)
        raise DataError(
            f"shard {number} was built from other texts"
            + (f" (first differing id {changed!r}: its title or text changed)" if changed is not None else "")
            + "; index into a new folder or remove it",
            shard,
        )


def sidecar_record(
    doc_id: str, title: str, mesh: Sequence[str], rest: dict[str, Any], label_kind: str = ""
) -> dict[str, Any]:
    """One docs sidecar line: ``{"id", "title"?, "mesh"?, "label_kind"?, ...rest}`` (an empty title, label list or
    label kind left out: a line without ``label_kind``, an older index's too, is read as ``indexing``)."""
    record: dict[str, Any] = {"id": doc_id}
    if title:
        record["title"] = title
    if mesh:
        record["mesh"] = list(mesh)
    if label_kind:
        record["label_kind"] = label_kind
    return record | rest


def _kind(label_kind: str | None) -> str:
    """A label kind as read: none given (an older sidecar line, a corpus without the column) is ``indexing``."""
    return label_kind or INDEXING


def relabelled(sidecar: Path, docs: Sequence[Document]) -> tuple[dict[int, dict[str, Any]], int, int]:
    """The lines of a kept shard's docs sidecar whose MeSH labels or label kind are not those of ``docs`` (same ids
    and texts: checked before), rewritten, by their index, and how many documents now have other labels and how many
    another label kind (no kind and ``indexing`` are one; nothing, 0 and 0 also when a line is not a JSON object of
    its document, which reading the index then reports: the file is to be left as it is). The other lines are not
    held: one shard's sidecar is read as a stream."""
    changes: dict[int, dict[str, Any]] = {}
    labels = kinds = 0
    records = _records(sidecar)
    for i, (record, doc) in enumerate(itertools.zip_longest(records, docs)):
        if record is None or doc is None or record.get("id") != doc.id:
            return {}, 0, 0
        other_labels = list(record.get("mesh", ())) != list(doc.mesh)
        other_kind = _kind(record.get("label_kind")) != _kind(doc.label_kind)
        if other_labels or other_kind:
            rest = {k: v for k, v in record.items() if k not in ("id", "title", "mesh", "label_kind")}
            changes[i] = sidecar_record(record["id"], record.get("title", ""), doc.mesh, rest, doc.label_kind)
            labels, kinds = labels + other_labels, kinds + other_kind
    return changes, labels, kinds


def updated(labels: int, kinds: int) -> str:
    """``MeSH labels updated for 3 document(s)``, ``label kinds updated for 1 document(s)`` or both
    (``MeSH labels updated for 3 document(s), label kinds for 1``)."""
    if not kinds:
        return f"MeSH labels updated for {labels} document(s)"
    if not labels:
        return f"label kinds updated for {kinds} document(s)"
    return f"MeSH labels updated for {labels} document(s), label kinds for {kinds}"


class PendingLabels:
    """The MeSH label and label kind changes of the shards a rerun keeps, written to their docs sidecars
    (:meth:`apply`) only once the rerun has accepted every shard: one refused at a later shard (another text) leaves
    every sidecar as it was. Only the changed lines are held (:attr:`held`), not the rest of their shards: memory
    grows with the labels that changed, not with the index; :meth:`apply` reads one sidecar at a time again."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, Path, dict[int, dict[str, Any]], str]] = []

    @property
    def held(self) -> int:
        """How many changed sidecar lines are held."""
        return sum(len(changes) for _, _, changes, _ in self._pending)

    def add(self, number: int, sidecar: Path, docs: Sequence[Document]) -> None:
        """Note the label changes of kept shard ``number`` (its docs sidecar, its documents now ``docs``)."""
        changes, labels, kinds = relabelled(sidecar, docs)
        if labels or kinds:
            self._pending.append((number, sidecar, changes, updated(labels, kinds)))

    def apply(self, log: logging.Logger = logger) -> None:
        """Rewrite (atomically) each noted sidecar, its other lines as they were, logging ``shard N: MeSH labels
        updated for K document(s)`` (or what :func:`updated` says when label kinds changed)."""
        for number, sidecar, changes, message in self._pending:
            lines = [
                json.dumps(changes[i], ensure_ascii=False) if i in changes else line.rstrip("\r\n")
                for i, (_, line) in enumerate(iter_lines(sidecar))
            ]
            atomic_write_text(sidecar, "\n".join(lines) + "\n", fsync=True)
            log.info("shard %d: %s", number, message)
        self._pending.clear()


def first_other_text(records: Iterable[dict[str, Any]], texts: dict[str, str], where: str) -> str | None:
    """The first id (in ``texts``' order) whose row in ``records`` (docs sidecar lines) recorded another text than
    ``texts[id]``; rows without ``text_sha`` (written by an older biohicl) are not compared, and ``where`` is warned
    about once, with how many they are."""
    recorded = {str(r["id"]): r.get(TEXT_KEY) for r in records}
    unknown = sum(sha is None for sha in recorded.values())
    if unknown:
        logger.warning("%s: %s", where, UNKNOWN.format(f"{unknown} of {len(recorded)} rows were"))
    for doc_id, text in texts.items():
        sha = recorded.get(doc_id)
        if sha is not None and sha != text_digest(text):
            return doc_id
    return None
