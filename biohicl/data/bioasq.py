"""BioASQ Task 1a JSON (``allMeSH_20XX.json``), streamed article by article."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biohicl.data.files import check_file, guarded_reader, open_text
from biohicl.data.json_stream import JsonStream, MalformedElement
from biohicl.data.read_report import ReadReport
from biohicl.data.records import CONTROL_CHARACTER, MALFORMED, MeshRecord, ReadContext
from biohicl.mesh.hierarchy import MeshHierarchy


@guarded_reader
def read_bioasq(
    path: str | Path,
    mesh: MeshHierarchy | None = None,
    *,
    strict: bool = False,
    report: ReadReport | None = None,
    encoding: str = "utf-8-sig",
) -> Iterator[MeshRecord]:
    """BioASQ Task 1a JSON (``allMeSH_20XX.json``: ``{"articles": [{pmid, title, abstractText, meshMajor,
    journal, year}, ...]}``), streamed article by article (UTF-8, a byte-order mark allowed)."""
    path = check_file(path)
    ctx = ReadContext(path, "bioasq", mesh or MeshHierarchy.load(), strict, report)
    with open_text(path, encoding) as handle:
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


def _bioasq_record(ctx: ReadContext, article: Any) -> MeshRecord | None:
    if isinstance(article, MalformedElement):
        ctx.skip(MALFORMED, f"JSON: {article.message}")
        return None
    if not isinstance(article, dict) or not article.get("pmid"):
        ctx.skip(MALFORMED, "not an article object with a pmid")
        return None
    if CONTROL_CHARACTER.search(str(article["pmid"])):  # a newline would forge a log line
        ctx.skip(MALFORMED, f"pmid with a control character: {str(article['pmid'])!r:.40}")
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
