"""PubMed/MEDLINE XML (``MedlineCitationSet`` or ``PubmedArticleSet``, ``.xml`` or ``.xml.gz``), read citation by
citation: a byte-level scanner (:func:`citation_blocks`) cuts the stream into ``<MedlineCitation>`` (and
``<DeleteCitation>``) blocks, so several XML documents in one file, a bad byte or a broken citation only ever cost
the citation they are in."""

from __future__ import annotations

import io
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biohicl.data.files import check_file, guarded_reader, utf16_encoding
from biohicl.data.records import (
    BOOK,
    CONTROL_CHARACTER,
    MALFORMED,
    RETRACTED,
    SCR_ID,
    MeshRecord,
    ReadContext,
    ReadReport,
)
from biohicl.mesh.formats import open_maybe_gzip
from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)

_CITATION_OPEN = re.compile(rb"<(MedlineCitation|DeleteCitation|PubmedBookArticle)[\s>/]")
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_RAW_PMID = re.compile(rb"<PMID[^>]*>\s*(\d+)")
_NLM_FILE = re.compile(r"pubmed(\d{2})n(\d{4})")


def nlm_file_number(path: str | Path) -> tuple[int, int] | None:
    """The (year, number) of an NLM baseline or update file (``pubmed25n1275.xml.gz`` → ``(25, 1275)``), the order
    NLM publishes them in; ``None`` for any other file name."""
    match = _NLM_FILE.match(Path(path).name) if path else None
    return (int(match.group(1)), int(match.group(2))) if match else None


class _Utf8Transcoder(io.RawIOBase):
    """A binary stream of UTF-16 XML re-encoded as UTF-8, so the byte-level citation scanner can read it."""

    def __init__(self, handle: Any, encoding: str):
        self.text = io.TextIOWrapper(handle, encoding=encoding, errors="replace")
        self.pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.pending) < size:
            chunk = self.text.read(1 << 16)
            if not chunk:
                break
            self.pending += chunk.encode("utf-8")
        out, self.pending = (self.pending, b"") if size < 0 else (self.pending[:size], self.pending[size:])
        return out


def citation_blocks(handle: Any, chunk_size: int = 1 << 20) -> Iterator[tuple[bytes, str, str]]:
    """The ``<MedlineCitation>…</MedlineCitation>`` (and ``<DeleteCitation>…</DeleteCitation>``) byte blocks of a
    PubMed XML stream, each with the encoding its document declared and ``""`` or why it is broken (``"truncated"``).

    The stream is scanned, not parsed as one document, so several XML documents saved one after another (where a
    parser stops with "junk after document element"), a bad byte or a broken citation only ever cost the citation
    they are in: the scanner resumes at the next ``<MedlineCitation``. A citation that is cut off (a second
    ``<MedlineCitation`` before its end tag, or the end of the file) is yielded as ``truncated``.
    """
    buf, pos, eof, encoding = b"", 0, False, "utf-8"

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = handle.read(chunk_size)
        if not chunk:
            eof = True
            return False
        buf, pos = buf[pos:] + chunk, 0
        return True

    def declared(upto: int) -> None:
        nonlocal encoding
        for match in _XML_ENCODING.finditer(buf, pos, upto):
            encoding = match.group(1).decode("ascii").lower()

    while True:
        opened = _CITATION_OPEN.search(buf, pos)
        if opened is None:
            keep = max(pos, len(buf) - 64)  # a tag or declaration may straddle two chunks
            decl = buf.rfind(b"<?xml", max(pos, keep - 1024), keep + 4)  # one that starts before `keep`
            if decl >= 0 and buf.find(b"?>", decl, keep) < 0:  # a declaration running past `keep`: keep it whole
                keep = decl
            declared(keep)
            pos = keep
            if not fill():
                return
            continue
        start = opened.start()
        declared(start)
        close = buf.find(b"</" + opened.group(1) + b">", start)
        if close < 0:
            if fill():
                continue
            yield buf[start:], encoding, "truncated"
            return
        end = close + len(opened.group(1)) + 3
        inner = max((m.start() for m in _CITATION_OPEN.finditer(buf, start + 1, close)), default=None)
        if inner is not None:  # a citation cut off by the next one (e.g. a file saved twice into one)
            yield buf[start:inner], encoding, "truncated"
            declared(inner)
            pos = inner  # scanned again from there: the next block may be of the other kind
            continue
        yield buf[start:end], encoding, ""
        pos = end


@guarded_reader
def read_medline(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    deletions: list[tuple[str, str]] | None = None,
) -> Iterator[MeshRecord]:
    """PubMed/MEDLINE XML (``.xml`` or ``.xml.gz``; ``MedlineCitationSet`` or ``PubmedArticleSet``), one
    record per ``MedlineCitation`` with the UIs of ``MeshHeadingList/MeshHeading/DescriptorName`` (``major``:
    those with ``MajorTopicYN="Y"`` on the descriptor or one of its qualifiers). ``SupplMeshName`` ids are counted
    as ignored, ``PubmedBookArticle`` blocks as skipped book records, kept retracted publications in ``noted``.

    Read as it really comes: several XML documents one after another in one file are all read; a citation that
    cannot be decoded (one bad byte) or parsed is skipped, counted and named by record number and PMID, and
    reading goes on with the next citation. UTF-16 files are read too. The PMIDs of an NLM update file's
    ``<DeleteCitation>`` (a file named as NLM's, :func:`nlm_file_number`) are appended to ``deletions`` as
    ``(pmid, file)`` (for :func:`~biohicl.data.sources.unique_records`); another file's are ignored, with a warning.
    """
    path = check_file(path)
    ctx = ReadContext(path, "medline", mesh or MeshHierarchy.load(), strict, report)
    with open_maybe_gzip(path) as handle:  # up.XML.GZ too
        stream: Any = handle
        forced = utf16_encoding(handle.peek(4)[:4]) if hasattr(handle, "peek") else None
        if forced:
            stream = _Utf8Transcoder(handle, forced)
        for block, encoding, broken in citation_blocks(stream):
            if block.startswith(b"<DeleteCitation") and not broken:
                _deleted(path, block, deletions)
                continue
            ctx.start()
            pmid = _RAW_PMID.search(block)
            name = f"pmid {pmid.group(1).decode()[:40]!r}" if pmid else "no PMID found"
            if block.startswith(b"<PubmedBookArticle"):  # NCBI Bookshelf: no MedlineCitation, never MeSH-indexed
                ctx.skip(BOOK, name, error=False)
                continue
            if broken:
                ctx.skip(MALFORMED, f"XML: citation cut off before </MedlineCitation> ({name})")
                continue
            try:
                text = block.decode("utf-8" if forced else encoding)
            except UnicodeDecodeError as err:
                byte = err.object[err.start]
                ctx.skip(MALFORMED, f"undecodable byte {byte:#04x} (not {err.encoding}) ({name})")
                continue
            except LookupError:
                ctx.skip(MALFORMED, f"XML: unknown encoding {encoding!r} ({name})")
                continue
            try:
                citation = ET.fromstring(text)
            except ET.ParseError as err:
                ctx.skip(MALFORMED, f"XML: {err} ({name})")
                continue
            record = _medline_record(ctx, citation)
            if record is not None:
                yield record


def _deleted(path: Path, block: bytes, deletions: list[tuple[str, str]] | None) -> None:
    """Queue the PMIDs of a ``<DeleteCitation>`` block of an NLM distribution file for deletion."""
    pmids = [pmid.decode() for pmid in _RAW_PMID.findall(block)]
    if nlm_file_number(path) is None:
        logger.warning("%s: <DeleteCitation> of %d PMIDs ignored: not an NLM baseline/update file", path, len(pmids))
    elif deletions is not None:
        deletions.extend((pmid, str(path)) for pmid in pmids)


def _medline_record(ctx: ReadContext, citation: ET.Element) -> MeshRecord | None:
    pmid = (citation.findtext("PMID") or "").strip()
    if not pmid:
        ctx.skip(MALFORMED, "MedlineCitation without PMID")
        return None
    if CONTROL_CHARACTER.search(pmid):  # e.g. ``&#10;``: a newline would forge a log line
        ctx.skip(MALFORMED, f"pmid with a control character: {pmid!r:.40}")
        return None
    article = citation.find("Article")
    title = (
        "".join(article.find("ArticleTitle").itertext())
        if article is not None and (article.find("ArticleTitle") is not None)
        else ""
    )
    parts = citation.iterfind("Article/Abstract/AbstractText")
    abstract = " ".join(" ".join("".join(p.itertext()).split()) for p in parts)
    uis: list[str] = []
    major: list[str] = []
    for heading in citation.iterfind("MeshHeadingList/MeshHeading"):
        name = heading.find("DescriptorName")
        if name is None:
            continue
        ui = name.get("UI")
        found = ctx.resolve_ids([ui]) if ui else ctx.resolve_names(["".join(name.itertext())])
        uis.extend(found)
        flags = [name.get("MajorTopicYN")] + [q.get("MajorTopicYN") for q in heading.iterfind("QualifierName")]
        if "Y" in flags:
            major.extend(found)
    ctx.ignore_label(SCR_ID, sum(1 for _ in citation.iterfind("SupplMeshList/SupplMeshName")))  # none: no 0 line
    year = citation.findtext("Article/Journal/JournalIssue/PubDate/Year") or ""
    journal = citation.findtext("Article/Journal/Title") or ""
    record = ctx.emit(pmid, " ".join(title.split()), abstract, uis, year=year, journal=journal, major=major)
    types = (t.text for t in citation.iterfind("Article/PublicationTypeList/PublicationType"))
    if record is not None and "Retracted Publication" in types:
        ctx.report.noted[RETRACTED] += 1
    return record
