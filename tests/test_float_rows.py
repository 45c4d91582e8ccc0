"""FloatRows.take: candidate rows read with positioned reads, bit-equal to the memory-mapped shards, and the peak
memory of a compressed search bounded by its compressed matrix (not by the float32 shards it rescores from)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_index

from biohicl.errors import DataError
from biohicl.search import compression, float_rows
from biohicl.search.compression import compress_index
from biohicl.search.float_rows import FloatRows, as_float32, mmap_shard, shard_layout
from biohicl.search.layout import IndexManifest


def mapped_rows(manifest: IndexManifest, directory, positions: np.ndarray) -> np.ndarray:
    """The rows at ``positions`` read through the shards' memory maps (the reader ``take`` used before)."""
    starts = np.array([s.start for s in manifest.shards])
    out = []
    for position in positions:
        number = int(np.searchsorted(starts, position, side="right") - 1)
        shard = mmap_shard(directory / manifest.shards[number].file)
        out.append(as_float32(shard[position - starts[number] : position - starts[number] + 1]))
    return np.concatenate(out) if out else np.empty((0, manifest.dim), np.float32)


def counted(function, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return wrapper


class SeekCounter:
    """A file that records its seeks."""

    def __init__(self, raw, calls: list):
        self.raw, self.calls = raw, calls

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()

    def seek(self, offset: int) -> int:
        self.calls.append(offset)
        return self.raw.seek(offset)

    def readinto(self, buffer) -> int:
        return self.raw.readinto(buffer)

    def fileno(self) -> int:
        raise AssertionError("no file descriptor reads on this platform")


POSITIONS = {
    "random": np.random.default_rng(0).integers(0, 230, 60),
    "repeated": np.array([5, 5, 5, 199, 5, 199]),
    "unsorted": np.array([229, 0, 117, 60, 59, 3]),
    "adjacent": np.arange(55, 135),  # one run over three shards: 55-59 | 60-119 | 120-134
    "shard_edges": np.array([59, 60, 119, 120, 179, 180, 229, 0]),
    "every_row_backwards": np.arange(229, -1, -1),
    "one": np.array([77]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", sorted(POSITIONS))
def test_take_equals_the_memory_mapped_rows_bit_for_bit(tmp_path, dtype, case):
    rows = torch.randn(230, 24, generator=torch.Generator().manual_seed(3))
    manifest = write_index(tmp_path, rows, shard_size=60, dtype=dtype)  # 60 + 60 + 60 + 50 rows
    positions = POSITIONS[case]
    taken = FloatRows(manifest, tmp_path).take(positions)
    assert taken.dtype == np.float32 and taken.shape == (len(positions), 24)
    expected = mapped_rows(manifest, tmp_path, positions)
    assert taken.tobytes() == expected.tobytes()  # bit-exact, not just close
    assert torch.equal(torch.from_numpy(taken), rows.to(dtype).float()[torch.from_numpy(positions)])


def test_take_of_nothing_and_reuse_across_calls(tmp_path):
    rows = torch.randn(10, 8)
    manifest = write_index(tmp_path, rows, shard_size=4)
    reader = FloatRows(manifest, tmp_path)
    assert reader.take(np.array([], dtype=np.int64)).shape == (0, 8)
    for positions in ([9, 0], [3, 4, 5], [9, 0]):
        np.testing.assert_array_equal(reader.take(np.array(positions)), rows[positions].numpy())


@pytest.mark.parametrize("missing", [(), ("preadv",), ("preadv", "pread")])
def test_one_read_per_run_of_adjacent_rows_on_every_platform(tmp_path, monkeypatch, missing):
    """``os.preadv`` where it exists; else ``os.pread``; else (Windows) seek + readinto: the same rows, one read per
    run of adjacent rows of a shard."""
    rows = torch.randn(50, 16, generator=torch.Generator().manual_seed(1))
    manifest = write_index(tmp_path, rows, shard_size=20)
    positions = np.array([49, 0, 1, 2, 20, 19, 33, 33])
    calls = []
    for name in missing:
        monkeypatch.delattr(float_rows.os, name, raising=False)

    def counting_open(*args, **kwargs):
        return SeekCounter(open(*args, **kwargs), calls)

    if not missing:
        monkeypatch.setattr(float_rows.os, "preadv", counted(os.preadv, calls))
    elif missing == ("preadv",):
        monkeypatch.setattr(float_rows.os, "pread", counted(os.pread, calls))
    else:
        monkeypatch.setattr(float_rows, "open", counting_open, raising=False)
    taken = FloatRows(manifest, tmp_path).take(positions)
    assert len(calls) == 5  # rows 0-2, 19 | 20, 33 | 49
    assert taken.tobytes() == rows[positions].numpy().tobytes()


def test_rows_outside_the_index_are_refused(tmp_path):
    manifest = write_index(tmp_path, torch.randn(10, 8), shard_size=4)
    for bad in (10, -1):
        with pytest.raises(IndexError, match=f"row {bad} is outside the index"):
            FloatRows(manifest, tmp_path).take(np.array([0, bad]))


def test_a_truncated_shard_is_a_one_line_data_error(tmp_path):
    rows = torch.randn(40, 16)
    manifest = write_index(tmp_path, rows, shard_size=20)
    path = tmp_path / manifest.shards[1].file
    path.write_bytes(path.read_bytes()[:-100])
    reader = FloatRows(manifest, tmp_path)
    np.testing.assert_array_equal(reader.take(np.array([3])), rows[[3]].numpy())  # the intact shard still reads
    with pytest.raises(DataError, match="shorter than its header says") as caught:
        reader.take(np.array([39]))
    assert manifest.shards[1].file in str(caught.value) and "\n" not in str(caught.value)


def test_a_shard_header_over_100_mb_is_refused_before_it_is_read(tmp_path):
    """A header length over safetensors' 100 MB limit, in a file long enough to hold it (sparse: no disk used), is
    refused by the limit alone, before the claimed bytes are allocated or read."""
    path = tmp_path / "shard-00000.safetensors"
    claimed = float_rows.MAX_HEADER_BYTES + 1
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", claimed) + b'{"embeddings": ')
        handle.truncate(8 + claimed)  # exactly the claimed header: the file-size bound does not refuse it
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            shard_layout(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == f"{path}: unreadable shard (header length {claimed} is over the 100 MB limit)"
    assert peak < 1_000_000  # the 100 MB header was never read into memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process's mappings in /proc/self/maps")
def test_compression_maps_one_shard_at_a_time(tmp_path, monkeypatch):
    """compress_index streams each shard through a memory map it drops before the next: the pages it read (resident
    as the process's memory while mapped) never add up to the whole index. Counted from the process's mappings
    while each shard is encoded (its own, 1) and while its codes are saved (none: the map is gone)."""
    manifest = write_index(tmp_path, torch.randn(30, 8), shard_size=10)
    names = [str(tmp_path / s.file) for s in manifest.shards]
    encoding, saving = [], []

    def mapped() -> list[int]:
        maps = Path("/proc/self/maps").read_text()
        return [number for number, name in enumerate(names) if name in maps]

    encode, save = compression.Calibration.encode, compression._save_npy
    monkeypatch.setattr(
        compression.Calibration, "encode", lambda self, rows: encoding.append(mapped()) or encode(self, rows)
    )
    monkeypatch.setattr(compression, "_save_npy", lambda path, array: saving.append(mapped()) or save(path, array))
    compress_index(tmp_path, "int8", block_rows=4)
    assert encoding == [[0]] * 3 + [[1]] * 3 + [[2]] * 3  # 3 blocks of 4, 4, 2 rows per shard
    assert saving == [[], [], []]


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from biohicl.search.compressed import CompressedIndex

    def status(key):
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    index = CompressedIndex.load(sys.argv[1], "binary")
    warm = torch.nn.functional.normalize(torch.randn(4, index.dim), dim=-1)
    index.approximate_top(warm, 100, 16384)  # stage 1's code paths and scratch, without touching the shards
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    before = status("VmHWM")
    queries = torch.randn(8, index.dim, generator=torch.Generator().manual_seed(2))
    index.search_embeddings(queries, top_k=10)
    print(json.dumps({"before": before, "peak": status("VmHWM"), "matrix": index.nbytes}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's /proc")
def test_compressed_search_peak_memory_is_not_the_float32_shards(tmp_path):
    """100k × 384 float32 (146 MiB in two shards, in the page cache), binary form (4.6 MiB): rescoring 8 queries'
    800 candidates raised the peak RSS by the whole shards (every fault mapped a large cached folio); read with
    pread it grows by the rows read (1.2 MiB) plus the search's scratch."""
    rows = torch.nn.functional.normalize(torch.randn(100_000, 384, generator=torch.Generator().manual_seed(0)), dim=-1)
    manifest = write_index(tmp_path, rows, shard_size=50_000)
    del rows
    compress_index(tmp_path, "binary", calibration_rows=4096)
    for shard in manifest.shards:  # in the page cache, as on a machine that searched this index before
        (tmp_path / shard.file).read_bytes()
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    if out.returncode and "clear_refs" in out.stderr:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    growth = result["peak"] - result["before"]
    assert growth < result["matrix"] + 64 * 2**20, f"peak RSS grew by {growth / 2**20:.1f} MiB"
