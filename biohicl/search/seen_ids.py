"""The document ids a corpus stream has shown so far, in 8 bytes per id (a Python set of them takes ~91).

>>> seen = SeenIds(reread=lambda: iter(documents))     # documents: a list of Document
>>> seen.check(documents[:2]), seen.check(documents[2:3])  # None, or (the repeat, its first occurrence)

Each id is kept as its 64-bit blake2b digest in sorted numpy ``uint64`` levels, LSM-style: a shard's digests
become a new level, and the newest two merge while the newer is at least as large, so ``N`` ids cost
``O(N log N)`` time and 8 bytes each (16 while the largest two levels merge). A shard's digests are looked up in
every level with ``np.searchsorted``. Two different ids can share a digest (about once in 50,000 corpora of 25
million ids), so a digest found is never reported as such: the earlier documents are read again (``reread``) and
the ids themselves compared. A corpus that cannot be read twice (a one-shot iterator) keeps the ids themselves, each
with its record and the number of its file in :attr:`SeenIds.places` (one int per id: a stream chaining files names
a repeat's first copy by its own file, not the repeat's).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from biohicl.data.corpus import Document

#: Low bits of a one-shot stream's id code that hold the number of its file (:attr:`SeenIds.places`); the record above
PLACE_BITS = 32


def id_digest(doc_id: str) -> bytes:
    """The 8-byte blake2b digest of a document id."""
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()


def id_digests(ids: Iterable[str]) -> np.ndarray:
    """``uint64 [n]``: :func:`id_digest` of each id."""
    return np.frombuffer(b"".join(id_digest(doc_id) for doc_id in ids), dtype=np.uint64)


class SeenIds:
    """The ids of every document given to :meth:`check` so far; ``reread`` streams those documents again, in the
    same order (None: the ids themselves are kept)."""

    def __init__(self, reread: Callable[[], Iterable[Document]] | None = None):
        self.reread = reread
        self.levels: list[np.ndarray] = []
        self.exact: dict[str, int] | None = None if reread is not None else {}  # id -> its record and place
        self.places: list[tuple[str | None, bool]] = []  # a one-shot stream's files: (source, record is a line)
        self._place_numbers: dict[tuple[str | None, bool], int] = {}
        self.count = 0

    @property
    def nbytes(self) -> int:
        """Bytes the digests take (0 when the ids themselves are kept)."""
        return sum(level.nbytes for level in self.levels)

    def check(self, docs: Sequence[Document]) -> tuple[Document, Document] | None:
        """The first document of ``docs`` (the next ones of the stream) whose id an earlier document has, and that
        earlier document; None when every id is new (then they are all added)."""
        firsts: dict[str, Document] = {}
        repeat: int | None = None
        for position, doc in enumerate(docs):
            if doc.id in firsts:
                repeat = position if repeat is None else repeat
            else:
                firsts[doc.id] = doc
        earlier = self._earlier([doc.id for doc in docs])
        for position, doc in enumerate(docs):
            if doc.id in earlier:
                if repeat is None or position < repeat:
                    return doc, earlier[doc.id]
                break
        if repeat is not None:
            doc = docs[repeat]
            return doc, earlier.get(doc.id, firsts[doc.id])
        self._add(docs)
        return None

    def _earlier(self, ids: list[str]) -> dict[str, Document]:
        """The first earlier document of each of ``ids`` that one has (confirmed on the ids themselves)."""
        if self.exact is not None:
            suspects = {doc_id for doc_id in ids if doc_id in self.exact}
        else:
            digests = id_digests(ids)
            hit = np.zeros(len(ids), dtype=bool)
            for level in self.levels:
                places = np.minimum(np.searchsorted(level, digests), len(level) - 1)
                hit |= level[places] == digests
            suspects = {ids[i] for i in np.flatnonzero(hit)}
        if not suspects:
            return {}
        found: dict[str, Document] = {}
        source = self.reread() if self.reread is not None else ()
        for doc in itertools.islice(source, self.count):
            if doc.id in suspects and doc.id not in found:
                found[doc.id] = doc
                if len(found) == len(suspects):
                    break
        if self.exact is not None:  # a one-shot stream: the record and file kept with the id
            return {doc_id: self._kept(doc_id, self.exact[doc_id]) for doc_id in suspects}
        return found

    def _code(self, doc: Document) -> int:
        """``doc``'s record (+1; 0: none) above :data:`PLACE_BITS`, the number of its file in :attr:`places` below."""
        place = (doc.source, doc.line)
        number = self._place_numbers.setdefault(place, len(self.places))
        if number == len(self.places):
            self.places.append(place)
        return ((0 if doc.record is None else doc.record + 1) << PLACE_BITS) | number

    def _kept(self, doc_id: str, code: int) -> Document:
        """The first document of ``doc_id``, from its :meth:`_code`: no text, its file and record."""
        source, line = self.places[code & ((1 << PLACE_BITS) - 1)]
        record = (code >> PLACE_BITS) - 1
        return Document(doc_id, "", source=source, record=None if record == -1 else record, line=line)

    def _add(self, docs: Sequence[Document]) -> None:
        self.count += len(docs)
        if self.exact is not None:
            self.exact.update((doc.id, self._code(doc)) for doc in docs)
            return
        level = id_digests(doc.id for doc in docs).copy()  # frombuffer's array is read-only
        level.sort()
        self.levels.append(level)
        while len(self.levels) > 1 and len(self.levels[-2]) <= len(self.levels[-1]):
            newer, older = self.levels.pop(), self.levels.pop()
            merged = np.concatenate([older, newer])
            del older, newer
            merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
            self.levels.append(merged)
