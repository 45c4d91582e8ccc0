"""A searchable embedding index: a folder written by :func:`biohicl.search.indexing.build_index`, or in memory.

>>> index = load_index("index/scifact")
>>> for start, block in index.iter_blocks(65_536): ...   # rows read lazily, shard by shard
>>> index.documents([3, 17])                            # {row: {"id", "title", "mesh"}}, only those rows read
"""

from __future__ import annotations

import bisect
import codecs
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
from biohicl.search.float_rows import FloatRows, read_rows
from biohicl.search.layout import IndexManifest

DEFAULT_CHUNK_SIZE = 65_536
#: a docs sidecar's reader keeps the byte offset of every LINE_STRIDE-th line (8 bytes per 64 documents)
LINE_STRIDE = 64
SCAN_BYTES = 1 << 20
_PLAIN = '{"id": "'  # a sidecar line's opening as biohicl writes it (json.dumps's separators)
_PLAIN_OPENING = _PLAIN.encode()
_QUOTED_ID = int.from_bytes(b'"id"', "little")


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
        self.manifest = manifest
        self.directory = Path(directory) if directory is not None else None
        self._embeddings = embeddings
        self._docs = docs
        #: compressed forms opened by searches, by kind (see :func:`biohicl.search.exact.compressed_view`)
        self.compressed_views: dict[str, Any] = {}
        self._rows: FloatRows | None = None
        self._sidecars: dict[str, SidecarLines] = {}
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
        """An in-memory index over ``embeddings`` [n, dim] (rows are L2-normalised here for cosine)."""
        tensor = torch.as_tensor(embeddings)
        if tensor.ndim != 2:
            raise ConfigError(f"embeddings: expected a 2-D matrix, got shape {tuple(tensor.shape)}")
        tensor = torch.nn.functional.normalize(tensor.float(), dim=-1)
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
        over the docs sidecars, up to the last id found): see :func:`_candidate_lines`."""
        wanted = {str(i) for i in ids}
        if self._docs is not None:
            return {d["id"]: row for row, d in enumerate(self._docs) if d["id"] in wanted}
        found: dict[str, int] = {}
        for shard in self.manifest.shards:
            path = self.directory / shard.docs
            for line_number, line in _candidate_lines(path, wanted):
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
            return self._embeddings[list(positions)].float()
        return torch.from_numpy(self._float_rows().take(np.asarray(positions, dtype=np.int64).reshape(-1)))

    def documents(self, positions: Iterable[int]) -> dict[int, dict[str, Any]]:
        """``{row: {"id", "title", "mesh"}}`` for the given rows (reads only the shards' sidecars needed)."""
        wanted = sorted(set(int(p) for p in positions))
        if self._docs is not None:
            return {p: self._docs[p] for p in wanted}
        by_shard: dict[int, list[int]] = {}
        for position in wanted:
            if not 0 <= position < len(self):
                raise IndexError(f"row {position} is outside the index (0..{len(self) - 1})")
            by_shard.setdefault(bisect.bisect_right(self._starts, position) - 1, []).append(position)
        found: dict[int, dict[str, Any]] = {}
        for number, rows in by_shard.items():
            shard = self.manifest.shards[number]
            local = {p - shard.start + 1: p for p in rows}  # line numbers, from 1
            path = self.directory / shard.docs
            lines = self._sidecar_lines(path, shard.count)
            for line_number, line in lines.read(sorted(local)):
                found[local[line_number]] = _doc_record(line, path, line_number)
        return found

    def _sidecar_lines(self, path: Path, count: int) -> SidecarLines:
        """The line reader of the sidecar at ``path`` (``count``: its documents, per the manifest), kept between
        calls while the file is unchanged, so a later call seeks to its lines rather than reading from the first."""
        key = str(path)
        lines = self._sidecars.get(key)
        if lines is None or not lines.current():
            lines = self._sidecars[key] = SidecarLines(path, count)
        return lines


class SidecarLines:
    """Chosen lines of a docs sidecar by positioned reads: the byte offset of every :data:`LINE_STRIDE`-th line is
    learnt by scanning the file as far as a read needed (newlines counted a :data:`SCAN_BYTES` block at a time, no
    line decoded), so a read seeks to the nearest such line and reads fewer than :data:`LINE_STRIDE` lines on
    (``.gz`` sidecars: read from the first line). Lines as :func:`~biohicl.data.corpus.iter_lines` gives them."""

    def __init__(self, path: Path, count: int):
        self.path, self.count = path, count
        self.stamp = _stamp(path)
        self.starts = [0]  # byte offsets of lines 1, 1 + LINE_STRIDE, 1 + 2 * LINE_STRIDE, ...
        self.scanned = self.newlines = 0  # bytes scanned, and the newlines among them
        self.total: int | None = None  # the file's line count, once scanned to its end
        self.ends_line = True  # whether the bytes scanned end with a newline

    def current(self) -> bool:
        """Whether the file is the one whose lines were learnt (same inode, size and modification time)."""
        return _stamp(self.path) == self.stamp

    def read(self, line_numbers: Sequence[int]) -> Iterator[tuple[int, str]]:
        """``(line number, text)`` of the given sorted line numbers (from 1); a :class:`DataError` when the file has
        fewer lines than the manifest's documents."""
        if self.path.suffix.lower() == ".gz":
            yield from self._read_scanning(line_numbers)
            return
        with open(self.path, "rb") as handle:
            at = None  # the line number the handle is at
            for number in line_numbers:
                checkpoint = (number - 1) // LINE_STRIDE
                if self._learn(handle, checkpoint):
                    at = None  # the scan moved the handle
                if checkpoint >= len(self.starts):
                    self._short()
                first = checkpoint * LINE_STRIDE + 1
                if at is None or not first <= at <= number:
                    handle.seek(self.starts[checkpoint])
                    at = first
                for _ in range(number - at):
                    handle.readline()
                raw, at = handle.readline(), number + 1
                if not raw:
                    self._short()
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                yield number, _decode(raw, self.path, number)

    def _learn(self, handle: Any, checkpoint: int) -> bool:
        """Scan on until the offset of line ``checkpoint * LINE_STRIDE + 1`` is known or the file ends; whether the
        handle was moved."""
        moved = False
        while checkpoint >= len(self.starts) and self.total is None:
            handle.seek(self.scanned)
            block, moved = handle.read(SCAN_BYTES), True
            if not block:
                self.total = self.newlines + (not self.ends_line)
                break
            newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            first = -(self.newlines + 1) % LINE_STRIDE  # the next newline ending line k * LINE_STRIDE
            self.starts.extend((newlines[first::LINE_STRIDE] + self.scanned + 1).tolist())
            self.newlines += len(newlines)
            self.scanned += len(block)
            self.ends_line = block.endswith(b"\n")
        return moved

    def _short(self) -> None:
        """The :class:`DataError` of a sidecar with fewer lines than a read wanted, naming its line count."""
        with open(self.path, "rb") as handle:
            self._learn(handle, 1 << 62)  # to the end: the file's line count
        raise DataError(f"has {self.total} lines, the manifest lists {self.count} documents in this shard", self.path)

    def _read_scanning(self, line_numbers: Sequence[int]) -> Iterator[tuple[int, str]]:
        wanted, lines = set(line_numbers), 0
        for lines, line in iter_lines(self.path):
            if lines in wanted:
                wanted.discard(lines)
                yield lines, line
                if not wanted:
                    return
        raise DataError(f"has {lines} lines, the manifest lists {self.count} documents in this shard", self.path)


def _stamp(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def _decode(raw: bytes, path: Path, number: int) -> str:
    """One line's bytes as text; a :class:`DataError` naming the line (as :func:`~biohicl.data.corpus.iter_lines`)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"cannot decode the line: byte {raw[err.start]:#04x} is not UTF-8 (convert the file with `iconv -t utf-8`)",
            path,
            line=number,
        ) from None


def _candidate_lines(path: Path, wanted: set[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the lines of a docs sidecar that may hold one of the ``wanted`` ids, found a block of
    :data:`SCAN_BYTES` at a time by byte searches (no line decoded on its own): a plain line (:func:`_plain_id`: as
    biohicl writes it) that opens with a wanted id, and every other line (escapes, another key order, an id that is
    not a string). ``.gz`` sidecars: every line."""
    if path.suffix.lower() == ".gz":
        yield from iter_lines(path)
        return
    needles = [b"\n" + _PLAIN_OPENING + i.encode("utf-8", "surrogatepass") + b'"' for i in wanted]
    with open(path, "rb") as handle:
        before = 0  # the lines before the block
        while block := handle.read(SCAN_BYTES):
            block = b"\n" + block + (b"" if block.endswith(b"\n") else handle.readline())  # whole lines
            line, counted = before, 0
            starts, lines = _starts_to_read(block, needles)
            for start in starts:
                line, counted = line + block.count(b"\n", counted, start), start
                raw = block[start : _line_end(block, start)]
                if line == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                yield line, _decode(raw, path, line)
            before += lines


def _starts_to_read(block: bytes, needles: list[bytes]) -> tuple[list[int], int]:
    """The sorted offsets in ``block`` (whole lines, each after a newline) of the lines that are not plain and of
    the plain ones that open with a needle (a wanted id); and the number of lines in ``block``."""
    data = np.frombuffer(block, dtype=np.uint8)
    starts = np.flatnonzero(data[:-1] == 10) + 1  # every line's first byte
    plain = starts + len(_PLAIN_OPENING) <= len(data)
    for k, byte in enumerate(_PLAIN_OPENING):
        plain &= data.take(starts + k, mode="clip") == byte
    ids = _quoted_id_offsets(data)  # a plain line's only "id" is its opening one
    plain &= np.bincount(np.searchsorted(starts, ids, side="right") - 1, minlength=len(starts)) == 1
    if block.find(b"\\") >= 0:  # a line with an escape
        plain[np.searchsorted(starts, np.flatnonzero(data == 92), side="right") - 1] = False
    read = set(starts[~plain].tolist())
    for needle in needles:
        at = block.find(needle)
        while at >= 0:
            read.add(at + 1)
            at = block.find(needle, at + 1)
    return sorted(read), len(starts)


def _quoted_id_offsets(data: np.ndarray) -> np.ndarray:
    """The offsets of ``"id"`` in ``data`` (bytes), found as 4-byte words at each of the 4 alignments."""
    found = []
    for shift in range(4):
        words = data[shift : shift + (len(data) - shift) // 4 * 4].view("<u4")
        found.append(np.flatnonzero(words == _QUOTED_ID) * 4 + shift)
    return np.concatenate(found)


def _line_end(block: bytes, at: int) -> int:
    end = block.find(b"\n", at)
    return end if end >= 0 else len(block)


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
