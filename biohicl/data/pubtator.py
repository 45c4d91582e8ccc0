"""PubTator files (BC5CDR): title and abstract lines, then entity mentions whose MeSH descriptor ids are the
labels (label kind ``mentions``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from biohicl.data.files import check_file, guarded_reader, open_text
from biohicl.data.read_report import ReadReport
from biohicl.data.records import MALFORMED, MeshRecord, ReadContext
from biohicl.mesh.hierarchy import MeshHierarchy


@guarded_reader
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
    path = check_file(path)
    ctx = ReadContext(path, "pubtator", mesh or MeshHierarchy.load(), strict, report)
    with open_text(path, "utf-8-sig") as handle:
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


def _pubtator_record(ctx: ReadContext, block: list[str]) -> MeshRecord | None:
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
        ctx.skip(MALFORMED, f"pmid {pmid[:60]!r}: missing title or abstract line")
        return None
    return ctx.emit(pmid, title, abstract, ctx.resolve_ids(ids))
