"""Corpus formats by name (:data:`SOURCES`, :data:`READERS`), format detection from a file's first bytes, and the
record stream of many files (:func:`read_records`) with later copies of a PMID dropped (:func:`unique_records`;
among NLM's baseline and update files the copy of the later file wins, and their ``<DeleteCitation>`` PMIDs go).

Every reader is a generator of :class:`~biohicl.data.records.MeshRecord` and never holds a whole corpus in memory
(the BioASQ file is over 20 GB); what it skips, and why, goes to a :class:`~biohicl.data.read_report.ReadReport`.
"""

from __future__ import annotations

import difflib
import gzip
import logging
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path

from biohicl.data.bioasq import read_bioasq
from biohicl.data.corpus import JSONL_SUFFIXES
from biohicl.data.files import check_file, file_identity, is_blank_file, utf16_encoding
from biohicl.data.jsonl import DETECT_FIELDS, LINE_LIMIT, is_jsonl_line, read_jsonl, starts_jsonl_line
from biohicl.data.medline_text import read_medline_text
from biohicl.data.pubmed_xml import nlm_file_number, read_medline
from biohicl.data.pubmedqa import read_pubmedqa
from biohicl.data.pubtator import read_pubtator
from biohicl.data.read_report import ReadReport
from biohicl.data.records import DELETED, DUPLICATE, REVISED, MeshRecord
from biohicl.errors import ConfigError, DataError
from biohicl.mesh.formats import open_maybe_gzip
from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)

SOURCES = ("bioasq", "jsonl", "medline", "medline-text", "pubmedqa", "pubtator")
READERS: dict[str, Callable[..., Iterator[MeshRecord]]] = {
    "bioasq": read_bioasq,
    "jsonl": read_jsonl,
    "medline": read_medline,
    "medline-text": read_medline_text,
    "pubmedqa": read_pubmedqa,
    "pubtator": read_pubtator,
}
AUTO = "auto"
_SNIFF_BYTES = 1 << 16
_PUBTATOR_LINE = re.compile(r"\d+\|[ta]\|")
_MEDLINE_TEXT_LINE = re.compile(r"(?m)^PMID- ?\d")
_PUBMEDQA_START = re.compile(r'\{\s*"\d+"\s*:\s*\{')
_OTHER_JSON_START = re.compile(rb'\{\s*"(\d+|articles)"\s*:')  # a one-line PubMedQA or BioASQ file: never read on
DELETED_SPLIT = "deleted"  # the split of a yielded record a later NLM update file deleted (dropped by the build)


def detect_source(path: str | Path) -> str | None:
    """The :data:`SOURCES` format of a file from its first 64 KB (``None`` when it is none of them): PubMed XML
    (``<PubmedArticle``/``<MedlineCitation``, or an update file's ``<DeleteCitation`` only), MEDLINE text (a
    ``PMID-`` line), BioASQ JSON (``"articles"``), PubMedQA JSON (``{"<pmid>": {...}}``), PubTator (``pmid|t|``),
    JSON lines (starting with ``{``, a line of the 64 KB that is a JSON object with a label field the jsonl reader
    takes, :data:`~biohicl.data.jsonl.DETECT_FIELDS`, so a first document without labels is no matter; a first
    line the 64 KB cut off is read on to its end, up to the jsonl reader's :data:`~biohicl.data.jsonl.LINE_LIMIT`,
    and one longer still has such a top-level key before that cut). A damaged gzip file is ``None`` too; a file
    that cannot be read at all (permissions, an I/O error) is a :class:`~biohicl.errors.DataError`, never left out
    as if its format were unknown."""
    path = Path(path)
    try:
        with open_maybe_gzip(path) as handle:  # EXPORT.XML.GZ too, as read_medline reads it
            head = handle.read(_SNIFF_BYTES)
            if _cut_json_line(head):  # e.g. a jsonl abstract over 64 KB before its `mesh` key
                head += handle.readline(LINE_LIMIT + 1 - len(head))
    except (gzip.BadGzipFile, EOFError, zlib.error):  # format damage: not a corpus file biohicl reads
        return None
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror or err}", path) from None
    utf16 = utf16_encoding(head[:4])
    text = head.decode(utf16 or "utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        found = re.search(r"<(PubmedArticle|MedlineCitation|DeleteCitation|PubmedBookArticle)[\s>]", text)
        return "medline" if found else None
    if text.startswith("{"):
        lines = text.split("\n")  # a line the 64 KB cut off is no JSON object: not counted
        if any(is_jsonl_line(line) for line in lines) or (len(lines) == 1 and starts_jsonl_line(text)):
            return "jsonl"  # (the second: a first line over LINE_LIMIT)
        if '"articles"' in text[:4096]:
            return "bioasq"
        if _PUBMEDQA_START.match(text) and '"QUESTION"' in text:
            return "pubmedqa"
        return None
    if _PUBTATOR_LINE.match(text):
        return "pubtator"
    if _MEDLINE_TEXT_LINE.search(text):
        return "medline-text"
    return None


def _cut_json_line(head: bytes) -> bool:
    """Whether the sniffed ``head`` is a UTF-8 first line cut off inside a JSON object that may be a jsonl line (not
    a one-line BioASQ or PubMedQA file, whose first keys are ``articles`` and PMIDs)."""
    if len(head) < _SNIFF_BYTES or utf16_encoding(head[:4]):
        return False
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # blank lines before the first line too
    return start.startswith(b"{") and b"\n" not in start and not _OTHER_JSON_START.match(start)


def check_source(source: object, field: str = "source") -> None:
    """A one-line :class:`~biohicl.errors.ConfigError` naming ``field`` unless ``source`` is one of :data:`SOURCES`
    or ``"auto"``, with the closest name (``'pubmedQA'``: did you mean pubmedqa)."""
    known = (*SOURCES, AUTO)
    if isinstance(source, str) and source in known:
        return
    text = str(source)
    close = [s for s in known if s == text.lower()] or difflib.get_close_matches(text.lower(), known, n=1)
    hint = f" (did you mean {close[0]})" if close else ""
    raise ConfigError(f"{field}: unknown {source!r}{hint}; choose one of {', '.join(known)}")


def resolve_inputs(
    inputs: Iterable[tuple[str, Iterable[str | Path] | str | Path]],
    report: ReadReport | None = None,
    strict: bool = False,
) -> list[tuple[str, list[Path]]]:
    """Replace ``("auto", files)`` groups by one ``(detected source, [file])`` group per file, in order (a group's
    files: one path, a list, or a generator or glob, read once). An empty file
    (:func:`~biohicl.data.files.is_blank_file`), whatever its source, is left out with a warning, listed in
    ``report.empty_files`` (a :class:`~biohicl.errors.DataError` naming it when ``strict``); so are files whose
    format is not recognised, listed in ``report.unrecognised_files`` (a folder's ``README.md`` or ``manifest.tsv``
    caught by a shell glob). A missing or unreadable file, a JSON lines file not recognised
    (:data:`~biohicl.data.corpus.JSONL_SUFFIXES`; a corpus its user meant to give: no label field in its first 64 KB),
    or no file left to read, is a :class:`~biohicl.errors.DataError`; one file given twice
    (:func:`check_distinct_inputs`) a :class:`~biohicl.errors.ConfigError`, before any is read."""
    listed = [(source, _paths(files)) for source, files in inputs]
    for source, _ in listed:
        check_source(source)  # before any file is looked at
    check_distinct_inputs(listed)
    groups: list[tuple[str, list[Path]]] = []
    unrecognised: list[str] = []
    empty: list[str] = []
    for source, paths in listed:
        kept: list[Path] = []
        for path in paths:
            if is_blank_file(check_file(path)):
                if strict:
                    raise DataError("empty file; nothing to read", path)
                empty.append(str(path))
                logger.warning("%s: empty file; left out", path)
            else:
                kept.append(path)
        if source != AUTO:
            groups += [(source, kept)] if kept or not paths else []
            continue
        for path in kept:
            detected = detect_source(path)
            if detected is None and path.name.lower().endswith(JSONL_SUFFIXES):
                raise DataError(
                    f"JSON lines with no MeSH label field ({', '.join(DETECT_FIELDS)}) in a line of its first 64 KB:"
                    " not a labelled corpus (a BEIR corpus.jsonl is not one); give it with --source jsonl if its "
                    "labels come later, or leave it out of --input",
                    path,
                )
            if detected is None:
                unrecognised.append(str(path))
                logger.warning("%s: not a corpus format biohicl reads (%s); left out", path, ", ".join(SOURCES))
            else:
                groups.append((detected, [path]))
    if (unrecognised or empty) and not groups:
        formats = f"not in a format biohicl reads ({', '.join(SOURCES)}): {_shown(unrecognised)}"
        if not empty:
            raise DataError(
                f"no input file is in a format biohicl reads ({', '.join(SOURCES)}): {_shown(unrecognised)}"
            )
        raise DataError(f"no input file to read: empty: {_shown(empty)}" + (f"; {formats}" if unrecognised else ""))
    if report is not None:
        report.unrecognised_files.extend(unrecognised)
        report.empty_files.extend(empty)
    return groups


def _paths(files: Iterable[str | Path] | str | Path) -> list[Path]:
    """A group's files as a list: one path, or each of a list, a generator or a glob (spent here, once)."""
    return [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]


def check_distinct_inputs(inputs: Sequence[tuple[str, Sequence[str | Path] | str | Path]]) -> None:
    """A one-line :class:`~biohicl.errors.ConfigError` naming a file that ``(source, files)`` groups (a path or a
    list; a generator would be spent: :func:`resolve_inputs` lists each group first) give twice (the same file, in one
    group or two, however named: spelt otherwise, a symlink or a hard link to it, told by its device and inode), which
    would be read twice: its records duplicates of themselves. Only files count: a path that is none (missing, a
    folder, a symlink loop) is left to :func:`~biohicl.data.files.check_file` to name. Nothing is read (a path is
    looked up, not opened)."""
    seen: dict[object, Path] = {}
    for _, files in inputs:
        for path in _paths(files):
            try:
                found = path.stat()  # follows symlinks; a symlink loop is an OSError (ELOOP)
                if not stat.S_ISREG(found.st_mode):
                    continue
                key = file_identity(path, found)
            except (OSError, RuntimeError):  # (a symlink loop: RuntimeError from resolve() before Python 3.13)
                continue  # check_file says what it is
            first = seen.setdefault(key, path)
            if first is not path:
                spelt = f" (as {first} and {path})" if str(first) != str(path) else ""
                raise ConfigError(f"{first}: given twice as an input{spelt}; give each file once")


def _shown(paths: Sequence[str]) -> str:
    """The first three of ``paths``, and how many more."""
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def read_records(
    source: str,
    paths: str | Path | Iterable[str | Path],
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    test_ids: str | Path | Iterable[str] | None = "auto",
    deletions: list[tuple[str, str]] | None = None,
) -> Iterator[MeshRecord]:
    """Records of one ``source`` (one of :data:`SOURCES`, or ``"auto"``: detected per file) from one or more
    files (a list, a generator or a glob); ``test_ids`` goes to the PubMedQA reader
    (:func:`~biohicl.data.pubmedqa.read_pubmedqa`), ``deletions`` to the XML reader (the ``<DeleteCitation>`` PMIDs
    of NLM update files, for :func:`unique_records`)."""
    if source not in READERS and source != AUTO:
        raise DataError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    mesh = mesh or MeshHierarchy.load()
    report = report if report is not None else ReadReport()
    groups = resolve_inputs([(source, paths)], report, strict)
    yield from read_groups(groups, mesh, strict=strict, report=report, test_ids=test_ids, deletions=deletions)


def read_groups(
    groups: Iterable[tuple[str, Sequence[Path]]],
    mesh: MeshHierarchy,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    test_ids: str | Path | Iterable[str] | None = "auto",
    deletions: list[tuple[str, str]] | None = None,
) -> Iterator[MeshRecord]:
    """The records of groups :func:`resolve_inputs` gave (each a :data:`SOURCES` format and its files), in order;
    the arguments as :func:`read_records` takes them."""
    report = report if report is not None else ReadReport()  # its counts say whether a file gave any record
    for group_source, files in groups:
        extra: dict[str, object] = {"test_ids": test_ids} if group_source == "pubmedqa" else {}
        if group_source == "medline":
            extra["deletions"] = deletions
        for path in files:
            read, found = report.read, 0
            for record in READERS[group_source](path, mesh, strict=strict, report=report, **extra):
                found += 1
                yield record
            if not found:
                _check_source(path, group_source, report.read - read, strict)


def _check_source(path: Path, source: str, read: int, strict: bool) -> None:
    """Say that a file gave no record under ``source`` (``read`` of them read, all skipped) when the format detection
    takes it for another format (a ``.nbib`` given as ``medline``): a warning, an error when ``strict``. A file of
    the format asked whose records were all skipped (their reasons are counted) is no such case."""
    guess = detect_source(path)
    if guess == source or (guess is None and read):
        return
    looks = f"it looks like {guess}" if guess else "it is in no format biohicl detects"
    what = f"no {source} record " + (f"kept of {read:,} read" if read else "read") + f" ({looks}; check --source)"
    if strict:
        raise DataError(what, path)
    logger.warning("%s: %s", path, what)


def unique_records(
    records: Iterable[MeshRecord],
    report: ReadReport | None = None,
    strict: bool = False,
    deletions: list[tuple[str, str]] | None = None,
) -> Iterator[MeshRecord]:
    """Drop later copies of a PMID (e.g. an abstract in two corpora), counting them; the first copy wins,
    except that a ``test`` split marking is never lost, a PubMedQA copy always wins over another source's, and
    between two NLM baseline/update files (:func:`nlm_file_number`) the copy from the later file wins (a revised
    citation; counted as such, never a ``strict`` error), whatever the order they are read in. A record already
    yielded is then updated in place (to the later ``test`` marking / PubMedQA record / revised citation), so a
    consumer that holds it (:func:`~biohicl.data.pairs.build_pair_dataset`) sees the change. The records yielded
    are copies, so the caller's own records are never changed.

    ``deletions`` is the queue of ``(pmid, file)`` the XML reader fills from NLM update files' ``<DeleteCitation>``
    (:func:`read_records`' ``deletions``): an NLM file's record is dropped when a later file deletes its PMID (one
    already yielded gets ``split`` :data:`DELETED_SPLIT`, which the build leaves out); a copy from a file later
    than the deletion (a re-add) is kept. Counted as deleted."""
    seen: dict[str, MeshRecord] = {}
    deleted_by: dict[str, tuple[tuple[int, int], str]] = {}  # pmid -> the latest file that deleted it
    queue = deletions if deletions is not None else []

    def apply_deletions() -> None:
        batch = list(queue)
        queue.clear()
        for pmid, path in batch:
            number = nlm_file_number(path)
            if number is None:
                continue
            deleted_by[pmid] = max(deleted_by.get(pmid, (number, path)), (number, path))
            held = seen.get(pmid)
            older = nlm_file_number(held.origin) if held is not None else None
            if held is not None and older is not None and older < number and held.split != DELETED_SPLIT:
                _count_dropped(report, held, DELETED, f"pmid {pmid[:40]!r} (deleted by {path})")
                held.split = DELETED_SPLIT

    for record in records:
        apply_deletions()
        newer = nlm_file_number(record.origin)
        gone = deleted_by.get(record.pmid)
        if newer is not None and gone is not None and gone[0] > newer:
            _count_dropped(report, record, DELETED, f"pmid {record.pmid[:40]!r} (deleted by {gone[1]})")
            continue
        first = seen.get(record.pmid)
        if first is None:
            seen[record.pmid] = first = replace(record)
            yield first
            continue
        older = nlm_file_number(first.origin)
        revision = newer is not None and older is not None and newer != older
        dropped: MeshRecord | None = record
        earlier = kept = first.where()  # the copy read before this one, named before it may be replaced below
        if (record.source == "pubmedqa" and first.source != "pubmedqa") or (revision and newer > older):
            dropped = replace(first) if first.split != DELETED_SPLIT else None  # a deleted one is counted already
            kept = record.where()
            test = first.split == "test" or record.split == "test"
            for name in (f.name for f in fields(record)):
                setattr(first, name, getattr(record, name))
            if test:
                first.split = "test"
        elif record.split == "test":
            first.split = "test"
        shown = f"pmid {record.pmid[:40]!r}"
        if dropped is not None:  # named where the dropped copy was read, with the copy kept
            _count_dropped(report, dropped, REVISED if revision else DUPLICATE, f"{shown} (also in {kept})")
        if strict and not revision:  # named where this copy was read, with the one read before it
            raise DataError(f"duplicate {shown} (also in {earlier})", record.origin or record.source, **record.at)
    apply_deletions()


def _count_dropped(report: ReadReport | None, dropped: MeshRecord, reason: str, detail: str) -> None:
    """Count a record dropped from the stream after its reader counted it kept: its labels, kept, dropped, ignored
    and noted, are taken back out of the report's counts (they are the kept copy's to count)."""
    if report is None:
        return
    report.kept -= 1
    if dropped.origin in report.per_file:
        report.per_file[dropped.origin]["kept"] -= 1
    report.labels_kept -= len(dropped.mesh)
    for counter, key in (
        *((report.labels_dropped, why) for why, _ in dropped.dropped_labels),
        *((report.dropped_names, label) for _, label in dropped.dropped_labels),
        *((report.labels_ignored, why) for why in dropped.ignored_labels),
        *((report.labels_noted, why) for why in dropped.noted_labels),
    ):
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]
    report.skipped[reason] += 1
    report.note(reason, dropped.origin or dropped.source, detail=detail, **dropped.at)
