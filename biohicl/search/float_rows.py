"""Random access to an index's float32 rows through memory-mapped shards (RAM: the pages read, not the index).

Shards are read straight from their safetensors files (header + raw rows), so only the pages a rescoring or a
calibration sample touches are read; bfloat16 shards are widened to float32 per row.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from biohicl.errors import DataError
from biohicl.search.layout import EMBEDDINGS_KEY, IndexManifest

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def mmap_shard(path: str | Path) -> np.ndarray:
    """The ``embeddings`` tensor of a shard as a read-only memory map (float32/float16; bfloat16 as uint16 bits)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
        entry = header[EMBEDDINGS_KEY]
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise ValueError("data size does not match the shape")
        if path.stat().st_size < 8 + header_len + end:
            raise ValueError("file is shorter than its header says")
        if not shape[0]:
            return np.empty(shape, dtype=dtype)
        rows = np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + begin, shape=shape)
        advise = getattr(getattr(rows, "_mmap", None), "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_RANDOM"):
            advise(mmap.MADV_RANDOM)  # rescoring reads scattered rows: no readahead around each one
        return rows
    except (OSError, ValueError, KeyError, TypeError, struct.error) as err:
        raise DataError(f"unreadable shard ({err})", path) from None


def as_float32(rows: np.ndarray) -> np.ndarray:
    """``rows`` as float32 (bfloat16 bits widened)."""
    if rows.dtype == np.uint16:  # bfloat16 bits → float32
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(rows, dtype=np.float32)


class FloatRows:
    """Random access to an index's float32 rows through memory-mapped shards (RAM: the pages read, not the index)."""

    def __init__(self, manifest: IndexManifest, directory: Path):
        self.manifest = manifest
        self.directory = directory
        self._starts = [s.start for s in manifest.shards]
        self._maps: dict[int, np.ndarray] = {}

    def shard_rows(self, number: int) -> np.ndarray:
        """The memory-mapped rows of shard ``number`` (as stored: float32, float16 or bfloat16 bits)."""
        if number not in self._maps:
            self._maps[number] = mmap_shard(self.directory / self.manifest.shards[number].file)
        return self._maps[number]

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 rows at ``positions`` (any order), ``[len(positions), dim]``."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.manifest.dim), dtype=np.float32)
        if not len(positions):
            return out
        shard_of = np.searchsorted(np.asarray(self._starts), positions, side="right") - 1
        for number in np.unique(shard_of):
            where = np.nonzero(shard_of == number)[0]
            local = positions[where] - self._starts[number]
            order = np.argsort(local, kind="stable")  # ascending offsets: sequential-ish page reads
            out[where[order]] = as_float32(self.shard_rows(int(number))[local[order]])
        self.release()
        return out

    def release(self) -> None:
        """Unmap the pages read so far from this process (``MADV_DONTNEED``): they stay in the OS page cache, which
        the kernel may reclaim, and no longer count as the process's resident memory."""
        for rows in self._maps.values():
            advise = getattr(getattr(rows, "_mmap", None), "madvise", None)
            if advise is not None and hasattr(mmap, "MADV_DONTNEED"):
                advise(mmap.MADV_DONTNEED)
