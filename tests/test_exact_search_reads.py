"""Exact search streams the shards with positioned reads: no memory map of a shard is held while its blocks are
read (a map's pages count as the process's memory, so the peak was a whole shard), and the blocks are the rows the
shard holds, bit for bit, in every stored dtype."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import write_index
from safetensors import safe_open

from biohicl.errors import DataError
from biohicl.search.exact import search_embeddings, search_like
from biohicl.search.index import load_index
from biohicl.search.layout import EMBEDDINGS_KEY, IndexManifest


def stored(directory: Path, manifest: IndexManifest) -> torch.Tensor:
    """Every row as the shards store it (safetensors' own reader)."""
    parts = []
    for shard in manifest.shards:
        with safe_open(str(directory / shard.file), framework="pt") as handle:
            parts.append(handle.get_tensor(EMBEDDINGS_KEY))
    return torch.cat(parts)


def unit_rows(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    rows = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(rows, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_blocks_are_the_stored_rows_bit_for_bit(tmp_path, dtype):
    manifest = write_index(tmp_path, unit_rows(23, 8), shard_size=10, dtype=dtype)
    index = load_index(tmp_path)
    expected = stored(tmp_path, manifest)
    blocks = list(index.iter_blocks(4))
    assert [start for start, _ in blocks] == [0, 4, 8, 10, 14, 18, 20]  # blocks do not cross a shard
    assert all(block.dtype == dtype for _, block in blocks)
    assert torch.equal(torch.cat([block for _, block in blocks]), expected)
    positions = [22, 3, 3, 10]
    assert torch.equal(index.rows(positions), expected[positions].float())
    with pytest.raises(IndexError, match=r"row 23 is outside the index \(0..22\)"):
        index.rows([23])


def test_exact_search_scores_equal_a_brute_force_over_the_stored_rows(tmp_path):
    manifest = write_index(tmp_path, unit_rows(50, 16), shard_size=20, dtype=torch.float32)
    queries = unit_rows(3, 16, seed=1)
    scores, rows = search_embeddings(queries, tmp_path, top_k=5, chunk_size=7)
    brute = queries @ stored(tmp_path, manifest).T
    expected_scores, expected_rows = brute.topk(5, dim=1)
    assert torch.equal(rows, expected_rows)
    torch.testing.assert_close(scores, expected_scores, atol=1e-6, rtol=0)
    like = search_like(tmp_path, ["d7"], top_k=3)[0]
    _, nearest = (stored(tmp_path, manifest)[7:8] @ stored(tmp_path, manifest).T).topk(4, dim=1)
    assert nearest[0, 0] == 7 and [hit.position for hit in like] == nearest[0, 1:].tolist()  # itself left out


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads Linux's /proc/self/maps")
def test_no_shard_is_memory_mapped_while_its_blocks_are_read(tmp_path):
    # safetensors' safe_open kept one memory map per shard while its blocks were read: the pages read counted as the
    # process's memory, so exact search's peak grew by a whole shard whatever --chunk_size (300K x 384: 445 MiB)
    manifest = write_index(tmp_path, unit_rows(40, 8), shard_size=20, dtype=torch.float32)
    shard_files = [str((tmp_path / shard.file).resolve()) for shard in manifest.shards]
    index = load_index(tmp_path)
    seen = 0
    for _, block in index.iter_blocks(5):
        maps = Path("/proc/self/maps").read_text()
        assert not [f for f in shard_files if f in maps], "a shard is memory-mapped while its blocks are read"
        seen += len(block)
    assert seen == 40


def test_a_truncated_shard_is_one_data_error(tmp_path):
    manifest = write_index(tmp_path, unit_rows(20, 8), shard_size=20, dtype=torch.float32)
    shard = tmp_path / manifest.shards[0].file
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"shard-00000.safetensors: unreadable shard \("):
        list(load_index(tmp_path).iter_blocks(4))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's peak RSS")
def test_bench_exact_memory_tiny(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "benchmarks/bench_exact_memory.py", "--dir", str(tmp_path / "idx"), "--rows", "4000"]
    out = subprocess.run([*argv, "--dim", "16", "--chunk-size", "512"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "one 4,000 × 16 float32 shard" in out.stdout and "hits identical: True" in out.stdout
