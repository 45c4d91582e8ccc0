"""A user's own MeSH-labelled abstracts as JSON lines (source ``jsonl``), e.g. a Hugging Face dataset's ``to_json``.

One JSON object per line, with the field names training reads from a ``.jsonl`` documents file
(:func:`~biohicl.training.run.load_training_data`, :data:`~biohicl.data.documents.LABEL_COLUMNS`) and the id and
text names of an indexing corpus (:data:`~biohicl.data.corpus.ID_FIELDS`, ``TEXT_FIELDS``) in another order:
``pmid`` first and ``abstract`` before ``text``, where ``biohicl index`` (:func:`~biohicl.data.corpus.read_corpus`)
takes ``_id`` first and ``text`` before ``abstract``, so a line holding both pairs is ``pmid``/``abstract`` here::

    {"pmid": "101", "title": "...", "abstract": "...", "mesh": ["Humans", "D003920"]}
    {"id": "doc-7", "text": "...", "labels": "D003924|Heart", "label_kind": "mentions"}

* id: the first of ``pmid``, ``_id``, ``id``, ``doc_id``, ``docid`` (a string or an integer). It is the document's
  PMID for the build: later copies of it in any input are dropped and a PubMedQA test PMID is removed by
  decontamination, so a numeric id must be a real PMID; give documents outside PubMed non-numeric ids (``doc-7``).
* text: ``title`` (optional) and ``abstract``, else ``text`` when ``abstract`` is missing or blank (read as the
  abstract).
* labels: the first of :data:`~biohicl.data.documents.LABEL_COLUMNS` present, a list of strings or one
  ``|``-separated string; each a descriptor UI (``D…`` in any case; a ``MESH:`` prefix and a qualifier UI after it,
  ``D012694Q000378``, allowed), a tree number below a category root (``C16.320.798``: its descriptor in the loaded
  MeSH release, whose tree numbers they must be, counted in ``labels_noted``; a bare ``C18`` is no tree number), a
  descriptor name or an entry term, or a MEDLINE heading (``*Name/qualifier``: the descriptor kept), in any mix.
  Unknown ones are dropped and counted as the other readers do (SCR ids ``C…`` ignored).
  :func:`~biohicl.mesh.label_forms.resolve_label` reads one label so, for the index's explanation (``biohicl search``)
  too.
* ``label_kind``: ``indexing`` (the default: descriptors assigned to the whole article) or ``mentions`` (ids of
  entities named in the text); the build never pairs the two kinds. ``year`` and ``journal`` are kept when given;
  other fields (a ``split`` too) are not read.

Blank lines are skipped; a line that is not UTF-8, not JSON or not of that shape (an id with a control character
too), or is over :data:`LINE_LIMIT` bytes (skipped unread), is a malformed record, counted with its line number
(``file: line N``; a line not JSON with its column, ``not valid JSON (... at column C)``), or a
:class:`~biohicl.errors.DataError` when ``strict``. Ids are quoted in messages (``id 'doc-7'``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biohicl.data.corpus import ID_FIELDS, first_field
from biohicl.data.documents import LABEL_COLUMNS
from biohicl.data.files import check_file, guarded_reader, open_utf8_bytes
from biohicl.data.records import (
    CONTROL_CHARACTER,
    INDEXING,
    MALFORMED,
    MENTIONS,
    MeshRecord,
    ReadContext,
    ReadReport,
)
from biohicl.errors import json_error
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_forms import label_form

SOURCE = "jsonl"
JSONL_ID_FIELDS = ("pmid", *(name for name in ID_FIELDS if name != "pmid"))
#: the label fields whose presence in a line marks a file as this source: every field the reader takes labels from
DETECT_FIELDS = LABEL_COLUMNS
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")
#: the longest line read, in bytes without its line end (a longer one, e.g. a gzip bomb's, is skipped unread)
LINE_LIMIT = 64 * 2**20
_CHUNK = 2**20  # the rest of a line over LINE_LIMIT is read and dropped in pieces of this size


@guarded_reader
def read_jsonl(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[MeshRecord]:
    """MeSH-labelled abstracts from a JSON lines file (``.jsonl``, ``.ndjson``, gzipped too; fields: module doc)."""
    path = check_file(path)
    ctx = ReadContext(path, SOURCE, mesh or MeshHierarchy.load(), strict, report, lines=True)  # ``file: line N``
    with open_utf8_bytes(path) as handle:
        number = 0
        while raw := handle.readline(LINE_LIMIT + 1):  # bounded: never a whole 300 MB line in memory
            number += 1
            over = len(raw) > LINE_LIMIT and not raw.endswith(b"\n")
            while over and raw and not raw.endswith(b"\n"):  # the rest of a line over the limit, dropped
                raw = handle.readline(_CHUNK)
            raw = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw  # a byte-order mark is no error
            if not over and not raw.strip():
                continue
            ctx.start()
            ctx.record = number  # a line's record number is its line number (``lines=True``: named as a line)
            if over:
                ctx.skip(MALFORMED, f"line over {_size(LINE_LIMIT)}")
                continue
            record = _jsonl_record(ctx, raw)
            if record is not None:
                yield record


def is_jsonl_line(line: str) -> bool:
    """Whether ``line`` is a JSON object with a label field (:data:`DETECT_FIELDS`): format detection."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and any(name in value for name in DETECT_FIELDS)


def starts_jsonl_line(text: str) -> bool:
    """Whether ``text``, the start of a first line cut off by format detection (a line over :data:`LINE_LIMIT`), is a
    JSON object with a :data:`DETECT_FIELDS` key at its top level before the cut: the keys and values are decoded
    one by one (a nested ``"mesh"`` key, or one quoted inside a string, is not a top-level one)."""
    pos = _SPACE.match(text).end()
    if not text.startswith("{", pos):
        return False
    pos += 1
    try:
        while True:
            key, pos = _DECODER.raw_decode(text, _SPACE.match(text, pos).end())
            pos = _SPACE.match(text, pos).end()
            if not isinstance(key, str) or not text.startswith(":", pos):
                return False
            if key in DETECT_FIELDS:
                return True
            _, pos = _DECODER.raw_decode(text, _SPACE.match(text, pos + 1).end())  # a value cut off raises
            pos = _SPACE.match(text, pos).end()
            if not text.startswith(",", pos):
                return False
            pos += 1
    except (ValueError, RecursionError):
        return False


def _size(limit: int) -> str:
    """``64 MiB``, ``1 KiB`` or ``100 bytes``: the line limit as a message gives it."""
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit:,} bytes"


def _jsonl_record(ctx: ReadContext, raw: bytes) -> MeshRecord | None:
    raw = raw.rstrip(b"\r\n")  # the line end inside a cut-off string would read as an invalid control character
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        ctx.skip(MALFORMED, f"not UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})")
        return None
    except json.JSONDecodeError as err:  # worded as every reader words it (training's: biohicl.data.documents)
        ctx.skip(MALFORMED, json_error(err))
        return None
    except (ValueError, RecursionError) as err:
        ctx.skip(MALFORMED, f"not valid JSON ({type(err).__name__})")
        return None
    problem = _shape_problem(value)
    if problem:
        ctx.skip(MALFORMED, problem)
        return None
    pmid = first_field(value, JSONL_ID_FIELDS)
    labels = first_field(value, LABEL_COLUMNS)
    if isinstance(labels, str):
        labels = [label for label in labels.split("|") if label.strip()]
    uis: list[str] = []
    for label in labels or ():
        uis += _resolve_label(ctx, label)
    abstract = next((text for text in (value.get("abstract"), value.get("text")) if text and text.strip()), "")
    extra = {name: str(value[name]) for name in ("year", "journal") if value.get(name) is not None}
    return ctx.emit(
        str(pmid).strip(),
        value.get("title") or "",
        abstract,
        uis,
        label_kind=value.get("label_kind") or INDEXING,
        **extra,
    )


def _resolve_label(ctx: ReadContext, label: str) -> list[str]:
    """The descriptor UI of one label (:func:`label_form`), dropped, ignored or noted (a tree number) as counted."""
    form, text = label_form(ctx.mesh, label)
    if form == "id":
        return ctx.resolve_ids([text])
    if form == "tree":
        return ctx.resolve_tree_numbers([text])
    return ctx.resolve_names([text])


def _shape_problem(value: Any) -> str:
    """What makes a parsed line no document (empty when it is one)."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    pmid = first_field(value, JSONL_ID_FIELDS)
    if pmid is None or isinstance(pmid, bool) or not isinstance(pmid, (str, int)) or not str(pmid).strip():
        shown = "none" if pmid is None else repr(pmid)[:40]
        return f"no document id (a string or an integer in one of {', '.join(JSONL_ID_FIELDS)}; got {shown})"
    if CONTROL_CHARACTER.search(str(pmid).strip()):  # the ends are stripped, as the id is
        return f"document id with a control character: {pmid!r:.40}"
    for name in ("title", "abstract", "text"):
        if value.get(name) is not None and not isinstance(value[name], str):
            return f"id {pmid!r:.40}: `{name}` must be a string, got {type(value[name]).__name__}"
    label_field = next((name for name in LABEL_COLUMNS if value.get(name) is not None), None)
    labels = value.get(label_field) if label_field else None
    if labels is not None and not (
        isinstance(labels, str) or (isinstance(labels, list) and all(isinstance(v, str) for v in labels))
    ):
        return f"id {pmid!r:.40}: `{label_field}` must be a list of strings or a |-separated string, got {labels!r:.40}"
    if value.get("label_kind") not in (None, "", INDEXING, MENTIONS):
        return f"id {pmid!r:.40}: label_kind must be {INDEXING} or {MENTIONS}, got {value['label_kind']!r:.40}"
    return ""
