"""What an index's rows were encoded from: per document a digest of its text, per shard one of its contents.

Each line of a shard's docs sidecar holds ``text_sha`` (:func:`text_digest` of the text the encoder saw, the title
composed as :meth:`biohicl.data.corpus.Document.full_text` does); the shard's safetensors metadata and its manifest
entry hold ``content_sha256`` (:func:`content_digest` over every document's id, ``text_sha`` and MeSH labels). A
rerun of ``biohicl index`` compares it for each shard it keeps, ``biohicl evaluate --document_index`` compares the
``text_sha`` of each row with the BEIR corpus's text. An index written before these fields has none: its rows' texts
are unknown, which a warning says once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from biohicl.data.corpus import Document, iter_lines

logger = logging.getLogger(__name__)

TEXT_KEY = "text_sha"
CONTENT_KEY = "content_sha256"
#: why kept rows or an index of an older biohicl are not checked
UNKNOWN = "it was written before biohicl recorded the texts of its documents: a changed text{} cannot be detected"


def text_digest(text: str) -> str:
    """16 hex digits of the sha256 of an encoded text, surrounding whitespace aside (the tokenizer drops it, and
    evaluation composes ``title + " " + text`` stripped where the index leaves out the space of an empty title)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def document_digest(doc: Document) -> str:
    """:func:`text_digest` of what the index encodes of ``doc``."""
    return text_digest(doc.full_text())


def content_digest(docs: Sequence[Document], texts: Sequence[str] | None = None) -> str:
    """sha256 over each document's id, text digest (``texts``, when already computed) and MeSH labels, in order."""
    digest = hashlib.sha256()
    for i, doc in enumerate(docs):
        sha = texts[i] if texts is not None else document_digest(doc)
        digest.update(json.dumps([doc.id, sha, list(doc.mesh)], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def first_changed(sidecar: Path, docs: Sequence[Document]) -> str | None:
    """The id of the first of ``docs`` whose text or MeSH labels are not those its line of the docs sidecar recorded
    (None when the sidecar cannot tell: no ``text_sha``, or it matches throughout)."""
    for (_, line), doc in zip(iter_lines(sidecar), docs, strict=False):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return doc.id
        if not isinstance(record, dict) or TEXT_KEY not in record:
            return None
        if record.get("id") != doc.id or record[TEXT_KEY] != document_digest(doc):
            return doc.id
        if list(record.get("mesh", ())) != list(doc.mesh):
            return doc.id
    return None


def first_other_text(records: Iterable[dict[str, Any]], texts: dict[str, str], where: str) -> str | None:
    """The first id (in ``texts``' order) whose row in ``records`` (docs sidecar lines) recorded another text than
    ``texts[id]``; rows without ``text_sha`` (an older index) are not compared, and ``where`` is warned about once."""
    recorded = {str(r["id"]): r.get(TEXT_KEY) for r in records}
    if any(sha is None for sha in recorded.values()):
        logger.warning("%s: %s", where, UNKNOWN.format(""))
    for doc_id, text in texts.items():
        sha = recorded.get(doc_id)
        if sha is not None and sha != text_digest(text):
            return doc_id
    return None
