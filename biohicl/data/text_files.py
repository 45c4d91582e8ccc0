"""Files of texts, one per line, for queries and ``biohicl encode``: a .txt file (a line a text), .tsv
``id<TAB>text`` rows (:func:`~biohicl.data.corpus.read_tsv`'s queries reading) or .jsonl records (a JSON string or a
record per line, :data:`~biohicl.data.corpus.JSONL_SUFFIXES`); optionally gzipped. Streamed: :func:`read_texts`,
:func:`numbered_texts` (each text's line too), :func:`check_text_file` (what they refuse, in one line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from biohicl.data.corpus import (
    ID_FIELDS,
    JSONL_SUFFIXES,
    TSV_SUFFIXES,
    document_from_record,
    iter_json_lines,
    iter_lines,
    read_tsv,
)
from biohicl.data.files import check_file
from biohicl.errors import DataError

#: Suffixes of files that are not lines of text, which :func:`read_texts` refuses (their bytes are no texts).
NOT_TEXT_SUFFIXES = (".parquet", ".safetensors", ".npy", ".npz", ".pt", ".bin", ".arrow", ".zip", ".pkl")
#: Suffixes of text whose lines are not one text each (a CSV row, a JSON document), which :func:`read_texts` refuses.
NOT_LINES_SUFFIXES = (".csv", ".csv.gz", ".json", ".json.gz")


def check_text_file(path: str | Path) -> Path:
    """``path`` if :func:`read_texts` can read it; else a one-line :class:`DataError` (a folder, a missing file, a
    parquet corpus or other binary file, :data:`NOT_TEXT_SUFFIXES`, or a .csv or .json file, :data:`NOT_LINES_SUFFIXES`,
    whose lines are no texts). Any other name (``/dev/stdin``, ``q.text``, a ``mktemp`` name) is read as lines of text,
    as a .txt file."""
    path = check_file(path)
    name = path.name.lower()
    if name.endswith(NOT_TEXT_SUFFIXES):
        parquet = path.suffix.lower() == ".parquet"
        hint = "; encode a parquet corpus with `biohicl index CORPUS --model M --output DIR`" if parquet else ""
        raise DataError(f"not a text file (expected .txt, .tsv or .jsonl, optionally .gz){hint}", path)
    refused = next((suffix for suffix in NOT_LINES_SUFFIXES if name.endswith(suffix)), None)
    if refused is not None:
        raise DataError(
            f"unknown format {refused} (expected .txt: one text per line, .tsv: id<TAB>text rows with an optional "
            "header, or .jsonl; optionally .gz)",
            path,
        )
    return path


def read_texts(path: str | Path) -> Iterator[tuple[str | None, str]]:
    """``(id or None, text)`` per line of a .txt, .tsv or .jsonl file (streamed): :func:`numbered_texts`."""
    return ((text_id, text) for _, text_id, text in numbered_texts(path))


def numbered_texts(path: str | Path) -> Iterator[tuple[int | None, str | None, str]]:
    """``(line, id or None, text)`` per text of a .txt, .tsv or .jsonl file (streamed; :func:`check_text_file`): a .txt
    line (any name but .tsv or .jsonl) one text, no id, blank lines included; a .tsv row as
    :func:`~biohicl.data.corpus.read_tsv` reads a queries file (its header, or ``id<TAB>[title<TAB>]text``; blank lines
    skipped); a .jsonl line a JSON string or a record (:func:`~biohicl.data.corpus.document_from_record`; id: its line
    number when it has none)."""
    path = check_text_file(path)
    name = path.name.lower()
    if name.endswith(TSV_SUFFIXES):
        for doc in read_tsv(path, queries=True):
            yield doc.record, doc.id, doc.full_text()
        return
    if not name.endswith(JSONL_SUFFIXES):
        for number, line in iter_lines(path):
            yield number, None, line.rstrip("\n\r")
        return
    for number, record in iter_json_lines(path):
        if isinstance(record, str):
            yield number, None, record
        elif isinstance(record, dict):
            if not any(k in record for k in ID_FIELDS):
                record = {**record, "id": str(number)}
            doc = document_from_record(record, path, line=number, labels=False)  # a text: its labels are not read
            yield number, doc.id, doc.full_text()
        else:
            raise DataError("expected a JSON string or object per line", path, line=number)
