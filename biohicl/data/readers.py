"""Streaming readers for MeSH-annotated abstracts: BioASQ Task 1a JSON, PubMed/MEDLINE XML, MEDLINE/PubMed text
(:mod:`biohicl.data.medline_text`), PubMedQA, PubTator.

Every reader is a generator of :class:`MeshRecord` (``pmid``, ``title``, ``abstract``, ``mesh`` as descriptor
UIs, ``label_kind``) and never holds a whole corpus in memory (the BioASQ file is over 20 GB).

Two kinds of MeSH label (:data:`LABEL_KINDS`): **indexing**, the descriptors NLM indexers assign to the whole
article, check tags such as Humans included (BioASQ, MEDLINE XML and text, PubMedQA), and **mentions**, the MeSH
ids of the chemicals and diseases named in the text (PubTator/BC5CDR). SimL between the two kinds measures the
source rather than the content, so a dataset keeps them apart.

Bad input policy (the same for every reader; nothing is dropped silently):

* a **malformed record** (broken JSON/XML/PubTator block, missing PMID) or an **empty abstract**: the record is
  skipped and counted in the :class:`ReadReport`, with file and record number;
* a MeSH **name or descriptor id that does not resolve** in the loaded MeSH release (typically a descriptor
  renamed or retired between releases): the label is dropped from the record and counted; a record left
  without any label is skipped and counted;
* supplementary concept ids (``C...``, PubTator chemicals) and un-normalised mentions (``-1``) are *not*
  descriptors and *not* errors: they are ignored and counted as such; a record with no descriptor at all
  (a citation NLM has not indexed yet, a PubTator abstract with SCR ids only) is skipped and counted, never
  an error;
* with ``strict=True`` the first malformed record, empty abstract or unresolvable label raises
  :class:`~biohicl.errors.DataError` naming the file and record number instead.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)

SOURCES = ("bioasq", "medline", "medline-text", "pubmedqa", "pubtator")
INDEXING, MENTIONS = "indexing", "mentions"
LABEL_KINDS: dict[str, str] = {
    "bioasq": INDEXING,
    "medline": INDEXING,
    "medline-text": INDEXING,
    "pubmedqa": INDEXING,
    "pubtator": MENTIONS,
}
EXAMPLES_PER_REASON = 3

# Reasons a record is skipped or a label dropped (the keys of ReadReport's counters).
MALFORMED = "malformed record"
EMPTY_ABSTRACT = "empty abstract"
NO_LABELS = "no MeSH label left"
NOT_INDEXED = "no MeSH descriptor in the record"
DUPLICATE = "duplicate pmid"
UNRESOLVED_NAME = "MeSH name not in this MeSH release"
UNKNOWN_ID = "descriptor id not in this MeSH release"
SCR_ID = "supplementary concept id (not a descriptor)"
UNNORMALISED = "mention without MeSH id (-1)"


@dataclass
class MeshRecord:
    """One MeSH-indexed abstract."""

    pmid: str
    title: str
    abstract: str
    mesh: tuple[str, ...]
    source: str
    split: str = "train"
    question: str = ""
    long_answer: str = ""
    year: str = ""
    journal: str = ""
    label_kind: str = ""  # "indexing" | "mentions"; from the source when not given
    major: tuple[str, ...] = ()  # descriptor UIs marked major topic (MEDLINE ``*`` / MajorTopicYN="Y")
    origin: str = field(default="", compare=False, repr=False)  # the file the record was read from

    def __post_init__(self) -> None:
        if not self.label_kind:
            self.label_kind = LABEL_KINDS.get(self.source, INDEXING)


def label_kind_of(source: str) -> str:
    """The label kind a source's MeSH ids are (:data:`LABEL_KINDS`)."""
    return LABEL_KINDS.get(source, INDEXING)


@dataclass
class ReadReport:
    """What a reader read, kept and skipped (and why), with example locations; printed at the end of a build."""

    read: int = 0
    kept: int = 0
    labels_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    labels_dropped: Counter = field(default_factory=Counter)
    labels_ignored: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    unrecognised_files: list[str] = field(default_factory=list)  # inputs whose format was not detected

    @property
    def mean_labels(self) -> float:
        """Mean number of MeSH descriptors per kept record."""
        return self.labels_kept / self.kept if self.kept else 0.0

    def note(self, reason: str, path: str | Path, record: int | None, detail: str = "") -> None:
        """Remember where a problem occurred (the first few per reason) and log it."""
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            where = str(path) if record is None else f"{path}, record {record}"
            where += f": {detail}" if detail else ""
            examples.append(where)
            logger.warning("%s (%s)", where, reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "labels_dropped": dict(self.labels_dropped),
            "labels_ignored": dict(self.labels_ignored),
            "mean_labels_per_document": round(self.mean_labels, 3),
            "examples": {reason: list(where) for reason, where in self.examples.items()},
            "files": list(self.files),
            "unrecognised_files": list(self.unrecognised_files),
        }

    def summary(self) -> str:
        lines = [
            f"documents read: {self.read:,}; kept: {self.kept:,}; skipped: {sum(self.skipped.values()):,}",
            f"mean MeSH descriptors per kept document: {self.mean_labels:.2f}",
        ]
        for title, counter in (
            ("skipped", self.skipped),
            ("labels dropped", self.labels_dropped),
            ("labels ignored", self.labels_ignored),
        ):
            for reason, count in counter.most_common():
                lines.append(f"  {title}: {reason}: {count:,}")
                lines.extend(f"      e.g. {where}" for where in self.examples.get(reason, ()))
        if self.unrecognised_files:
            lines.append(f"  files not read (format not recognised): {', '.join(self.unrecognised_files)}")
        return "\n".join(lines)

    __str__ = summary


class _Context:
    """Per-file bookkeeping shared by the readers: counting, strict mode, label resolution."""

    def __init__(self, path: Path, source: str, mesh: MeshHierarchy, strict: bool, report: ReadReport | None):
        self.path, self.source, self.mesh, self.strict = path, source, mesh, strict
        self.report = report if report is not None else ReadReport()
        self.report.files.append(str(path))
        self.record = 0
        self.dropped = 0  # labels of the current record that did not resolve

    def start(self) -> None:
        """Begin the next record."""
        self.record += 1
        self.dropped = 0

    def problem(self, reason: str, detail: str = "", record: int | None = None) -> None:
        record = self.record if record is None else record
        if self.strict:
            raise DataError(f"{reason}: {detail}" if detail else reason, self.path, record)
        self.report.note(reason, self.path, record, detail)

    def skip(self, reason: str, detail: str = "", record: int | None = None, error: bool = True) -> None:
        """Count a skipped record; ``error=False`` for expected cases (a record nobody indexed with MeSH)."""
        self.report.read += 1
        self.report.skipped[reason] += 1
        if error:
            self.problem(reason, detail, record)
        else:
            self.report.note(reason, self.path, self.record if record is None else record, detail)

    def resolve_names(self, names: Iterable[str]) -> list[str]:
        """Descriptor UIs of MeSH names; unresolvable names are dropped, counted in ``self.dropped``."""
        uis = []
        for name in names:
            ui = self.mesh.try_resolve(name) if isinstance(name, str) else None
            if ui is None:
                self.report.labels_dropped[UNRESOLVED_NAME] += 1
                self.dropped += 1
                self.problem(UNRESOLVED_NAME, repr(name))
            else:
                uis.append(ui)
        return uis

    def resolve_ids(self, ids: Iterable[str]) -> list[str]:
        """Descriptor UIs from ids; SCR ids and ``-1`` are ignored, unknown ids dropped (``self.dropped``)."""
        uis = []
        for raw in ids:
            ui = raw.strip().removeprefix("MESH:")
            if ui in self.mesh.names:
                uis.append(ui)
            elif ui in {"-1", ""}:
                self.report.labels_ignored[UNNORMALISED] += 1
            elif ui.startswith("C"):
                self.report.labels_ignored[SCR_ID] += 1
            else:
                self.report.labels_dropped[UNKNOWN_ID] += 1
                self.dropped += 1
                self.problem(UNKNOWN_ID, repr(raw))
        return uis

    def emit(self, pmid: str, title: str, abstract: str, uis: Sequence[str], **extra: Any) -> MeshRecord | None:
        """Build the record, or skip it (empty abstract, no label) and return ``None``."""
        if not abstract.strip():
            self.skip(EMPTY_ABSTRACT, f"pmid {pmid}")
            return None
        mesh = tuple(dict.fromkeys(uis))
        if not mesh:
            self.skip(NO_LABELS if self.dropped else NOT_INDEXED, f"pmid {pmid}", error=False)
            return None
        self.report.read += 1
        self.report.kept += 1
        self.report.labels_kept += len(mesh)
        if "major" in extra:
            extra["major"] = tuple(ui for ui in dict.fromkeys(extra["major"]) if ui in mesh)
        return MeshRecord(str(pmid), title.strip(), abstract.strip(), mesh, self.source, origin=str(self.path), **extra)


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding)
    return path.open("r", encoding=encoding)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError("input file not found", path)
    return path


def _undecodable(path: Path, err: UnicodeDecodeError) -> DataError:
    head = bytes(err.object[:4]) if isinstance(err.object, (bytes, bytearray)) else b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        what, source = "UTF-16 text (byte-order mark)", "utf-16"
    else:
        what, source = f"byte {err.object[err.start]:#04x} that is not {err.encoding}", "latin1"
    return DataError(f"cannot decode the file: {what}; convert it to UTF-8 (`iconv -f {source} -t utf-8`)", path)


def _guarded(reader: Callable[..., Iterator[MeshRecord]]) -> Callable[..., Iterator[MeshRecord]]:
    """Turn what a bad file can raise mid-stream (wrong encoding, corrupt gzip) into a :class:`DataError`."""

    @functools.wraps(reader)
    def wrapper(path: str | Path, *args: Any, **kwargs: Any) -> Iterator[MeshRecord]:
        try:
            yield from reader(path, *args, **kwargs)
        except UnicodeDecodeError as err:
            raise _undecodable(Path(path), err) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(f"corrupt or truncated gzip file ({err})", path) from None

    return wrapper


# --------------------------------------------------------------------------- incremental JSON
class _Malformed:
    """Stands for an array element that could not be decoded (the reader re-synchronised after it)."""

    def __init__(self, message: str):
        self.message = message


class JsonStream:
    """Incremental JSON reader over a text stream: objects and arrays item by item, values with ``raw_decode``.

    Only one array element (or object value) is in memory at a time, so a 20 GB ``{"articles": [...]}`` file
    streams in constant memory.
    """

    _WHITESPACE = re.compile(r"[ \t\n\r]*")

    def __init__(self, handle: io.TextIOBase, chunk_size: int = 1 << 20, max_value_chars: int = 1 << 28):
        self.handle, self.chunk_size, self.max_value_chars = handle, chunk_size, max_value_chars
        self.buf, self.pos, self.eof = "", 0, False
        self.truncated = False  # an array element was undecodable and no later element could be found
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """Next non-whitespace character ('' at end of input), not consumed."""
        while True:
            self.pos = self._WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            found = repr(char) if char else "end of input"
            raise json.JSONDecodeError(f"expected one of {chars!r}, found {found}", self.buf, self.pos)
        self.pos += 1
        return char

    _SCALAR_END = re.compile(r"[,\]}\s]")

    def value(self) -> Any:
        """Decode the next JSON value, reading more input as needed."""
        if self.peek() not in '{["':  # a number or literal: make sure its end is in the buffer
            while not self._SCALAR_END.search(self.buf, self.pos) and self._fill():
                pass
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:  # e.g. "[[[[..." : malformed for us, never a crash
                raise json.JSONDecodeError("JSON nested too deeply", self.buf, self.pos) from None
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > self.max_value_chars or not self._fill():
                    raise
                continue
            self.pos = end
            return value

    def object_keys(self) -> Iterator[str]:
        """Keys of the object starting here; the caller consumes each value before asking for the next key."""
        self.expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise json.JSONDecodeError("object key must be a string", self.buf, self.pos)
            self.expect(":")
            yield key
            if self.expect(",}") == "}":
                return

    def array(self) -> Iterator[Any]:
        """Elements of the array starting here; an undecodable element yields :class:`_Malformed` and the
        stream resumes at the next line that starts a new object (one element per line, as BioASQ writes)."""
        self.expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            try:
                yield self.value()
                closing = self.expect(",]")
            except json.JSONDecodeError as err:
                yield _Malformed(err.msg)
                if not self._resync():
                    self.truncated = True
                    return
                continue
            if closing == "]":
                return

    def _resync(self) -> bool:
        pattern = re.compile(r"\n[ \t\r]*,?[ \t\r]*(?=\{)")
        start = self.pos + 1
        while True:
            match = pattern.search(self.buf, start)
            if match:
                self.pos = match.end()
                return True
            start = max(self.pos, len(self.buf) - 64)
            keep = start - self.pos
            if not self._fill():
                return False
            start = keep


# --------------------------------------------------------------------------- BioASQ
@_guarded
def read_bioasq(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    encoding: str = "utf-8",
) -> Iterator[MeshRecord]:
    """BioASQ Task 1a JSON (``allMeSH_20XX.json``: ``{"articles": [{pmid, title, abstractText, meshMajor,
    journal, year}, ...]}``), streamed article by article."""
    path = _check_file(path)
    ctx = _Context(path, "bioasq", mesh or MeshHierarchy.load(), strict, report)
    with _open_text(path, encoding) as handle:
        stream = JsonStream(handle)
        try:
            keys = stream.object_keys()
            for key in keys:
                if key != "articles":
                    stream.value()
                    continue
                for article in stream.array():
                    ctx.start()
                    record = _bioasq_record(ctx, article)
                    if record is not None:
                        yield record
                if stream.truncated:
                    return
        except json.JSONDecodeError as err:
            ctx.skip(MALFORMED, f"JSON: {err.msg} (stream cannot continue)", ctx.record + 1)


def _bioasq_record(ctx: _Context, article: Any) -> MeshRecord | None:
    if isinstance(article, _Malformed):
        ctx.skip(MALFORMED, f"JSON: {article.message}")
        return None
    if not isinstance(article, dict) or not article.get("pmid"):
        ctx.skip(MALFORMED, "not an article object with a pmid")
        return None
    names = article.get("meshMajor") or []
    if not isinstance(names, list):
        ctx.skip(MALFORMED, "meshMajor is not a list")
        return None
    uis = ctx.resolve_names(names)
    return ctx.emit(
        str(article["pmid"]),
        str(article.get("title") or ""),
        str(article.get("abstractText") or ""),
        uis,
        year=str(article.get("year") or ""),
        journal=str(article.get("journal") or ""),
    )


# --------------------------------------------------------------------------- MEDLINE XML
_CITATION_OPEN = re.compile(rb"<MedlineCitation[\s>/]")
_CITATION_CLOSE = b"</MedlineCitation>"
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_RAW_PMID = re.compile(rb"<PMID[^>]*>\s*(\d+)")


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


def _utf16_encoding(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be"
    return None


def _citation_blocks(handle: Any, chunk_size: int = 1 << 20) -> Iterator[tuple[bytes, str, str]]:
    """The ``<MedlineCitation>…</MedlineCitation>`` byte blocks of a PubMed XML stream, each with the encoding
    its document declared and ``""`` or why it is broken (``"truncated"``).

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
            declared(keep)
            pos = keep
            if not fill():
                return
            continue
        start = opened.start()
        declared(start)
        close = buf.find(_CITATION_CLOSE, start)
        if close < 0:
            if fill():
                continue
            yield buf[start:], encoding, "truncated"
            return
        end = close + len(_CITATION_CLOSE)
        inner = max((m.start() for m in _CITATION_OPEN.finditer(buf, start + 1, close)), default=None)
        if inner is not None:  # a citation cut off by the next one (e.g. a file saved twice into one)
            yield buf[start:inner], encoding, "truncated"
            start = inner
            declared(start)
        yield buf[start:end], encoding, ""
        pos = end


@_guarded
def read_medline(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[MeshRecord]:
    """PubMed/MEDLINE XML (``.xml`` or ``.xml.gz``; ``MedlineCitationSet`` or ``PubmedArticleSet``), one
    record per ``MedlineCitation`` with the UIs of ``MeshHeadingList/MeshHeading/DescriptorName`` (``major``:
    those with ``MajorTopicYN="Y"`` on the descriptor or one of its qualifiers).

    Read as it really comes: several XML documents one after another in one file are all read; a citation that
    cannot be decoded (one bad byte) or parsed is skipped, counted and named by record number and PMID, and
    reading goes on with the next citation. UTF-16 files are read too.
    """
    path = _check_file(path)
    ctx = _Context(path, "medline", mesh or MeshHierarchy.load(), strict, report)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        stream: Any = handle
        forced = _utf16_encoding(handle.peek(4)[:4]) if hasattr(handle, "peek") else None
        if forced:
            stream = _Utf8Transcoder(handle, forced)
        for block, encoding, broken in _citation_blocks(stream):
            ctx.start()
            pmid = _RAW_PMID.search(block)
            name = f"pmid {pmid.group(1).decode()}" if pmid else "no PMID found"
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


def _medline_record(ctx: _Context, citation: ET.Element) -> MeshRecord | None:
    pmid = (citation.findtext("PMID") or "").strip()
    if not pmid:
        ctx.skip(MALFORMED, "MedlineCitation without PMID")
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
    year = citation.findtext("Article/Journal/JournalIssue/PubDate/Year") or ""
    journal = citation.findtext("Article/Journal/Title") or ""
    return ctx.emit(pmid, " ".join(title.split()), abstract, uis, year=year, journal=journal, major=major)


# --------------------------------------------------------------------------- PubMedQA
@_guarded
def read_pubmedqa(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    test_ids: str | Path | Iterable[str] | None = "auto",
) -> Iterator[MeshRecord]:
    """PubMedQA ``ori_pqal.json`` (``{pmid: {QUESTION, CONTEXTS, MESHES, LONG_ANSWER, YEAR, ...}}``).

    The abstract is the joined ``CONTEXTS`` (PubMedQA's context; its conclusion is ``LONG_ANSWER``, kept
    apart). ``split`` is ``"test"`` for the official test PMIDs (``test_ground_truth.json``, found beside the
    file when ``test_ids="auto"``) and ``"train"`` otherwise.
    """
    path = _check_file(path)
    ctx = _Context(path, "pubmedqa", mesh or MeshHierarchy.load(), strict, report)
    tests = _pubmedqa_test_ids(path, test_ids)
    with _open_text(path) as handle:
        stream = JsonStream(handle)
        in_value = False  # a decoding error inside an item belongs to that item's record number
        try:
            for pmid in stream.object_keys():
                ctx.start()
                in_value = True
                item = stream.value()
                in_value = False
                if not isinstance(item, dict) or not isinstance(item.get("CONTEXTS"), list):
                    ctx.skip(MALFORMED, f"pmid {pmid}: not an item with a CONTEXTS list")
                    continue
                uis = ctx.resolve_names(item.get("MESHES") or [])
                record = ctx.emit(
                    pmid,
                    "",
                    " ".join(str(c).strip() for c in item["CONTEXTS"]),
                    uis,
                    split="test" if pmid in tests else "train",
                    question=str(item.get("QUESTION") or ""),
                    long_answer=str(item.get("LONG_ANSWER") or ""),
                    year=str(item.get("YEAR") or ""),
                )
                if record is not None:
                    yield record
        except json.JSONDecodeError as err:
            record = ctx.record if in_value else ctx.record + 1
            ctx.skip(MALFORMED, f"JSON: {err.msg} (stream cannot continue)", record)


def _pubmedqa_test_ids(path: Path, test_ids: str | Path | Iterable[str] | None) -> set[str]:
    if test_ids is None:
        return set()
    if isinstance(test_ids, str) and test_ids == "auto":
        candidate = path.parent / "test_ground_truth.json"
        return load_pubmedqa_test_ids(candidate) if candidate.is_file() else set()
    if isinstance(test_ids, (str, Path)):
        return load_pubmedqa_test_ids(test_ids)
    return {str(t) for t in test_ids}


def load_pubmedqa_test_ids(path: str | Path) -> set[str]:
    """The 500 official PubMedQA test PMIDs (keys of ``test_ground_truth.json``)."""
    path = _check_file(path)
    try:
        with _open_text(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON ({err.msg}, line {err.lineno})", path) from None
    except UnicodeDecodeError as err:
        raise _undecodable(path, err) from None
    if not isinstance(data, dict):
        raise DataError("expected a {pmid: label} object", path)
    return {str(k) for k in data}


# --------------------------------------------------------------------------- PubTator
@_guarded
def read_pubtator(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[MeshRecord]:
    """PubTator files (BC5CDR): ``pmid|t|title``, ``pmid|a|abstract``, then mention lines
    ``pmid<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids`` whose descriptor ids (``D…``, ``|``-separated) become
    the labels, in order of first mention; relation lines (``pmid<TAB>CID<TAB>…``) are ignored."""
    path = _check_file(path)
    ctx = _Context(path, "pubtator", mesh or MeshHierarchy.load(), strict, report)
    with _open_text(path, "utf-8-sig") as handle:
        block: list[str] = []
        for line in handle:
            line = line.rstrip("\n\r")
            if line.strip():
                block.append(line)
                continue
            if block:
                ctx.start()
                record = _pubtator_record(ctx, block)
                block = []
                if record is not None:
                    yield record
        if block:
            ctx.start()
            record = _pubtator_record(ctx, block)
            if record is not None:
                yield record


def _pubtator_record(ctx: _Context, block: list[str]) -> MeshRecord | None:
    pmid, title, abstract, ids = "", None, None, []
    for line in block:
        if "|" in line.split("\t", 1)[0]:
            head, _, text = line.partition("|")
            kind, _, text = text.partition("|")
            pmid = pmid or head
            if head != pmid or kind not in {"t", "a"}:
                ctx.skip(MALFORMED, f"unexpected line {line[:60]!r}")
                return None
            if kind == "t":
                title = text
            else:
                abstract = text
            continue
        cols = line.split("\t")
        if cols[0] != pmid:
            ctx.skip(MALFORMED, f"line for pmid {cols[0][:60]!r} inside pmid {pmid[:60]!r}")
            return None
        if len(cols) >= 6 and cols[1].isdigit():
            ids.extend(cols[5].split("|"))
        elif len(cols) >= 4 and not cols[1].isdigit():
            continue  # relation line, e.g. CID
        else:
            ctx.skip(MALFORMED, f"mention line with {len(cols)} columns")
            return None
    if not pmid or title is None or abstract is None:
        ctx.skip(MALFORMED, f"pmid {pmid[:60] or '?'}: missing title or abstract line")
        return None
    return ctx.emit(pmid, title, abstract, ctx.resolve_ids(ids))


# --------------------------------------------------------------------------- dispatch
from biohicl.data.medline_text import read_medline_text  # noqa: E402  (it builds on the helpers above)

READERS: dict[str, Callable[..., Iterator[MeshRecord]]] = {
    "bioasq": read_bioasq,
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


def detect_source(path: str | Path) -> str | None:
    """The :data:`SOURCES` format of a file from its first 64 KB (``None`` when it is none of them): PubMed XML
    (``<PubmedArticle``/``<MedlineCitation``), MEDLINE text (a ``PMID-`` line), BioASQ JSON (``"articles"``),
    PubMedQA JSON (``{"<pmid>": {...}}``), PubTator (``pmid|t|``)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return None
    utf16 = _utf16_encoding(head[:4])
    text = head.decode(utf16 or "utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        return "medline" if re.search(r"<(PubmedArticle|MedlineCitation)[\s>]", text) else None
    if text.startswith("{"):
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


def resolve_inputs(
    inputs: Sequence[tuple[str, Sequence[str | Path]]], report: ReadReport | None = None
) -> list[tuple[str, list[Path]]]:
    """Replace ``("auto", files)`` groups by one ``(detected source, [file])`` group per file, in order. Files
    whose format is not recognised are left out and listed in ``report.unrecognised_files`` (a folder's
    ``README.md`` or ``manifest.tsv`` caught by a shell glob); a missing file, or no recognised file at all, is a
    :class:`~biohicl.errors.DataError`."""
    groups: list[tuple[str, list[Path]]] = []
    unrecognised: list[str] = []
    for source, files in inputs:
        paths = [Path(f) for f in ([files] if isinstance(files, (str, Path)) else files)]
        if source != AUTO:
            groups.append((source, paths))
            continue
        for path in paths:
            _check_file(path)
            detected = detect_source(path)
            if detected is None:
                unrecognised.append(str(path))
                logger.warning("%s: not a corpus format biohicl reads (%s); left out", path, ", ".join(SOURCES))
            else:
                groups.append((detected, [path]))
    if unrecognised and not groups:
        shown = ", ".join(unrecognised[:3]) + (f" and {len(unrecognised) - 3} more" if len(unrecognised) > 3 else "")
        raise DataError(f"no input file is in a format biohicl reads ({', '.join(SOURCES)}): {shown}")
    if report is not None:
        report.unrecognised_files.extend(unrecognised)
    return groups


def read_records(
    source: str,
    paths: str | Path | Sequence[str | Path],
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[MeshRecord]:
    """Records of one ``source`` (one of :data:`SOURCES`, or ``"auto"``: detected per file) from one or more
    files."""
    if source not in READERS and source != AUTO:
        raise DataError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    mesh = mesh or MeshHierarchy.load()
    for group_source, files in resolve_inputs([(source, [paths] if isinstance(paths, (str, Path)) else paths)], report):
        for path in files:
            yield from READERS[group_source](path, mesh, strict=strict, report=report)


def unique_records(
    records: Iterable[MeshRecord], report: ReadReport | None = None, strict: bool = False
) -> Iterator[MeshRecord]:
    """Drop later copies of a PMID (e.g. an abstract in two corpora), counting them; the first copy wins,
    except that a ``test`` split marking is never lost."""
    seen: dict[str, MeshRecord] = {}
    for record in records:
        first = seen.get(record.pmid)
        if first is None:
            seen[record.pmid] = record
            yield record
            continue
        if record.split == "test":
            first.split = "test"
        where = first.origin or first.source
        if report is not None:
            report.kept -= 1
            report.labels_kept -= len(record.mesh)
            report.skipped[DUPLICATE] += 1
            report.note(DUPLICATE, record.origin or record.source, None, f"pmid {record.pmid} (also in {where})")
        if strict:
            raise DataError(f"duplicate pmid {record.pmid} (also in {where})")
