"""Decontamination: keep every document of an evaluation set the project knows out of the training data.

Known evaluation sets (found in ``BIOHICL_DATA_DIR``, plus any BEIR folder the user names):

* **PubMedQA test** (``pubmedqa/test_ground_truth.json``): by PMID, and by normalised abstract (the item's
  ``CONTEXTS`` joined, as the PubMedQA reader makes the abstract, with and without its ``LONG_ANSWER`` after them;
  from the ``ori_pqal.json`` beside the test-id file, else ``pubmedqa/ori_pqal.json``). PubMedQA's own records keep
  ``split="test"`` (as before; ``--exclude_test`` drops them); a copy of one from another corpus is removed.
* **SciFact** (``scifact/corpus.jsonl``) and every named **BEIR** folder (``corpus.jsonl[.gz]``): by normalised
  title (at least :data:`MIN_TITLE_CHARS` characters, so "Editorial" matches nothing) or normalised abstract.
* **BIOSSES** (``biosses/biosses.tsv``): a sentence (normalised) found inside a document's title + abstract.
* **NFCorpus, TREC-COVID, SciDocs** (:data:`UNCHECKED_RETRIEVAL_TASKS`), evaluated too: checked like a BEIR folder
  when ``<name>/corpus.jsonl`` is under the data dir or a ``--beir`` folder has that name; else ``missing``.

Normalised: Unicode NFKC, lower case, every run of non-alphanumeric characters one space. Each removal is
recorded with the evaluation set, the reason and what matched, for the build report and the dataset card.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.data.corpus import iter_lines
from biohicl.data.files import check_file
from biohicl.data.records import MeshRecord
from biohicl.errors import DataError

logger = logging.getLogger(__name__)

MIN_TITLE_CHARS = 20
MIN_TEXT_CHARS = 50
SHINGLE = 6  # words: BIOSSES sentences are looked up by their first six words, then checked in full
_NON_ALNUM = re.compile(r"[\W_]+")


#: The retrieval tasks biohicl evaluates (``biohicl.evaluation.tasks``) besides SciFact: their corpora are not in
#: ``BIOHICL_DATA_DIR`` (only qrels and topics), so they are checked only when a BEIR folder of theirs is given.
UNCHECKED_RETRIEVAL_TASKS = ("nfcorpus", "trec-covid", "scidocs")
HOW_TO_ADD = "to include one, give its BEIR folder (corpus.jsonl) with --beir or put it at BIOHICL_DATA_DIR/<name>"


def normalise(text: str) -> str:
    """NFKC, lower case, runs of non-alphanumerics → one space, stripped."""
    return _NON_ALNUM.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass
class Removal:
    """One document left out of the dataset, and why."""

    pmid: str
    source: str
    evaluation_set: str
    reason: str
    match: str

    def __str__(self) -> str:
        return f"pmid {self.pmid!r} ({self.source}): {self.evaluation_set}: {self.reason}: {self.match}"


@dataclass
class Decontaminator:
    """The evaluation sets to check against, indexed for lookup; :meth:`check` a record, :meth:`to_dict` the log."""

    pubmedqa_test: set[str] = field(default_factory=set)
    titles: dict[str, str] = field(default_factory=dict)  # normalised title → "set: doc id"
    texts: dict[str, str] = field(default_factory=dict)  # normalised text → "set: doc id"
    sentences: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # first words → [(sentence, label)]
    sets: dict[str, int] = field(default_factory=dict)  # evaluation set → items indexed
    missing: list[str] = field(default_factory=list)  # known sets not found (not checked)
    removed: list[Removal] = field(default_factory=list)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_data_dir(
        cls,
        root: str | Path | None = None,
        *,
        beir: Sequence[str | Path] = (),
        test_ids: str | Path | None = None,
        test_pmids: Collection[str] | None = None,
    ) -> Decontaminator:
        """The known evaluation sets under ``root`` (default ``BIOHICL_DATA_DIR``; sets it lacks are listed in
        ``missing``) and the BEIR folders in ``beir`` (each must hold ``corpus.jsonl``). ``test_ids`` names the
        PubMedQA test-id file instead of ``root``'s (a :class:`DataError` when it does not exist or has no PMID);
        ``test_pmids``: the PMIDs of ``test_ids`` when already read (a build reads the file once)."""
        from biohicl.data.pubmedqa import load_pubmedqa_test_ids
        from biohicl.settings import data_dir

        found = Path(root) if root is not None else data_dir(required=False)
        self = cls()
        test_file = Path(test_ids) if test_ids is not None else (found / "pubmedqa" / "test_ground_truth.json"
                                                                 if found else None)  # fmt: skip
        if test_ids is not None or (test_file is not None and test_file.is_file()):  # an explicit file must exist
            self.pubmedqa_test = (
                set(test_pmids)
                if test_ids is not None and test_pmids is not None
                else load_pubmedqa_test_ids(test_file)
            )
            self.sets["pubmedqa-test"] = len(self.pubmedqa_test)
            items = [test_file.parent / "ori_pqal.json"] + ([found / "pubmedqa" / "ori_pqal.json"] if found else [])
            items_file = next((f for f in items if f.is_file()), None)
            if items_file is not None:
                self.add_pubmedqa_test_texts(items_file)
            else:
                logger.info("decontamination: no ori_pqal.json: PubMedQA test items checked by PMID only")
        else:
            self.missing.append("pubmedqa-test")
        scifact = found / "scifact" if found else None
        if scifact is not None and _corpus_file(scifact) is not None:
            self.add_beir(scifact, name="scifact")
        else:
            self.missing.append("scifact")
        biosses = found / "biosses" / "biosses.tsv" if found else None
        if biosses is not None and biosses.is_file():
            self.add_biosses(biosses)
        else:
            self.missing.append("biosses")
        for folder in beir:
            self.add_beir(folder)
        for name in UNCHECKED_RETRIEVAL_TASKS:  # evaluated too, but BIOHICL_DATA_DIR has only their qrels
            folder = found / name if found else None
            if name in self.sets:  # given with ``beir``
                continue
            if folder is not None and _corpus_file(folder) is not None:
                self.add_beir(folder, name=name)
            else:
                self.missing.append(name)
        if self.missing:
            logger.warning("decontamination: no corpus here, not checked: %s (%s)", ", ".join(self.missing), HOW_TO_ADD)
        return self

    def add_beir(self, folder: str | Path, name: str | None = None) -> None:
        """Index a BEIR folder's ``corpus.jsonl[.gz]`` documents by normalised title and text."""
        folder = Path(folder)
        corpus = _corpus_file(folder)
        if corpus is None:
            raise DataError("not a BEIR folder with a corpus (no corpus.jsonl or corpus.jsonl.gz)", folder)
        name = name or folder.name
        count = 0
        for number, line in iter_lines(corpus):  # a bad byte or corrupt gzip: a DataError naming the line
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                doc_id, title, text = str(doc["_id"]), str(doc.get("title") or ""), str(doc.get("text") or "")
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(
                    "malformed BEIR corpus line (expected {_id, title, text})", corpus, line=number
                ) from None
            count += 1
            label = f"{name} doc {doc_id}"
            if len(key := normalise(title)) >= MIN_TITLE_CHARS:
                self.titles.setdefault(key, label)
            if len(key := normalise(text)) >= MIN_TEXT_CHARS:
                self.texts.setdefault(key, label)
        self.sets[name] = self.sets.get(name, 0) + count

    def add_pubmedqa_test_texts(self, path: str | Path) -> None:
        """Index the abstracts of the :attr:`pubmedqa_test` items of PubMedQA ``ori_pqal.json`` by normalised text:
        the joined ``CONTEXTS`` (as the PubMedQA reader makes the abstract), and the same followed by
        ``LONG_ANSWER`` (the whole abstract, as another corpus holds it)."""
        from biohicl.data.pubmedqa import read_pmid_object

        path = check_file(path)
        data = read_pmid_object(path, "item")
        for pmid in sorted(self.pubmedqa_test & set(data), key=lambda p: (len(p), p)):
            item = data[pmid]
            if not isinstance(item, dict) or not isinstance(item.get("CONTEXTS"), list):
                continue
            contexts = " ".join(str(c).strip() for c in item["CONTEXTS"])
            for text in (contexts, f"{contexts} {item.get('LONG_ANSWER') or ''}"):
                if len(key := normalise(text)) >= MIN_TEXT_CHARS:
                    self.texts.setdefault(key, f"pubmedqa-test doc {pmid}")

    def add_biosses(self, path: str | Path) -> None:
        """Index the BIOSSES sentences (``biosses.tsv``: ``id``, ``sentence1``, ``sentence2``, ...)."""
        path = Path(path)
        count = 0
        for row in csv.DictReader((line for _, line in iter_lines(path)), delimiter="\t"):
            for column in ("sentence1", "sentence2"):
                sentence = normalise(row.get(column) or "")
                if not sentence:
                    continue
                count += 1
                key = " ".join(sentence.split()[:SHINGLE])
                self.sentences.setdefault(key, []).append((sentence, f"biosses pair {row.get('id')} {column}"))
        self.sets["biosses"] = count

    # ------------------------------------------------------------------ checking
    def check(self, record: MeshRecord) -> Removal | None:
        """Why ``record`` must not be in the dataset (recorded in :attr:`removed`), or ``None``."""
        removal = self._why(record)
        if removal is not None:
            self.removed.append(removal)
        return removal

    def _why(self, record: MeshRecord) -> Removal | None:
        if record.pmid in self.pubmedqa_test and record.split != "test":  # e.g. a PubMedQA item not marked test
            return Removal(record.pmid, record.source, "pubmedqa-test", "PMID of a PubMedQA test item", record.pmid)
        title, abstract = normalise(record.title), normalise(record.abstract)
        if len(title) >= MIN_TITLE_CHARS and title in self.titles:
            return Removal(record.pmid, record.source, self._set(self.titles[title]), "same title", record.title)
        if abstract in self.texts:
            label = self.texts[abstract]
            return Removal(record.pmid, record.source, self._set(label), "same abstract", label)
        if self.sentences:
            words = f"{title} {abstract}".split()
            text = " ".join(words)
            for i in range(len(words)):
                for sentence, label in self.sentences.get(" ".join(words[i : i + SHINGLE]), ()):
                    if sentence in text:
                        return Removal(record.pmid, record.source, "biosses", "contains a BIOSSES sentence", label)
        return None

    @staticmethod
    def _set(label: str) -> str:
        return label.split(" doc ", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """What was checked and removed: ``sets`` (items per evaluation set), ``missing``, ``removed`` (count),
        ``by_set``, ``documents`` (each removal)."""
        return {
            "sets": dict(self.sets),
            "missing": list(self.missing),
            "removed": len(self.removed),
            "by_set": dict(Counter(r.evaluation_set for r in self.removed)),
            "documents": [vars(r).copy() for r in self.removed],
        }


def _corpus_file(folder: Path) -> Path | None:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None
