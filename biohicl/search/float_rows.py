"""Random access to an index's float32 rows (RAM: the rows read, not the index).

Shards are read straight from their safetensors files (header + raw rows); bfloat16 shards are widened to float32
per row. :meth:`FloatRows.take` (rescoring, calibration samples) reads its rows with positioned reads
(``os.preadv``/``os.pread``; seek + read where neither exists, as on Windows), one read per run of adjacent rows,
never through a memory map: on Linux a fault in a memory map of a cached file maps the whole (large) page-cache
folio around it, so rescoring a few hundred scattered rows raised the process's peak RSS to about the size of the
shards, ``MADV_RANDOM`` or not. :func:`mmap_shard` maps a whole shard, for readers that stream every row of it.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from biohicl.errors import DataError
from biohicl.field_types import is_int
from biohicl.search.layout import EMBEDDINGS_KEY, IndexManifest

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


@dataclass(frozen=True)
class ShardLayout:
    """Where a shard's ``embeddings`` rows lie in its file: as stored (bfloat16 as uint16 bits), from byte
    ``data_start``."""

    path: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    data_start: int

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


#: the longest safetensors header read (safetensors' own limit): a longer one is refused before it is read
MAX_HEADER_BYTES = 100_000_000


def _count(value: object) -> bool:
    """Whether ``value`` is a non-negative JSON integer (not a bool, float or string)."""
    return is_int(value) and value >= 0


def shard_layout(path: str | Path) -> ShardLayout:
    """Read and check a shard's safetensors header (a :class:`DataError` naming the file when it is unreadable, or
    not one safetensors writes: a header longer than the file or 100 MB, offsets outside the data, a bad shape)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > MAX_HEADER_BYTES:  # whatever the file's length: never read
                raise ValueError(f"header length {header_len} is over the 100 MB limit")
            if header_len > size - 8:
                raise ValueError(f"header length {header_len} is over the file's {size - 8} bytes")
            header = json.loads(handle.read(header_len))
        entry = header[EMBEDDINGS_KEY]
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
        offsets, shape = entry["data_offsets"], entry["shape"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(n) for n in offsets)):
            raise ValueError(f"data_offsets: expected two non-negative integers, got {offsets!r:.60}")
        begin, end = offsets
        if not begin <= end:
            raise ValueError(f"data_offsets {[begin, end]} do not lie in the data")
        if not (isinstance(shape, list) and all(_count(n) for n in shape)):
            raise ValueError(f"shape: expected non-negative integers, got {shape!r:.60}")
        if end - begin != math.prod(shape) * dtype.itemsize:  # Python ints: no int64 wrap-around
            raise ValueError("data size does not match the shape")
        if size < 8 + header_len + end:
            raise ValueError("file is shorter than its header says")
    except RecursionError:
        raise DataError("unreadable shard (its header is nested too deeply)", path) from None
    except (OSError, ValueError, KeyError, TypeError, OverflowError, struct.error) as err:
        raise DataError(f"unreadable shard ({err})", path) from None
    return ShardLayout(path, dtype, tuple(shape), 8 + header_len + begin)


def mmap_shard(path: str | Path) -> np.ndarray:
    """The ``embeddings`` tensor of a shard as a read-only memory map (float32/float16; bfloat16 as uint16 bits)."""
    layout = shard_layout(path)
    if not layout.shape[0]:
        return np.empty(layout.shape, dtype=layout.dtype)
    try:
        rows = np.memmap(layout.path, dtype=layout.dtype, mode="r", offset=layout.data_start, shape=layout.shape)
    except (OSError, ValueError, OverflowError) as err:
        raise DataError(f"unreadable shard ({err})", layout.path) from None
    advise = getattr(getattr(rows, "_mmap", None), "madvise", None)
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        advise(mmap.MADV_RANDOM)
    return rows


def _read_at(handle: BinaryIO, offset: int, target: memoryview, path: Path) -> None:
    """Fill ``target`` with the file's bytes from ``offset`` (positioned reads; seek + read without them)."""
    done = 0
    while done < len(target):
        part = target[done:]
        if hasattr(os, "preadv"):  # straight into the output rows
            count = os.preadv(handle.fileno(), [part], offset + done)
        elif hasattr(os, "pread"):
            data = os.pread(handle.fileno(), len(part), offset + done)
            count = len(data)
            part[:count] = data
        else:  # Windows: no positioned reads; the handle is this call's alone
            handle.seek(offset + done)
            count = handle.readinto(part) or 0
        if not count:
            raise DataError("unreadable shard (file is shorter than its header says)", path)
        done += count


def read_rows(layout: ShardLayout, local: np.ndarray) -> np.ndarray:
    """A shard's rows at ``local`` (ascending, distinct row numbers), as stored; one read per run of adjacent rows."""
    out = np.empty((len(local), *layout.shape[1:]), dtype=layout.dtype)
    if not len(local):
        return out
    row_bytes = layout.row_bytes
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    breaks = np.flatnonzero(np.diff(local) != 1) + 1
    firsts, lasts = np.concatenate(([0], breaks)).tolist(), np.concatenate((breaks, [len(local)])).tolist()
    try:
        with open(layout.path, "rb", buffering=0) as handle:
            for first, last in zip(firsts, lasts, strict=True):
                offset = layout.data_start + int(local[first]) * row_bytes
                _read_at(handle, offset, buffer[first * row_bytes : last * row_bytes], layout.path)
    except (OSError, OverflowError, ValueError) as err:
        raise DataError(f"unreadable shard ({err})", layout.path) from None
    return out


def as_float32(rows: np.ndarray) -> np.ndarray:
    """``rows`` as float32 (bfloat16 bits widened)."""
    if rows.dtype == np.uint16:  # bfloat16 bits → float32
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(rows, dtype=np.float32)


def stored_unit_rows(manifest: IndexManifest) -> bool:
    """Whether the index's stored rows are unit length to float32 rounding: written normalised and stored in float32.
    A unit row rounded to float16/bfloat16 is off unit length by up to ~4e-3 (bfloat16), so such rows are
    renormalised in float32 where they are scored: a score is then the cosine of the stored rows (a copy of a
    document scores 1.0 against it, not 1.0004)."""
    return manifest.normalized and manifest.dtype == "float32"


class FloatRows:
    """An index's float32 rows: :meth:`take` reads given rows (RAM: those rows), :meth:`shard_rows` maps a shard
    (RAM: its pages read, until the caller drops the map)."""

    def __init__(self, manifest: IndexManifest, directory: Path):
        self.manifest = manifest
        self.directory = directory
        self._starts = np.asarray([s.start for s in manifest.shards], dtype=np.int64)
        self._layouts: dict[int, ShardLayout] = {}

    def layout(self, number: int) -> ShardLayout:
        """Shard ``number``'s header, read once; a :class:`DataError` when its rows are not ``[count, dim]``."""
        if number not in self._layouts:
            shard = self.manifest.shards[number]
            layout = shard_layout(self.directory / shard.file)
            if layout.shape != (shard.count, self.manifest.dim):
                raise DataError(
                    f"holds rows of shape {list(layout.shape)}, the manifest says {[shard.count, self.manifest.dim]}",
                    layout.path,
                )
            self._layouts[number] = layout
        return self._layouts[number]

    def shard_rows(self, number: int) -> np.ndarray:
        """The memory-mapped rows of shard ``number`` (as stored: float32, float16 or bfloat16 bits; checked against
        the manifest), for streaming a whole shard. Not kept: the pages read count as this process's memory while
        the map lives, so a caller drops it (and every view of it) before mapping the next shard."""
        return mmap_shard(self.layout(number).path)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 rows at ``positions`` (any order, repeats allowed), ``[len(positions), dim]``."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.manifest.dim), dtype=np.float32)
        if not len(positions):
            return out
        if positions.min() < 0 or positions.max() >= self.manifest.count:
            bad = positions[(positions < 0) | (positions >= self.manifest.count)][0]
            raise IndexError(f"row {bad} is outside the index (0..{self.manifest.count - 1})")
        shard_of = np.searchsorted(self._starts, positions, side="right") - 1
        for number in np.unique(shard_of).tolist():
            where = np.flatnonzero(shard_of == number)
            local, inverse = np.unique(positions[where] - self._starts[number], return_inverse=True)
            out[where] = as_float32(read_rows(self.layout(number), local))[inverse.reshape(-1)]
        return out
