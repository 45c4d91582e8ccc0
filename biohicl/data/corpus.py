"""Read a corpus for indexing, one :class:`Document` at a time (nothing is held in memory as a whole).

Accepted inputs (:func:`read_corpus` picks the reader from the path):

- a BEIR folder (holding ``corpus.jsonl``) or any ``.jsonl`` / ``.jsonl.gz`` file with one object per line: id from
  ``_id`` / ``id`` / ``doc_id`` / ``pmid``, text from ``text`` / ``abstract``, optional ``title``, MeSH labels
  from the first label field the build reads (:data:`MESH_FIELDS`: ``mesh_uis``, ``mesh``, ``labels``, ``mesh_ids``,
  ``descriptors``; a list or ``|``-separated string, in any form :func:`biohicl.data.labels.resolve_label` reads; a
  ``labels`` or ``descriptors`` value that is neither, another task's classes, is skipped with a warning) and
  an optional ``label_kind`` (``indexing``, the default, or ``mentions``);
- a ``.tsv`` / ``.tsv.gz`` file with a header naming those columns (``id<TAB>title<TAB>text``), or without a header
  two (``id, text``) or three (``id, title, text``) columns;
- the MeSH-pair dataset's ``documents`` configuration: a ``.parquet`` file, or a folder of them (the dataset
  folder itself, whose ``documents/`` sub-folder or ``documents-*.parquet`` files are read), read in record batches.

>>> for doc in read_corpus("scifact/corpus.jsonl"):
...     print(doc.id, doc.title, doc.text[:40])
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from biohicl.data.documents import LABEL_COLUMNS
from biohicl.data.documents import parquet_files as config_parquet_files
from biohicl.data.records import INDEXING, MENTIONS
from biohicl.errors import DataError, json_error, location
from biohicl.mesh.formats import open_maybe_gzip

logger = logging.getLogger(__name__)

ID_FIELDS = ("_id", "id", "doc_id", "docid", "pmid")
TEXT_FIELDS = ("text", "abstract", "contents")
TITLE_FIELDS = ("title",)
#: the label fields, the build's (:data:`~biohicl.data.documents.LABEL_COLUMNS`): the first one present is read
MESH_FIELDS = LABEL_COLUMNS
#: label fields an export may use for something else (another task's classes): a value that is no string or list of
#: strings is not read as MeSH (warned about once per file); in the others (``mesh``, ...) it is an error
LOOSE_LABEL_FIELDS = ("labels", "descriptors")
#: a queries file's column names (BEIR's ``query-id``, TREC's ``qid``, ``query``) read as the id and text columns by
#: :func:`~biohicl.data.text_files.read_texts`, in this order, where the header names no column of :data:`ID_FIELDS`
#: / :data:`TEXT_FIELDS`
QUERY_COLUMNS = {"qid": "id", "query_id": "id", "query-id": "id", "query": "text"}
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Document:
    """One corpus entry: an id, its text, an optional title, MeSH labels and their kind (``label_kind``: ``""`` when
    the corpus gives none, read as ``indexing``); ``source``, ``record`` (the file and record or line it was read
    from, when known) and ``line`` (``record`` is a text file's line) are for messages only: equality ignores them."""

    id: str
    text: str
    title: str = ""
    mesh: tuple[str, ...] = field(default_factory=tuple)
    label_kind: str = ""
    source: str | None = field(default=None, compare=False, repr=False)
    record: int | None = field(default=None, compare=False, repr=False)
    line: bool = field(default=False, compare=False, repr=False)

    def full_text(self, sep: str = " ") -> str:
        """What gets encoded: ``title + sep + text`` (BEIR's convention), or the text alone without a title."""
        return f"{self.title}{sep}{self.text}" if self.title else self.text

    @property
    def blank(self) -> bool:
        """Whether title and text are both empty or whitespace (nothing to encode)."""
        return not (self.title.strip() or self.text.strip())

    def place(self) -> str:
        """``"line N"`` (a text file's), ``"record N"`` or ``""``: where in its source the document was read."""
        return "" if self.record is None else f"{'line' if self.line else 'record'} {self.record}"

    def where(self) -> str:
        """``"file: line N"`` / ``"file, record N"`` / ``"record N"`` / ``""``: where the document was read, for
        messages (:func:`~biohicl.errors.location`'s wording)."""
        if not self.source or self.record is None:
            return self.source or self.place()
        return location(self.source, None if self.line else self.record, line=self.record if self.line else None)


@dataclass
class BlankDocuments:
    """What :func:`skip_blank` left out: how many documents, and the first one's id."""

    count: int = 0
    example: str | None = None


def skip_blank(documents: Iterable[Document], skipped: BlankDocuments) -> Iterator[Document]:
    """``documents`` without the :attr:`~Document.blank` ones, which are counted in ``skipped`` (an index of them
    would hold identical rows that every query finds)."""
    for doc in documents:
        if doc.blank:
            skipped.count += 1
            skipped.example = doc.id if skipped.example is None else skipped.example
            continue
        yield doc


def first_field(record: dict[str, Any], names: Sequence[str]) -> Any:
    """The value of the first of ``names`` that ``record`` holds and is not ``None`` (``None`` when none is);
    shared with the ``jsonl`` source (:mod:`biohicl.data.jsonl`)."""
    for name in names:
        if name in record and record[name] is not None:
            return record[name]
    return None


def _mesh(
    record: dict[str, Any], where: str, path: str | Path | None, at: dict[str, int | None], ignored: set[str] | None
) -> tuple[str, ...]:
    """The MeSH UIs of the first :data:`MESH_FIELDS` field present: a ``|``-separated string or a list of strings.

    A :data:`LOOSE_LABEL_FIELDS` value that is neither (an export's classification ``labels``: ``[0, 1]``) is not read
    as MeSH, the next field is: warned about once per field of ``ignored`` (the names already warned about in this
    file; ``None``: every time); ``at``: :class:`DataError`'s ``record`` / ``line`` of the record."""
    for name in MESH_FIELDS:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split("|") if v.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if name in LOOSE_LABEL_FIELDS:
            if ignored is None or name not in ignored:
                logger.warning(
                    "%s: `%s` is not read as MeSH labels where it is not a string or a list of strings (first: %.40r)",
                    location(path, **at) or where,
                    name,
                    value,
                )
            if ignored is not None:
                ignored.add(name)
            continue
        raise DataError(f"{where}: `{name}` must be a string or a list of strings, got {value!r:.40}", path, **at)
    return ()


def document_from_record(
    record: dict[str, Any],
    path: str | Path | None = None,
    number: int | None = None,
    *,
    line: int | None = None,
    ignored: set[str] | None = None,
    labels: bool = True,
) -> Document:
    """Build a :class:`Document` from a dict with the field names listed in the module docstring (``number``: its
    record number, a parquet row's; ``line``: its line in a text file, named instead; ``ignored``: the label fields
    of this file already warned about as no MeSH labels, added to; ``None``: warned about each time;
    ``labels=False``: its MeSH labels and label kind not read, for a text alone)."""
    at = {"record": number, "line": line}  # where errors name it: its line, else its number
    source, number = None if path is None else str(path), number if line is None else line  # the Document's
    doc_id = first_field(record, ID_FIELDS)
    if doc_id is None or str(doc_id) == "":
        raise DataError(f"no document id (expected one of {', '.join(ID_FIELDS)})", path, **at)
    text = first_field(record, TEXT_FIELDS)
    title = first_field(record, TITLE_FIELDS) or ""
    if text is None:
        if not title:
            raise DataError(f"document {doc_id}: no text (expected one of {', '.join(TEXT_FIELDS)})", path, **at)
        text = ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise DataError(f"document {doc_id}: title and text must be strings", path, **at)
    if not labels:
        return Document(str(doc_id), text, title, (), "", source, number, line is not None)
    mesh = _mesh(record, f"document {doc_id}", path, at, ignored)
    kind = record.get("label_kind") or ""
    if kind not in ("", INDEXING, MENTIONS):
        expected = f"label_kind must be {INDEXING} or {MENTIONS}"
        raise DataError(f"document {doc_id}: {expected}, got {kind!r:.40}", path, **at)
    return Document(str(doc_id), text, title, mesh, kind, source, number, line is not None)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (``.gz`` too), decoded line by line so a bad byte names its line; a
    byte-order mark opening the file is dropped (an editor's "UTF-8 with BOM" is UTF-8)."""
    try:
        with open_maybe_gzip(path) as handle:
            for number, raw in enumerate(handle, 1):
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"cannot decode the line: byte {raw[err.start]:#04x} is not UTF-8 "
                        "(convert the file with `iconv -t utf-8`)",
                        path,
                        line=number,
                    ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"corrupt or truncated gzip file ({err})", path) from None


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line of a JSONL file; bad JSON names its line."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(json_error(err), path, line=number) from None


def read_jsonl(path: str | Path) -> Iterator[Document]:
    """Stream a JSONL corpus (BEIR ``corpus.jsonl`` or id/title/text/mesh objects)."""
    path, ignored = Path(path), set[str]()
    for number, record in iter_json_lines(path):
        if not isinstance(record, dict):
            raise DataError("expected a JSON object per line", path, line=number)
        yield document_from_record(record, path, line=number, ignored=ignored)


def is_header(fields: list[str], names: set[str], queries: bool) -> bool:
    """Whether a TSV file's first row (``fields`` lower-cased) is a header, by :func:`read_tsv`'s rule."""
    known = [f for f in fields if f in names]
    if not known or queries or set(fields) & set(ID_FIELDS) or len(known) >= 2:
        return bool(known)
    return not fields[0].isdigit() and " " not in "".join(fields)


def read_tsv(path: str | Path, queries: bool = False) -> Iterator[Document]:
    """Stream a TSV corpus: a header naming id/title/text columns, or 2 (id, text) / 3 (id, title, text) columns.

    A first line is a header when a field names an id column, or it names a title or text column and either two of
    them (``PubMed ID<TAB>Title<TAB>Abstract``) or one, with no field holding a space and a first field that is no
    number (``key<TAB>text``; ``123<TAB>Text<TAB>cells of the heart`` is a document); one naming no id column is
    refused, where it would be indexed as a document; with ``queries`` (a queries or texts file,
    :func:`~biohicl.data.text_files.read_texts`) when a field names any id, text or title column or a
    :data:`QUERY_COLUMNS` one (``qid<TAB>query``, ``query-id<TAB>text``), whose columns are then read as the id and
    text."""
    path = Path(path)
    header: list[str] | None = None
    names = {*ID_FIELDS, *TEXT_FIELDS, *TITLE_FIELDS, *(QUERY_COLUMNS if queries else ())}
    for number, line in iter_lines(path):
        row = line.rstrip("\r\n").split("\t")  # no quoting: a plain split, with no field size limit
        if not any(row):
            continue
        if number == 1 and is_header(fields := [c.strip().lower() for c in row], names, queries):
            header = fields
            if not queries and not set(header) & set(ID_FIELDS):
                expected = f"expected one of {', '.join(ID_FIELDS)}; got {', '.join(header)}"
                raise DataError(f"the header names no id column ({expected})", path, line=number)
            continue
        if header is not None:
            if len(row) != len(header):
                raise DataError(f"expected {len(header)} columns, got {len(row)}", path, line=number)
            record = dict(zip(header, row, strict=False))
            for alias, name in QUERY_COLUMNS.items() if queries else ():
                if alias in record and first_field(record, ID_FIELDS if name == "id" else TEXT_FIELDS) is None:
                    record[name] = record[alias]
            yield document_from_record(record, path, line=number, labels=not queries)  # a text's labels are not read
        elif len(row) == 2:
            yield document_from_record({"id": row[0], "text": row[1]}, path, line=number)
        elif len(row) == 3:
            yield document_from_record({"id": row[0], "title": row[1], "text": row[2]}, path, line=number)
        else:
            raise DataError(f"expected 2 (id, text) or 3 (id, title, text) columns, got {len(row)}", path, line=number)


def parquet_files(path: str | Path) -> list[Path]:
    """The parquet files of a ``documents`` table: the file itself, else the ``documents`` config of a dataset
    folder (:func:`biohicl.data.documents.parquet_files`), else every parquet file of a folder with no ``pairs`` in
    its name."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = config_parquet_files(path, "documents")
    files = files or sorted(f for f in path.glob("*.parquet") if "pairs" not in f.name)
    if files:
        return files
    holds = "parquet files (documents/*.parquet, documents-*.parquet or other *.parquet)"
    message = f"no corpus found: a corpus folder holds a BEIR corpus.jsonl[.gz], or the documents table's {holds}"
    if path.is_dir() and any(f.name.lower().endswith(JSONL_SUFFIXES) for f in path.iterdir()):  # read as no corpus
        message += (
            f"; for .jsonl files, give one file: them concatenated in order (`cat {path}/*.jsonl > corpus.jsonl`)"
        )
    raise DataError(message, path)


def read_parquet(path: str | Path) -> Iterator[Document]:
    """Stream the MeSH-pair dataset's ``documents`` table (pmid, title, abstract, mesh) in record batches."""
    import pyarrow.parquet as pq

    ignored = set[str]()
    for file in parquet_files(path):
        number = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                number += 1
                yield document_from_record(record, file, number, ignored=ignored)


def read_corpus(path: str | Path) -> Iterator[Document]:
    """Stream the documents of a corpus file or folder (format from the name; see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError("corpus not found", path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return read_jsonl(path / "corpus.jsonl")
        if (path / "corpus.jsonl.gz").is_file():
            return read_jsonl(path / "corpus.jsonl.gz")
        return read_parquet(path)
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return read_jsonl(path)
    if name.endswith((".tsv", ".tsv.gz", ".txt")):
        return read_tsv(path)
    if name.endswith(".parquet"):
        return read_parquet(path)
    raise DataError("unknown corpus format (expected .jsonl/.ndjson[.gz], .tsv[.gz], .parquet or a BEIR folder)", path)


def iter_documents(corpus: str | Path | Iterable[Any]) -> Iterator[Document]:
    """Documents from a path (:func:`read_corpus`) or an iterable of :class:`Document`, dicts, ``(id, text)``
    / ``(id, title, text)`` tuples, or plain strings (numbered ``"0"``, ``"1"``, ...)."""
    if isinstance(corpus, (str, Path)):
        yield from read_corpus(corpus)
        return
    ignored = set[str]()
    for number, item in enumerate(corpus):
        if isinstance(item, Document):
            yield item if item.record is not None else replace(item, record=number + 1)
        elif isinstance(item, dict):
            yield document_from_record(item, None, number + 1, ignored=ignored)
        elif isinstance(item, str):
            yield Document(str(number), item, record=number + 1)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            values = [str(v) for v in item]
            yield Document(values[0], values[-1], values[1] if len(values) == 3 else "", record=number + 1)
        else:
            raise DataError(f"corpus item {number}: expected a Document, dict, (id, text) tuple or str")


#: The suffixes :func:`read_corpus` reads as JSON lines and as tab-separated rows (optionally gzipped).
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
TSV_SUFFIXES = (".tsv", ".tsv.gz")
