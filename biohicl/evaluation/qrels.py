"""``read_qrels``: a BEIR folder's judgements, BEIR's three tab-separated columns or trec_eval's four, one format
per file (:mod:`biohicl.evaluation.retrieval` reads the rest of the folder)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from biohicl.errors import DataError

HEADER_FIRST_FIELDS = frozenset({"query-id", "query_id", "qid"})
BEIR_QRELS = "3 tab-separated fields (query-id, corpus-id, score)"
TREC_QRELS = "4 whitespace-separated fields (TREC: query-id, iteration, doc-id, relevance)"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(tabbed: list[str], words: list[str]) -> bool:
    """Whether the first non-blank line (split both ways) is a header: it starts with a known name, or it has a
    qrels line's shape (3 tab-separated or 3-4 whitespace-separated fields) with no field a number."""
    fields = tabbed if len(tabbed) in (3, 4) else words
    if fields and fields[0].strip().lower() in HEADER_FIRST_FIELDS:
        return True
    return len(fields) in (3, 4) and not any(_is_number(f.strip()) for f in fields)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` of a qrels file: BEIR's ``query-id <TAB> corpus-id <TAB> score`` or
    trec_eval's ``query-id iteration doc-id relevance`` (space- or tab-separated; the iteration is ignored), one
    format per file (the first judgement's), an optional header (the first non-blank line); a grade is an integer
    (``1.0`` too, not ``0.9``); a (query, document) pair is judged once; some judgement grades a document above 0.
    :class:`DataError` naming the line (or the file) that breaks this."""
    from biohicl.data.corpus import iter_lines  # decodes line by line: a bad byte or a corrupt gzip names its line

    qrels: dict[str, dict[str, int]] = {}
    trec: bool | None = None  # the file's format, set by its first judgement
    first, opening = 0, True  # that judgement's line; whether the next non-blank line is the first (a header?)
    lines: dict[tuple[str, str], int] = {}  # (query id, doc id) -> the line judging it
    for number, line in iter_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        tabbed = next(csv.reader([line], delimiter="\t"))  # BEIR's own reader: csv, tab-delimited
        words = line.split()
        header, opening = opening and _is_header(tabbed, words), False
        if header:
            continue
        if trec is None:
            if len(tabbed) != 3 and len(words) != 4:
                raise DataError(
                    f"line {number}: expected {BEIR_QRELS} or {TREC_QRELS}, got {len(tabbed)} tab-separated", path
                )
            trec, first = len(tabbed) != 3, number
        if not trec and len(tabbed) != 3:
            mixed = (
                f" (a TREC line in a file whose first judgement, line {first}, is BEIR's)" if len(words) == 4 else ""
            )
            raise DataError(f"line {number}: expected 3 tab-separated fields, got {len(tabbed)}{mixed}", path)
        if trec and len(words) != 4:
            mixed = f"; one format per file (line {first} is TREC's)" if len(tabbed) == 3 else ""
            raise DataError(f"line {number}: expected {TREC_QRELS}, got {len(words)}{mixed}", path)
        query_id, doc_id, score = (words[0], words[2], words[3]) if trec else (f.strip() for f in tabbed)
        grade = _grade(score, number, trec, path)
        if (query_id, doc_id) in lines:  # a second grade would replace the first silently: refused, a same one too
            at = lines[query_id, doc_id]
            raise DataError(
                f"line {number}: query {query_id!r} judges document {doc_id!r} again (first at line {at})", path
            )
        lines[query_id, doc_id] = number
        qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise DataError("no judgements", path)
    grades = [grade for judged in qrels.values() for grade in judged.values()]
    if max(grades) <= 0:  # every metric would be 0 whatever the ranking: not a measurement
        raise DataError(
            f"no judgement grades a document relevant (all {len(grades)} grades are 0 or less), so every metric "
            "would be 0 whatever the ranking",
            path,
        )
    return qrels


def _grade(score: str, number: int, trec: bool, path: Path) -> int:
    """A judgement's integer grade (``1.0`` is 1); :class:`DataError` naming the line of one that is not a number
    or has a fraction (``0.9``: truncated it was 0, as BEIR's loader, ``int(score)``, refuses it)."""
    name = "relevance (the 4th field of a TREC line)" if trec else "score"
    try:
        value = float(score)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"line {number}: {name} {score!r} is not a finite number", path)
    if not value.is_integer():
        raise DataError(f"line {number}: {name} {score!r} is not an integer grade (0, 1, 2 ...)", path)
    return int(value)
