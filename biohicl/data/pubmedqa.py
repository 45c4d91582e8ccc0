"""PubMedQA ``ori_pqal.json`` (PQA-L: question, context, MeSH names, long answer) and its official test PMIDs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from biohicl.data.files import check_file, guarded_reader, open_text, undecodable_error
from biohicl.data.json_stream import JsonStream
from biohicl.data.read_report import ReadReport
from biohicl.data.records import MALFORMED, MeshRecord, ReadContext
from biohicl.errors import DataError, json_error
from biohicl.mesh.hierarchy import MeshHierarchy


@guarded_reader
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
    path = check_file(path)
    ctx = ReadContext(path, "pubmedqa", mesh or MeshHierarchy.load(), strict, report)
    tests = _pubmedqa_test_ids(path, test_ids)
    with open_text(path) as handle:  # a byte-order mark is no error
        stream = JsonStream(handle)
        in_value = False  # a decoding error inside an item belongs to that item's record number
        try:
            for pmid in stream.object_keys():
                ctx.start()
                in_value = True
                item = stream.value()
                in_value = False
                if not isinstance(item, dict) or not isinstance(item.get("CONTEXTS"), list):
                    ctx.skip(MALFORMED, f"pmid {pmid[:40]!r}: not an item with a CONTEXTS list")
                    continue
                if not isinstance(item.get("MESHES") or [], list):
                    ctx.skip(MALFORMED, f"pmid {pmid[:40]!r}: MESHES is not a list of MeSH names")
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


def read_pmid_object(path: str | Path, values: str) -> dict:
    """The ``{pmid: ...}`` JSON object of a PubMedQA file (``ori_pqal.json``, ``test_ground_truth.json``); a
    :class:`DataError` naming the file (and the line and column of a JSON syntax error) when it is not one
    (``values`` says what its values are, for the message)."""
    path = check_file(path)
    try:
        with open_text(path) as handle:  # a byte-order mark is no error
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(json_error(err), path, line=err.lineno) from None
    except UnicodeDecodeError as err:
        raise undecodable_error(path, err) from None
    except RecursionError:  # ``[[[[...`` deeper than the decoder's recursion limit, as read_json words it
        raise DataError("not valid JSON (nested too deeply to read)", path) from None
    if not isinstance(data, dict):
        raise DataError(f"expected a {{pmid: {values}}} object", path)
    return data


def load_pubmedqa_test_ids(path: str | Path) -> set[str]:
    """The 500 official PubMedQA test PMIDs (keys of ``test_ground_truth.json``): :func:`read_test_pmids` as a set."""
    return set(read_test_pmids(path))


def read_test_pmids(path: str | Path) -> list[str]:
    """The official PubMedQA test PMIDs in the file's order; a file with no PMID (``{}``) is a :class:`DataError`,
    since every item it should have marked would be read as a training or dev item, by the build and the
    evaluation's PubMedQA splits alike."""
    ids = [str(k) for k in read_pmid_object(path, "label")]
    if not ids:
        raise DataError(
            "no PubMedQA test PMIDs in the file (an empty object), so no item would be marked test and PubMedQA's "
            "test items would be trained on; give PubMedQA's test_ground_truth.json",
            path,
        )
    return ids
