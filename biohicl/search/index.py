"""A searchable embedding index: a folder written by :func:`biohicl.search.indexing.build_index`, or in memory.

>>> index = load_index("index/scifact")
>>> for start, block in index.iter_blocks(65_536): ...   # rows read lazily, shard by shard
>>> index.documents([3, 17])                            # {row: {"id", "title", "mesh"}}, only those rows read
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.data.corpus import iter_lines
from biohicl.data.records import INDEXING
from biohicl.errors import ConfigError, DataError, json_error
from biohicl.search.embeddings_file import NON_FINITE, first_non_finite_row
from biohicl.search.float_rows import FloatRows, read_rows
from biohicl.search.layout import IndexManifest

DEFAULT_CHUNK_SIZE = 65_536
_PLAIN = '{"id": "'  # a sidecar line's opening as biohicl writes it (json.dumps's separators)


@dataclass
class Hit:
    """One search result: document id, cosine score, 1-based rank, row in the index, title, MeSH labels and their kind
    (``indexing`` or ``mentions``: SimL never compares the two)."""

    id: str
    score: float
    rank: int
    position: int
    title: str = ""
    mesh: tuple[str, ...] = ()
    label_kind: str = INDEXING


class Index:
    """A searchable embedding index: a folder written by :func:`biohicl.search.indexing.build_index`, or in memory.

    Rows are read lazily; document metadata (ids, titles, MeSH) only for the rows a search returns. The hits'
    MeSH labels are explained by :func:`biohicl.search.explain.explain_hits` with ``mesh=`` the hierarchy they came
    from (``biohicl search --mesh_path``).
    """

    def __init__(
        self,
        manifest: IndexManifest | None = None,
        directory: str | Path | None = None,
        *,
        embeddings: torch.Tensor | None = None,
        docs: list[dict[str, Any]] | None = None,
    ):
        """An index folder's ``manifest`` and ``directory`` (:func:`load_index`), or ``embeddings`` [n, dim] in memory
        with ``docs`` (one ``{"id", "title", "mesh"}`` per row; none: each document named by its row, as
        :meth:`from_embeddings` names rows given no ids); anything else is refused in one line."""
        folder = manifest is not None and directory is not None and embeddings is None and docs is None
        rows = None if embeddings is None else len(embeddings)
        memory = rows is not None and manifest is None and directory is None and (docs is None or len(docs) == rows)
        if not (folder or memory):
            raise ConfigError(
                "Index: give manifest= and directory= (an index folder: load_index) or embeddings= with docs= one per "
                "row or none (in memory: Index.from_embeddings)"
            )
        self.manifest = manifest
        self.directory = Path(directory) if directory is not None else None
        self._embeddings = embeddings
        self._docs = docs
        #: compressed forms opened by searches, by kind (see :func:`biohicl.search.exact.compressed_view`)
        self.compressed_views: dict[str, Any] = {}
        self._rows: FloatRows | None = None
        if manifest is not None:
            self._starts = [s.start for s in manifest.shards]

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, directory: str | Path) -> Index:
        """Open an index folder (reads ``manifest.json`` and checks every shard file is there)."""
        directory = Path(directory)
        manifest = IndexManifest.load(directory)
        for shard in manifest.shards:
            for name in (shard.file, shard.docs):
                if not (directory / name).is_file():
                    raise DataError(f"shard file {name} listed in the manifest is missing", directory)
        return cls(manifest, directory)

    @classmethod
    def from_embeddings(
        cls,
        embeddings: torch.Tensor | np.ndarray,
        ids: Sequence[str] | None = None,
        titles: Sequence[str] | None = None,
        mesh: Sequence[Sequence[str]] | None = None,
    ) -> Index:
        """An in-memory index over ``embeddings`` [n, dim] (rows are L2-normalised here for cosine); a row holding NaN
        or inf (as float32) is refused naming the first, as ``biohicl index`` and ``encode`` refuse one (a search
        ranked it first)."""
        tensor = torch.as_tensor(embeddings)
        if tensor.ndim != 2:
            raise ConfigError(f"embeddings: expected a 2-D matrix, got shape {tuple(tensor.shape)}")
        tensor = tensor.float()
        if (bad := first_non_finite_row(tensor)) is not None:
            raise DataError(f"embeddings: row {bad}: {NON_FINITE}")
        tensor = torch.nn.functional.normalize(tensor, dim=-1)
        n = tensor.shape[0]
        ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
        if len(ids) != n or (titles is not None and len(titles) != n) or (mesh is not None and len(mesh) != n):
            raise ConfigError(f"ids/titles/mesh: expected {n} entries each, one per embedding row")
        docs = [
            {"id": ids[i], "title": titles[i] if titles else "", "mesh": list(mesh[i]) if mesh else []}
            for i in range(n)
        ]
        return cls(embeddings=tensor, docs=docs)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.manifest.count if self.manifest is not None else int(self._embeddings.shape[0])

    @property
    def dim(self) -> int:
        return self.manifest.dim if self.manifest is not None else int(self._embeddings.shape[1])

    @property
    def normalized(self) -> bool:
        return self.manifest.normalized if self.manifest is not None else True

    # ------------------------------------------------------------------ reading
    def _float_rows(self) -> FloatRows:
        """The shards' rows by positioned reads (headers read once)."""
        if self._rows is None:
            self._rows = FloatRows(self.manifest, self.directory)
        return self._rows

    def iter_blocks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_row, block)`` with blocks of at most ``chunk_size`` rows, in row order."""
        if chunk_size < 1:
            raise ConfigError(f"chunk_size: must be positive, got {chunk_size}")
        if self._embeddings is not None:
            for start in range(0, self._embeddings.shape[0], chunk_size):
                yield start, self._embeddings[start : start + chunk_size]
            return
        rows = self._float_rows()
        for number, shard in enumerate(self.manifest.shards):
            layout = rows.layout(number)
            for offset in range(0, shard.count, chunk_size):
                local = np.arange(offset, min(offset + chunk_size, shard.count))
                yield shard.start + offset, _as_tensor(read_rows(layout, local))

    def embeddings(self) -> torch.Tensor:
        """All rows as one float32 tensor (for small indexes and tests)."""
        blocks = [b.float() for _, b in self.iter_blocks()]
        return torch.cat(blocks) if blocks else torch.empty(0, self.dim)

    def find(self, ids: Iterable[str]) -> dict[str, int]:
        """``{id: row}`` for the given document ids that the index holds (the first row of an id held twice; one pass
        over the docs sidecars, up to the last id found; a line as biohicl writes it is read without parsing it:
        :func:`_plain_id`)."""
        wanted = {str(i) for i in ids}
        if self._embeddings is not None and self._docs is None:  # documents named by their row
            return {
                i: int(i) for i in wanted if i.isascii() and i.isdigit() and str(int(i)) == i and int(i) < len(self)
            }
        if self._docs is not None:
            found: dict[str, int] = {}
            for row, doc in enumerate(self._docs):
                if doc["id"] in wanted:
                    found.setdefault(doc["id"], row)
            return found
        found = {}
        for shard in self.manifest.shards:
            path = self.directory / shard.docs
            for line_number, line in iter_lines(path):
                doc_id = _plain_id(line)
                if doc_id is None:
                    doc_id = str(_doc_record(line, path, line_number)["id"])
                if doc_id in wanted and doc_id not in found:
                    found[doc_id] = shard.start + line_number - 1
            if len(found) == len(wanted):
                break
        return found

    def rows(self, positions: Sequence[int]) -> torch.Tensor:
        """The embedding rows at ``positions`` as float32 ``[n, dim]`` (reads only those rows of their shards)."""
        if self._embeddings is not None:
            return self._embeddings[self._inside(positions)].float()
        return torch.from_numpy(self._float_rows().take(np.asarray(positions, dtype=np.int64).reshape(-1)))

    def _inside(self, positions: Iterable[int]) -> list[int]:
        """``positions`` as ints; one outside the index is an :class:`IndexError` naming it (never counted from the
        end), in memory as in a folder (:meth:`FloatRows.take <biohicl.search.float_rows.FloatRows.take>`)."""
        rows = [int(p) for p in positions]
        bad = next((p for p in rows if not 0 <= p < len(self)), None)
        if bad is not None:
            raise IndexError(f"row {bad} is outside the index (0..{len(self) - 1})")
        return rows

    def documents(self, positions: Iterable[int]) -> dict[int, dict[str, Any]]:
        """``{row: {"id", "title", "mesh"}}`` for the given rows (reads only the shards' sidecars needed)."""
        wanted = sorted(set(self._inside(positions)))
        if self._embeddings is not None:  # without docs, each document named by its row
            return {p: self._docs[p] if self._docs else {"id": str(p), "title": "", "mesh": []} for p in wanted}
        by_shard: dict[int, list[int]] = {}
        for position in wanted:
            by_shard.setdefault(bisect.bisect_right(self._starts, position) - 1, []).append(position)
        found: dict[int, dict[str, Any]] = {}
        for number, rows in by_shard.items():
            shard = self.manifest.shards[number]
            local = {p - shard.start + 1: p for p in rows}  # line numbers, from 1
            path = self.directory / shard.docs
            lines = 0
            for lines, line in iter_lines(path):
                if lines in local:
                    found[local.pop(lines)] = _doc_record(line, path, lines)
                    if not local:
                        break
            if local:
                raise DataError(f"has {lines} lines, the manifest lists {shard.count} documents in this shard", path)
        return found


def _plain_id(line: str) -> str | None:
    """The id of a sidecar line that opens with it as a string (``{"id": "``) and holds no backslash (no escape) and
    no second ``"id"`` (no repeated key): its text up to the next quote, the id JSON gives; None for any other line
    (parse it)."""
    if not line.startswith(_PLAIN) or "\\" in line or line.count('"id"') != 1:
        return None
    end = line.find('"', len(_PLAIN))
    return line[len(_PLAIN) : end] if end >= 0 else None


def _doc_record(line: str, path: Path, line_number: int) -> dict[str, Any]:
    """One line of a docs sidecar as its record; a :class:`DataError` naming the file and line when it is not a JSON
    object with an ``id``."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(json_error(err), path, line=line_number) from None
    if not isinstance(record, dict) or "id" not in record:
        raise DataError("not a JSON object with an `id`", path, line=line_number)
    return record


def _as_tensor(rows: np.ndarray) -> torch.Tensor:
    """Rows read from a shard as a tensor of the shard's dtype (bfloat16 from its uint16 bits)."""
    tensor = torch.from_numpy(rows)
    return tensor.view(torch.bfloat16) if rows.dtype == np.uint16 else tensor


def load_index(directory: str | Path) -> Index:
    """Open an index folder written by :func:`biohicl.search.indexing.build_index` (or ``biohicl index``)."""
    return Index.load(directory)


def as_index(index: Index | str | Path) -> Index:
    """``index`` itself, or the index folder it names opened."""
    return index if isinstance(index, Index) else load_index(index)
