"""What the corpus readers produce: :class:`MeshRecord` (one MeSH-indexed abstract), the label kinds, the reasons a
record is skipped or a label dropped, and :class:`ReadContext` (per-file bookkeeping every reader shares: counting
into a :class:`~biohicl.data.read_report.ReadReport`, strict mode, MeSH label resolution).

Two kinds of MeSH label (:data:`LABEL_KINDS`): **indexing**, the descriptors NLM indexers assign to the whole
article, check tags such as Humans included (BioASQ, MEDLINE XML and text, PubMedQA, JSON lines unless a line
says otherwise), and **mentions**, the MeSH ids of the chemicals and diseases named in the text (PubTator/BC5CDR).
SimL between the two kinds measures the source rather than the content, so a dataset keeps them apart.

Bad input policy (the same for every reader; nothing is dropped silently):

* a **malformed record** (broken JSON/XML/PubTator block, missing PMID) or an **empty abstract**: the record is
  skipped and counted in the :class:`ReadReport`, with file and record number (``FILE, record N``; a JSON lines
  file's line: ``FILE: line N``);
* a MeSH **name or descriptor id that does not resolve** in the loaded MeSH release (typically a descriptor
  renamed or retired between releases): the label is dropped from the record and counted; a record left
  without any label is skipped and counted;
* supplementary concept ids (``C`` and 6 to 9 digits, PubTator chemicals) and un-normalised mentions (``-1``)
  are *not* descriptors and *not* errors: they are ignored and counted as such; a record with no descriptor at all
  (a citation NLM has not indexed yet, a PubTator abstract with SCR ids only) is skipped and counted, never
  an error;
* with ``strict=True`` the first malformed record, empty abstract or unresolvable label raises
  :class:`~biohicl.errors.DataError` naming the file and record number (or line) instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.data.read_report import ReadReport
from biohicl.errors import DataError, location
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_forms import MESH_PREFIX, descriptor_id

INDEXING, MENTIONS = "indexing", "mentions"
LABEL_KINDS: dict[str, str] = {
    "bioasq": INDEXING,
    "jsonl": INDEXING,  # a line may say "label_kind": "mentions" (biohicl.data.jsonl)
    "medline": INDEXING,
    "medline-text": INDEXING,
    "pubmedqa": INDEXING,
    "pubtator": MENTIONS,
}

# Reasons a record is skipped or a label dropped (the keys of ReadReport's counters).
MALFORMED = "malformed record"
EMPTY_ABSTRACT = "empty abstract"
NO_LABELS = "no MeSH label left"
NOT_INDEXED = "no MeSH descriptor in the record"
DUPLICATE = "duplicate pmid"
REVISED = "revised by a later update file"  # an older NLM distribution file's copy of a PMID
DELETED = "deleted by an update file"  # a PMID in a later NLM file's <DeleteCitation>
BOOK = "book record (no MeSH)"  # a <PubmedBookArticle> (NCBI Bookshelf): no MedlineCitation, no MeSH
RETRACTED = "retracted publication (kept)"  # PublicationType "Retracted Publication": kept, counted in ``noted``
UNRESOLVED_NAME = "MeSH name not in this MeSH release"
UNKNOWN_ID = "descriptor id not in this MeSH release"
UNKNOWN_TREE = "tree number not in this MeSH release"
#: a label given as a tree number, kept as the descriptor the loaded release gives it: counted in ``labels_noted``, as
#: tree numbers move between releases (C16.320.798 is Polycystic Kidney Diseases in MeSH 2017, another one in 2024)
FROM_TREE_NUMBER = "resolved from a tree number (release-specific)"
SCR_ID = "supplementary concept id (not a descriptor)"
UNNORMALISED = "mention without MeSH id (-1)"
SCR_PATTERN = re.compile(r"^C\d{6,9}$")  # a MeSH supplementary concept record id, e.g. C012345
#: a control character, refused in a document id: a newline would forge a log line, a NUL or escape garble one
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


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
    record_number: int = field(default=0, compare=False, repr=False)  # its record number there (0: not known)
    record_line: bool = field(default=False, compare=False, repr=False)  # ``record_number`` is a text file's line
    #: the labels its reader dropped (reason, label), ignored and noted (reason): taken back out of the report's counts
    #: when a later copy of the record is dropped (:func:`~biohicl.data.sources.unique_records`)
    dropped_labels: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    ignored_labels: tuple[str, ...] = field(default=(), compare=False, repr=False)
    noted_labels: tuple[str, ...] = field(default=(), compare=False, repr=False)  # reasons, as ``ignored_labels``

    def __post_init__(self) -> None:
        if not self.label_kind:
            self.label_kind = label_kind_of(self.source)

    @property
    def at(self) -> dict[str, int | None]:
        """Where in its file it was read, as :class:`~biohicl.errors.DataError` takes it: ``record`` or ``line``."""
        return {"line" if self.record_line else "record": self.record_number or None}

    def where(self) -> str:
        """``FILE: line N`` / ``FILE, record N`` / ``FILE`` (its source's name when it was not read from a file)."""
        return location(self.origin or self.source, **self.at)


def label_kind_of(source: str) -> str:
    """The label kind a source's MeSH ids are (:data:`LABEL_KINDS`)."""
    return LABEL_KINDS.get(source, INDEXING)


class ReadContext:
    """Per-file bookkeeping shared by the readers: counting, strict mode, label resolution; ``lines``: its record
    numbers are the lines of a text file (the jsonl reader's), named ``FILE: line N``."""

    def __init__(
        self, path: Path, source: str, mesh: MeshHierarchy, strict: bool, report: ReadReport | None, lines: bool = False
    ):
        self.path, self.source, self.mesh, self.strict, self.lines = path, source, mesh, strict, lines
        self.report = report if report is not None else ReadReport()
        self.report.files.append(str(path))
        self.report.source_files.setdefault(source, []).append(str(path))
        self.counts = self.report.per_file.setdefault(str(path), Counter(read=0, kept=0))
        self.record = 0
        self.dropped = 0  # labels of the current record that did not resolve
        self.dropped_labels: list[tuple[str, str]] = []  # the current record's: (reason, label)
        self.ignored_labels: list[str] = []  # the current record's: reason
        self.noted_labels: list[str] = []  # the current record's: reason

    def start(self) -> None:
        """Begin the next record."""
        self.record += 1
        self.dropped = 0
        self.dropped_labels, self.ignored_labels, self.noted_labels = [], [], []

    def drop_label(self, reason: str, label: str) -> None:
        """Count a label of the current record that did not resolve (an error when strict)."""
        self.report.labels_dropped[reason] += 1
        self.report.dropped_names[label] += 1
        self.dropped += 1
        self.dropped_labels.append((reason, label))
        self.problem(reason, repr(label))

    def ignore_label(self, reason: str, count: int = 1) -> None:
        """Count ``count`` labels of the current record that are not descriptors and not errors (SCR ids)."""
        if count > 0:
            self.report.labels_ignored[reason] += count
            self.ignored_labels += [reason] * count

    def note_label(self, reason: str, detail: str) -> None:
        """Count a kept label of the current record worth a note (never an error, strict or not)."""
        self.report.labels_noted[reason] += 1
        self.noted_labels.append(reason)
        self.report.note(reason, self.path, detail=detail, **self.at())

    def at(self, record: int | None = None) -> dict[str, int]:
        """``record`` (default: the current one) as :class:`DataError` and :meth:`ReadReport.note` take it."""
        return {"line" if self.lines else "record": self.record if record is None else record}

    def problem(self, reason: str, detail: str = "", record: int | None = None) -> None:
        if self.strict:
            raise DataError(f"{reason}: {detail}" if detail else reason, self.path, **self.at(record))
        self.report.note(reason, self.path, detail=detail, **self.at(record))

    def skip(self, reason: str, detail: str = "", record: int | None = None, error: bool = True) -> None:
        """Count a skipped record; ``error=False`` for expected cases (a record nobody indexed with MeSH)."""
        self.report.read += 1
        self.counts["read"] += 1
        self.report.skipped[reason] += 1
        if error:
            self.problem(reason, detail, record)
        else:
            self.report.note(reason, self.path, detail=detail, **self.at(record))

    def resolve_names(self, names: Iterable[str]) -> list[str]:
        """Descriptor UIs of MeSH names; unresolvable names are dropped, counted in ``self.dropped``."""
        uis = []
        for name in names:
            ui = self.mesh.try_resolve(name) if isinstance(name, str) else None
            if ui is None:
                self.drop_label(UNRESOLVED_NAME, str(name))
            else:
                uis.append(ui)
        return uis

    def resolve_ids(self, ids: Iterable[str]) -> list[str]:
        """Descriptor UIs from ids (a ``MESH:`` prefix in any case and a qualifier UI after a descriptor's,
        ``D012694Q000378``, stripped); SCR ids (``C`` + 6-9 digits) and ``-1`` are ignored, any other unknown id (an
        ICD-10 code such as ``C50.8`` too) is dropped (``self.dropped``), an error when strict."""
        uis = []
        for raw in ids:
            if (ui := descriptor_id(self.mesh, raw.strip())) is not None:
                uis.append(ui)
            elif (bare := MESH_PREFIX.sub("", raw.strip())) in {"-1", ""}:
                self.ignore_label(UNNORMALISED)
            elif SCR_PATTERN.match(bare):
                self.ignore_label(SCR_ID)
            else:
                self.drop_label(UNKNOWN_ID, raw)
        return uis

    def resolve_tree_numbers(self, numbers: Iterable[str]) -> list[str]:
        """Descriptor UIs of tree numbers (each tree number is one descriptor's in the loaded release), each counted
        as :data:`FROM_TREE_NUMBER`; an unknown one is dropped."""
        uis = []
        for raw in numbers:
            ui = self.mesh.tree_descriptor(raw.strip())
            if ui is None:
                self.drop_label(UNKNOWN_TREE, raw)
            else:
                uis.append(ui)
                named = f"{raw.strip()!r} read as {ui} {self.mesh.names[ui]!r} (MeSH {self.mesh.version})"
                self.note_label(FROM_TREE_NUMBER, named)  # the release's year only: no machine path in summary.json
        return uis

    def emit(self, pmid: str, title: str, abstract: str, uis: Sequence[str], **extra: Any) -> MeshRecord | None:
        """Build the record, or skip it (an id with a control character, empty abstract, no label) and return
        ``None``; the skip names the id quoted (``pmid 'doc 7'``), so an id with spaces or an empty one reads
        unambiguously."""
        shown = f"pmid {str(pmid)[:40]!r}"
        if CONTROL_CHARACTER.search(str(pmid)):  # every reader's: a newline would forge a log line
            self.skip(MALFORMED, f"document id with a control character: {str(pmid)!r:.40}")
            return None
        if not abstract.strip():
            self.skip(EMPTY_ABSTRACT, shown)
            return None
        mesh = tuple(dict.fromkeys(uis))
        if not mesh:
            self.skip(NO_LABELS if self.dropped else NOT_INDEXED, shown, error=False)
            return None
        self.report.read += 1
        self.report.kept += 1
        self.counts["read"] += 1
        self.counts["kept"] += 1
        self.report.labels_kept += len(mesh)
        if "major" in extra:
            extra["major"] = tuple(ui for ui in dict.fromkeys(extra["major"]) if ui in mesh)
        dropped, ignored, noted = tuple(self.dropped_labels), tuple(self.ignored_labels), tuple(self.noted_labels)
        return MeshRecord(
            str(pmid),
            title.strip(),
            abstract.strip(),
            mesh,
            self.source,
            origin=str(self.path),
            record_number=self.record,
            record_line=self.lines,
            dropped_labels=dropped,
            ignored_labels=ignored,
            noted_labels=noted,
            **extra,
        )
