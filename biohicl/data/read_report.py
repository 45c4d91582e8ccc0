"""What a build read, kept and skipped, and why: :class:`ReadReport`, which every corpus reader fills
(:class:`~biohicl.data.records.ReadContext`), a build prints and ``summary.json`` records (``read``), and the printed
lines a summary's ``read`` record gives (:func:`dropped_names_lines`, :func:`per_file_lines`)."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError, location
from biohicl.settings import data_dir

logger = logging.getLogger(__name__)

EXAMPLES_PER_REASON = 3
DROPPED_NAMES_SHOWN = 10  # the most frequent dropped labels the printed report names
PER_FILE_SHOWN = 10  # above, the printed report names only the files whose reader kept nothing


def recorded_path(path: str | Path) -> str:
    """``path`` as a dataset's summary records it: relative to the data directory (``BIOHICL_DATA_DIR``) when inside
    it, else ``<folder>/<file>`` (as evaluation records name their data files), the folder of the absolute path (a
    relative path names one file alike from any folder: ``data/x.jsonl`` typed in ``data``'s parent and ``x.jsonl``
    inside it are both ``data/x.jsonl``; a link keeps its own name): no machine path."""
    path = Path(path)
    try:
        root = data_dir(required=False)
    except ConfigError:
        root = None
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        return path.resolve().relative_to(root.resolve()).as_posix()
    path = Path(os.path.abspath(path))
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


@dataclass
class ReadReport:
    """What a reader read, kept and skipped (and why), with example locations; printed at the end of a build."""

    read: int = 0
    kept: int = 0
    labels_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    labels_dropped: Counter = field(default_factory=Counter)
    labels_ignored: Counter = field(default_factory=Counter)
    labels_noted: Counter = field(default_factory=Counter)  # kept labels worth a note (FROM_TREE_NUMBER)
    examples: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    unrecognised_files: list[str] = field(default_factory=list)  # inputs whose format was not detected
    source_files: dict[str, list[str]] = field(default_factory=dict)  # the files of ``files`` by reader source
    noted: Counter = field(default_factory=Counter)  # kept records worth a note (RETRACTED), counted when read
    dropped_names: Counter = field(default_factory=Counter)  # each dropped label as given: printed, not recorded
    per_file: dict[str, Counter] = field(default_factory=dict)  # each file of ``files``: its records read and kept
    empty_files: list[str] = field(default_factory=list)  # inputs left out as empty (files.is_blank_file)

    @property
    def mean_labels(self) -> float:
        """Mean number of MeSH descriptors per kept record."""
        return self.labels_kept / self.kept if self.kept else 0.0

    def note(
        self, reason: str, path: str | Path, record: int | None = None, detail: str = "", *, line: int | None = None
    ) -> None:
        """Remember where a problem occurred, ``FILE, record N`` or ``FILE: line N`` (the first few per reason),
        and log it."""
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            where = location(path, record, line=line)
            where += f": {detail}" if detail else ""
            examples.append(where)
            logger.warning("%s (%s)", where, reason)

    def to_dict(self) -> dict[str, Any]:
        """What ``summary.json`` records (and a dataset repo publishes): file paths relative to the data directory,
        or ``<folder>/<file>`` outside it, never a machine path (see :func:`recorded_path`)."""
        shown = {path: recorded_path(path) for path in (*self.files, *self.unrecognised_files, *self.empty_files)}
        replaced = sorted((path for path in shown if shown[path] != path), key=len, reverse=True)
        # one pass, the longest path first: x.jsonl shown as d/x.jsonl is not rewritten again inside d/ax.jsonl
        pattern = re.compile("|".join(map(re.escape, replaced))) if replaced else None

        def where(text: str) -> str:  # an example names its file, and a duplicate the file of the first copy too
            return pattern.sub(lambda match: shown[match.group()], text) if pattern is not None else text

        per_file: dict[str, dict[str, int]] = {}
        for path, counts in self.per_file.items():  # two paths recorded alike (a/x.xml, b/a/x.xml) add up
            total = per_file.setdefault(shown[path], {"read": 0, "kept": 0})
            total["read"] += counts["read"]
            total["kept"] += counts["kept"]
        return {
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "labels_dropped": dict(self.labels_dropped),
            "labels_ignored": dict(self.labels_ignored),
            "labels_noted": dict(self.labels_noted),
            "noted": dict(self.noted),
            "mean_labels_per_document": round(self.mean_labels, 3),
            "examples": {reason: [where(text) for text in texts] for reason, texts in self.examples.items()},
            "files": [shown[path] for path in self.files],
            "unrecognised_files": [shown[path] for path in self.unrecognised_files],
            # which files each source read: the dataset card names a corpus by its files (BioCreative V CDR)
            "source_files": {source: [shown[path] for path in paths] for source, paths in self.source_files.items()},
            "per_file": per_file,
            "empty_files": [shown[path] for path in self.empty_files],
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
            ("labels kept, noted", self.labels_noted),
            ("kept, noted", self.noted),
        ):
            for reason, count in counter.most_common():
                lines.append(f"  {title}: {reason}: {count:,}")
                lines.extend(f"      e.g. {where}" for where in self.examples.get(reason, ()))
        lines += dropped_names_lines(self.dropped_names)
        if self.unrecognised_files:
            lines.append(f"  files not read (format not recognised): {', '.join(self.unrecognised_files)}")
        # the full paths, as the lines above (summary.json records them relative: to_dict)
        lines += per_file_lines({"per_file": self.per_file, "empty_files": self.empty_files}, "ReadReport.per_file")
        return "\n".join(lines)

    __str__ = summary


def dropped_names_lines(counts: dict[str, int], shown: int = DROPPED_NAMES_SHOWN) -> list[str]:
    """The printed tally of dropped MeSH labels by name (``counts``: label → count), the ``shown`` most frequent
    first (ties in reading order); no line when nothing was dropped."""
    if not counts:
        return []
    top = Counter(counts).most_common(shown)
    head = f"the {len(top)} most frequent of {len(counts):,} names" if len(counts) > len(top) else "all"
    return [f"  labels dropped by name ({head}):", *(f"      {name!r}: {count:,}" for name, count in top)]


def per_file_lines(read: dict[str, Any], listed: str = "summary.json read.per_file") -> list[str]:
    """The printed lines of a ``summary.json`` ``read`` record (:meth:`ReadReport.to_dict`) on its files, when there
    are several: one per file read (``file F: read N; kept by the reader M``: before ``--exclude_test``,
    ``exclude_pmids=`` and decontamination) up to :data:`PER_FILE_SHOWN` files; above, only the files whose reader
    kept nothing, all of them, and the count of the others, which ``listed`` holds; then the empty files left out.
    None for a summary from before ``per_file`` and ``empty_files``."""
    per_file = read.get("per_file") or {}
    lines = []
    if len(per_file) > 1:
        shown = {p: n for p, n in per_file.items() if len(per_file) <= PER_FILE_SHOWN or not n["kept"]}
        lines = [f"  file {path}: read {n['read']:,}; kept by the reader {n['kept']:,}" for path, n in shown.items()]
        rest = len(per_file) - len(shown)
        if rest and shown:
            lines.append(f"  ... and {rest:,} more file{'s' if rest > 1 else ''}: {listed}")
        elif rest:
            lines.append(f"  {rest:,} files, each with a record kept by the reader: {listed}")
    if read.get("empty_files"):
        lines.append(f"  files not read (empty): {', '.join(read['empty_files'])}")
    return lines
