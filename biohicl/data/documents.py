"""The documents of a built MeSH-pair dataset (config ``documents``) or of one ``.jsonl``/``.json``/``.parquet``
file, as a ``datasets.Dataset``: what training reads, and the ``split`` subsets the dev evaluations read. A file
that cannot be read is a one-line :class:`~biohicl.errors.DataError` naming the file (and the line)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.data.columns import column_list, in_memory_dataset
from biohicl.data.labels import file_labels
from biohicl.data.records import INDEXING
from biohicl.errors import ConfigError, DataError, json_error
from biohicl.mesh.hierarchy import MeshHierarchy

if TYPE_CHECKING:
    from datasets import Dataset

#: Columns read as a document's MeSH descriptor UIs, first match wins.
LABEL_COLUMNS = ("mesh_uis", "mesh", "labels", "mesh_ids", "descriptors")
DOCUMENT_SUFFIXES = (".jsonl", ".json", ".parquet")
TEXT_COLUMNS = ("text", "title", "abstract")


def read_documents(path: str | Path) -> Dataset:
    """The documents of a ``biohicl build-dataset`` folder (config ``documents``) or of one ``.jsonl``/``.json``/
    ``.parquet`` file, as a ``datasets.Dataset``; a file that cannot be read is a one-line :class:`DataError`."""
    path = Path(path).expanduser()
    if not path.exists():
        build = "" if path.suffix in DOCUMENT_SUFFIXES else f" (build it with: biohicl build-dataset --output {path})"
        raise ConfigError(f"dataset_path: {path} does not exist{build}")
    if not path.is_dir() and path.suffix not in DOCUMENT_SUFFIXES:
        raise ConfigError(f"dataset_path: {path} is neither a dataset folder nor a .jsonl/.json/.parquet file")
    if path.is_dir():
        return read_config(path, "documents")
    if path.suffix == ".parquet":
        return read_parquet([path], path)
    columns = record_columns(numbered_records(path), path)
    try:
        return in_memory_dataset(columns)  # no row hashed
    except (ValueError, TypeError, OverflowError) as err:  # arrow cannot type a column (mixed types inside lists,
        # an integer beyond 64 bits inside a list)
        raise DataError(f"cannot build a table from the records ({type(err).__name__}: {err})", path) from None


def record_columns(numbered: Sequence[tuple[str, dict]], path: Path) -> dict[str, list]:
    """The records as columns over every field any record has (``Dataset.from_list`` takes line 1's fields
    only), each record's label field (the first of :data:`LABEL_COLUMNS` it holds, not null) a list as the build
    reads it (a ``|``-separated string split), in the file's label column (the first of them any record has). A
    field of two JSON types is a one-line :class:`DataError` naming both places, rather than arrow's naming none."""
    names: dict[str, None] = {}  # every field, in the order first seen
    first: dict[str, tuple[str, str]] = {}  # field -> (its JSON type, where first seen not null)
    records, fields = [], []
    for where, record in numbered:
        field = next((name for name in LABEL_COLUMNS if record.get(name) is not None), None)
        fields.append(field)
        if field is not None:
            record = {**record, field: label_list(record[field], where, field, path)}
        for name, value in record.items():
            names.setdefault(name)
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                message = f"`{name}` is {value}, outside the 64-bit integers a table holds; give it as a string"
                raise DataError(f"{where}: {message}", path)
            kind = _json_type(value)
            seen_kind, seen_where = first.setdefault(name, (kind, where))
            if kind != seen_kind:
                raise DataError(
                    f"{where}: `{name}` is {kind} here and {seen_kind} on {seen_where}; give one type per field", path
                )
        records.append(record)
    column = next((name for name in LABEL_COLUMNS if name in names), None)  # the one label_column reads
    for record, field in zip(records, fields, strict=True):
        if field is not None and field != column:  # a line whose labels are under another name, as the build reads
            record[column] = record[field]
    return {name: [record.get(name) for record in records] for name in names}


def label_list(labels: Any, where: str, field: str, path: Path) -> list[str]:
    """A record's labels as a list, as the jsonl source reads them: a list of strings, or one ``|``-separated
    string (blank parts dropped); else a one-line :class:`DataError` naming ``where`` and ``field``."""
    if isinstance(labels, str):
        return [label.strip() for label in labels.split("|") if label.strip()]
    if isinstance(labels, list) and all(isinstance(label, str) for label in labels):
        return labels
    raise DataError(f"{where}: `{field}` must be a list of strings or a |-separated string, got {labels!r:.40}", path)


def _json_type(value: Any) -> str:
    """``value``'s JSON type, as a message names it."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def numbered_records(path: Path) -> list[tuple[str, dict]]:
    """The records of a JSON lines file (one object per line) or of a JSON file holding a list of objects, each with
    where it stands (``line N`` or ``element N``); a bad line is a one-line :class:`DataError` naming the file and
    line (``FILE: line N``; bad JSON with its column), or list element (not UTF-8, not JSON, not an object). A UTF-8
    BOM is skipped, as the build skips it."""
    raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    if path.suffix == ".json" and raw.lstrip()[:1] == b"{":
        check_not_corpus_object(raw, path)
    if path.suffix == ".json" and raw.lstrip()[:1] == b"[":
        try:
            loaded = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            message = f"not UTF-8 (byte 0x{raw[err.start]:02x}); re-save the file as UTF-8"
            raise DataError(message, path, line=line) from None
        except json.JSONDecodeError as err:
            raise DataError(json_error(err), path, line=err.lineno) from None
        numbered = [(f"element {i + 1}", record) for i, record in enumerate(loaded)]  # counted from 1
        for where, record in numbered:
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object per document, got {type(record).__name__}", path)
    else:
        numbered = []
        for number, line in enumerate(raw.splitlines(), start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"not UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1}); re-save the file as UTF-8",
                    path,
                    line=number,
                ) from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(json_error(err), path, line=number) from None
            if not isinstance(record, dict):
                message = f"expected a JSON object per document, got {type(record).__name__}"
                raise DataError(message, path, line=number)
            numbered.append((f"line {number}", record))
    if not numbered:
        raise DataError("no documents in the file", path)
    return numbered


def check_not_corpus_object(raw: bytes, path: Path) -> None:
    """Refuse a ``.json`` file that is one JSON object (a corpus such as PubMedQA's ``ori_pqal.json`` or a BioASQ
    file), which would otherwise fail as JSON lines at line 1 with a parser message that names no cause."""
    try:
        loaded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # JSON lines (or a bad file): the line-by-line reader names the line
    if isinstance(loaded, dict) and not any(isinstance(value, str) for value in loaded.values()):  # not a document
        raise DataError(
            "one JSON object, not documents (a JSON list of objects or one object per line); if it is a corpus "
            f"file, build a dataset from it with `biohicl build-dataset --input {path} --output DIR` and train on DIR",
            path,
        )


def parquet_files(root: Path, config: str) -> list[Path]:
    """The parquet files of dataset config ``config`` under a dataset folder (the layouts `build-dataset` and the
    Hub use)."""
    for pattern in (
        f"{config}/*.parquet",
        f"{config}/**/*.parquet",
        f"{config}.parquet",
        f"data/{config}*.parquet",
        f"{config}-*.parquet",
    ):
        files = sorted(root.glob(pattern))
        if files:
            return files
    return []


def read_parquet(files: Sequence[Path], where: str | Path):
    """Parquet files as one in-memory ``datasets.Dataset`` (pyarrow directly: an empty file is an empty table,
    where ``Dataset.from_parquet`` raises "Instruction 'train' corresponds to no data!"); its fingerprint is random,
    as datasets gives an in-memory table it cannot hash, instead of a hash of every row (no cache file is written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    try:
        tables = [pq.read_table(str(f)) for f in files]
        return in_memory_dataset(InMemoryTable(pa.concat_tables(tables, promote_options="default")))
    except Exception as err:  # ArrowInvalid, OSError, schema mismatches
        raise DataError(f"cannot read the parquet data ({type(err).__name__}: {err})", where) from None


def read_config(root: Path, config: str):
    """Dataset config ``config`` of a dataset folder (parquet files, or a ``save_to_disk`` DatasetDict)."""
    import datasets

    files = parquet_files(root, config)
    if files:
        return read_parquet(files, root / config)
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception:  # any failure means: not a saved DatasetDict either
        raise ConfigError(f"{root}: no `{config}` parquet files found") from None
    if isinstance(loaded, datasets.DatasetDict) and config in loaded:
        return loaded[config]
    raise ConfigError(f"{root}: no `{config}` config")


def label_column(documents: Any, path: str | Path) -> str:
    """The documents' MeSH label column (:data:`LABEL_COLUMNS`)."""
    found = next((c for c in LABEL_COLUMNS if c in documents.column_names), None)
    if found is None:
        raise ConfigError(f"{path}: no MeSH label column (looked for {', '.join(LABEL_COLUMNS)})")
    return found


def document_text(document: Mapping[str, Any]) -> str:
    """A document's text, as training and the dev evaluations read it: its ``text`` stripped, or, when that is
    missing or blank, ``title + " " + abstract`` stripped."""
    text = str(document.get("text") or "").strip()
    return text or f"{document.get('title') or ''} {document.get('abstract') or ''}".strip()


def file_texts(documents: Any) -> tuple[list[str], list[str]]:
    """Each row's ``title`` and abstract in a documents file, as the jsonl source composes them: the abstract is the
    first non-blank of ``abstract`` and ``text`` (a Hugging Face ``to_json`` export writes ``"text": null``)."""
    n = len(documents)
    columns = {name: column_list(documents, name) for name in TEXT_COLUMNS if name in documents.column_names}
    titles = [str(t or "") for t in columns.get("title", [None] * n)]
    parts = [columns[name] for name in ("abstract", "text") if name in columns]
    abstracts = [
        next((str(v) for v in (c[i] for c in parts) if v is not None and str(v).strip()), "") for i in range(n)
    ]
    return titles, abstracts


def split_documents(
    path: str | Path, split: str = "dev", limit: int | None = None, mesh: MeshHierarchy | None = None
) -> tuple[list[str], list[list[str]], list[str]]:
    """``(texts, labels, pmids)`` of the documents of ``split``: of a built dataset, :func:`document_text` and the
    MeSH UIs as stored; of a documents file, what training reads (:func:`file_texts`; the labels by
    :func:`~biohicl.data.labels.file_labels` with ``mesh``, default the packaged MeSH). :class:`DataError` when
    there are no such documents."""
    texts, labels, pmids, _ = split_documents_with_kinds(path, split, limit, mesh)
    return texts, labels, pmids


def split_documents_with_kinds(
    path: str | Path, split: str = "dev", limit: int | None = None, mesh: MeshHierarchy | None = None
) -> tuple[list[str], list[list[str]], list[str], list[str] | None]:
    """:func:`split_documents` plus each document's ``label_kind`` (``None`` when the documents have no such
    column): SimL never compares an indexing-labelled with a mention-labelled document."""
    documents = read_documents(path)
    column = label_column(documents, path)
    if "split" not in documents.column_names:
        raise DataError(f"no `split` column, so no {split!r} documents (rebuild with `biohicl build-dataset`)", path)
    splits = column_list(documents, "split")  # whole columns through arrow, not row by row (biohicl.data.columns)
    keep = [i for i, s in enumerate(splits) if s == split]
    if not keep:
        present = sorted({str(s) for s in splits})
        raise DataError(f"no documents with split {split!r} (splits present: {', '.join(present)})", path)
    rows = documents.select(keep[:limit] if limit is not None else keep)
    if Path(path).expanduser().is_file():  # read as training reads the file (training.document_file)
        titles, abstracts = file_texts(rows)
        texts = [document_text({"title": t, "abstract": a}) for t, a in zip(titles, abstracts, strict=True)]
        hierarchy = mesh or MeshHierarchy.load()
        labels = [file_labels(labs, hierarchy) for labs in column_list(rows, column)]
    else:
        fields = {name: column_list(rows, name) for name in TEXT_COLUMNS if name in rows.column_names}
        texts = [document_text({name: values[i] for name, values in fields.items()}) for i in range(len(rows))]
        labels = [list(labs or ()) for labs in column_list(rows, column)]
    names = column_list(rows, "pmid") if "pmid" in rows.column_names else range(len(rows))
    pmids = [str(name) for name in names]
    kinds = [str(k or INDEXING) for k in column_list(rows, "label_kind")] if "label_kind" in rows.column_names else None
    return texts, labels, pmids, kinds


def other_hierarchy(dataset: str | Path, version: str, source: str | Path) -> tuple[str, str] | None:
    """``(mesh_version, mesh_source)`` that a built dataset's ``summary.json`` records when they are not the given
    hierarchy's (``version``, the file name of ``source``); None when they match or nothing is recorded (a damaged
    summary is a :class:`DataError`: :func:`~biohicl.data.storage.read_build_summary`)."""
    from biohicl.data.storage import read_build_summary

    summary = read_build_summary(dataset) or {}
    built = (summary.get("mesh_version"), summary.get("mesh_source"))
    return built if built[0] and built != (version, Path(source).name) else None
