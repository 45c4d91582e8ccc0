"""The MEDLINE/PubMed text format: what PubMed's "Save → PubMed format" writes (``.txt``, ``.medline``) and the
``.nbib`` files written for citation managers.

Each citation is a block of ``TAG - value`` lines (the tag left-justified in four columns: ``PMID- 123``,
``TI  - A title``), values continued on lines indented by six spaces, citations separated by blank lines.
Read: ``PMID``, ``TI`` (title), ``AB`` (abstract), ``MH`` (MeSH headings), ``DP`` (year), ``JT`` (journal).
An ``MH`` value is ``[*]Descriptor[/[*]qualifier]...``: the qualifiers and ``*`` marks are stripped and the
descriptor kept; a ``*`` on the descriptor or on any qualifier makes it a major topic (``MeshRecord.major``).

Windows line endings and a UTF-8 byte-order mark are accepted; a line that is not UTF-8 costs only the citation it
is in (skipped, counted and named), never the rest of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biohicl.data.files import check_file, guarded_reader, open_utf8_bytes
from biohicl.data.read_report import ReadReport
from biohicl.data.records import MALFORMED, MeshRecord, ReadContext
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_forms import heading_descriptor

TAG_LINE = re.compile(r"([A-Z][A-Z0-9]{0,3}) *- ?(.*)")
YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def parse_mesh_heading(value: str) -> tuple[str, bool]:
    """``"*Diabetes Mellitus, Type 2/drug therapy/*metabolism"`` → ``("Diabetes Mellitus, Type 2", True)``:
    the descriptor without qualifiers or ``*``, and whether it (or one of its qualifiers) is a major topic."""
    major = any(part.strip().startswith("*") for part in value.split("/"))
    return heading_descriptor(value), major


def _blocks(handle: Any) -> Iterator[tuple[list[tuple[str, str]], str]]:
    """``([(tag, value), ...], problem)`` per citation, continuation lines joined to their tag's value."""
    fields: list[tuple[str, str]] = []
    problem = ""
    first = True
    for number, raw in enumerate(handle, 1):
        if first:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
            first = False
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            problem = problem or f"undecodable byte {err.object[err.start]:#04x} (not utf-8) on line {number}"
            fields.append(("", ""))  # keeps the block open so the bad line stays inside its citation
            continue
        if not line.strip():
            if fields:
                yield fields, problem
            fields, problem = [], ""
            continue
        if line[0] in " \t":
            if fields and fields[-1][0]:
                tag, value = fields[-1]
                fields[-1] = (tag, f"{value} {line.strip()}" if value else line.strip())
            elif not problem:
                problem = f"line {number}: continuation line outside a field"
            continue
        match = TAG_LINE.fullmatch(line)
        if match is None:
            problem = problem or f"line {number}: not a 'TAG - value' line: {line[:60]!r}"
            continue
        tag, value = match.group(1), match.group(2).strip()
        if tag == "PMID" and any(t == "PMID" for t, _ in fields):  # a new citation without a blank line
            yield fields, problem
            fields, problem = [], ""
        fields.append((tag, value))
    if fields:
        yield fields, problem


@guarded_reader
def read_medline_text(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[MeshRecord]:
    """MEDLINE/PubMed text (``.txt``, ``.nbib``, ``.medline``, optionally ``.gz``), one record per citation."""
    path = check_file(path)
    ctx = ReadContext(path, "medline-text", mesh or MeshHierarchy.load(), strict, report)
    with open_utf8_bytes(path) as handle:
        for fields, problem in _blocks(handle):
            ctx.start()
            values: dict[str, list[str]] = {}
            for tag, value in fields:
                if tag:
                    values.setdefault(tag, []).append(value)
            pmid = (values.get("PMID") or [""])[0].strip()
            if problem:
                ctx.skip(MALFORMED, f"{problem} (pmid {pmid[:40]!r})")
                continue
            if not (pmid.isascii() and pmid.isdigit()):  # str.isdigit alone takes '²' and '٣'
                ctx.skip(MALFORMED, f"citation without a PMID line (pmid {pmid[:40]!r})" if pmid else
                         "citation without a PMID line")  # fmt: skip
                continue
            uis: list[str] = []
            major: list[str] = []
            for value in values.get("MH", ()):
                name, is_major = parse_mesh_heading(value)
                found = ctx.resolve_names([name])
                uis.extend(found)
                if is_major:
                    major.extend(found)
            year = YEAR.search(" ".join(values.get("DP", ())))
            record = ctx.emit(
                pmid,
                " ".join(values.get("TI", ())),
                " ".join(values.get("AB", ())),
                uis,
                year=year.group(1) if year else "",
                journal=(values.get("JT") or values.get("TA") or [""])[0],
                major=major,
            )
            if record is not None:
                yield record
